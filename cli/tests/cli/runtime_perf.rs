//! `perf eos`, `perf resume`, `perf rebalance`, `perf windows` and `perf table-chain`, small: each prints one JSON line with every figure, and the
//! figures add up (exactly-once commits happened, a resume restores less than a full one).

use super::cli_support::{PERF_EOS_ARGS, perf_eos_figures};
use super::{json, ok, run};

#[test]
fn perf_eos_reports_both_modes_latency_and_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = ok(run(&dir.path().join("data"), &PERF_EOS_ARGS));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let f = perf_eos_figures(&stdout);
    assert!(
        f["eos_over_alos"].as_f64().is_some_and(|r| r > 0.0),
        "{stdout}"
    );
}

#[test]
fn perf_resume_restores_less_than_a_full_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = ok(run(
        &dir.path().join("data"),
        &[
            "perf",
            "resume",
            "--keys",
            "20000",
            "--value-size",
            "10",
            "--partitions",
            "2",
        ],
    ));
    let f = json(&stdout);
    let full = f["full_restore"]["records_restored"]
        .as_u64()
        .expect("full");
    let resumed = f["resume"]["records_restored"].as_u64().expect("resume");
    assert!(full >= 20_000, "{stdout}");
    assert!(resumed < full / 2, "{stdout}");
}

#[test]
fn perf_windows_reports_the_three_aggregations_and_their_ratios() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = ok(run(
        &dir.path().join("data"),
        &[
            "perf",
            "windows",
            "--records",
            "3000",
            "--keys",
            "30",
            "--partitions",
            "2",
            "--window-ms",
            "500",
            "--gap-ms",
            "100",
        ],
    ));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let f = json(&stdout);
    assert_eq!(f["records"], 3000, "{stdout}");
    for kind in ["count", "tumbling", "session"] {
        assert!(
            f[kind]["records_per_sec"].as_f64().is_some_and(|r| r > 0.0),
            "{stdout}"
        );
    }
    for ratio in ["tumbling_over_count", "session_over_count"] {
        assert!(f[ratio].as_f64().is_some_and(|r| r > 0.0), "{stdout}");
    }
}

#[test]
fn perf_rebalance_reports_what_the_joiner_and_the_stayer_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = 4000;
    // Twice on one data directory: the second run must not inherit the first one's group.
    for run_number in 1..=2 {
        let stdout = ok(run(
            &dir.path().join("data"),
            &[
                "perf",
                "rebalance",
                "--keys",
                "4000",
                "--value-size",
                "10",
                "--partitions",
                "4",
            ],
        ));
        let stdout = format!("run {run_number}: {stdout}");
        let f = json(stdout.split_once(": ").map_or("", |(_, line)| line));
        assert_eq!(f["partitions"], 4, "{stdout}");
        assert_eq!(f["cluster"], "embedded", "{stdout}");
        for phase in ["join", "leave"] {
            assert!(
                f[phase]["seconds_to_running"]
                    .as_f64()
                    .is_some_and(|s| s > 0.0),
                "{stdout}"
            );
        }
        // The joiner starts with an empty state directory: it restores its tasks' stores
        // from their changelogs, which hold one record per key of those tasks.
        let joiner = f["join"]["restored_by_joiner"].as_u64().expect("joiner");
        assert!(joiner > 0 && joiner <= keys, "{stdout}");
        // The stayer's kept tasks restart from a checkpoint that covers their changelogs.
        assert_eq!(f["join"]["restored_by_stayer"], 0, "{stdout}");
        // On leave, the stayer gets back the joiner's tasks, which took a second round of
        // updates (one per key the joiner restored): it replays at least those.
        let back = f["leave"]["restored_by_stayer"].as_u64().expect("stayer");
        assert!(back >= joiner, "{stdout}");
        // The stayer keeps the tasks it still owns open across both generation changes
        // (it is idle, nothing uncommitted), and opens only the ones it gets back.
        assert_eq!(f["join"]["tasks_kept_by_stayer"], 2, "{stdout}");
        assert_eq!(f["join"]["tasks_opened_by_stayer"], 0, "{stdout}");
        assert_eq!(f["leave"]["tasks_kept_by_stayer"], 2, "{stdout}");
        assert_eq!(f["leave"]["tasks_opened_by_stayer"], 2, "{stdout}");
    }
}

/// `perf table-chain`: a lazy filter + map_values chain joined by a stream needs only the
/// source table's store; every input record is processed and the state counter moves.
#[test]
fn perf_table_chain_keeps_one_store_and_counts_its_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = ok(run(
        &dir.path().join("data"),
        &[
            "perf",
            "table-chain",
            "--keys",
            "500",
            "--updates",
            "4",
            "--partitions",
            "2",
        ],
    ));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let f = json(&stdout);
    assert_eq!(f["table_records"], 2000, "{stdout}");
    assert_eq!(f["stream_records"], 2000, "{stdout}");
    assert_eq!(f["stores"], serde_json::json!(["rows"]), "{stdout}");
    assert!(
        f["records_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{stdout}"
    );
    // Only the source table has a changelog: a record per key at least (a commit logs each
    // key's latest value), one per update at most, plus the commits' markers.
    let changelog = f["changelog_offsets"].as_u64().expect("changelog_offsets");
    assert!((500..4000).contains(&changelog), "{stdout}");
    assert!(
        f["state_bytes_written"].as_u64().is_some_and(|b| b > 0),
        "{stdout}"
    );
}
