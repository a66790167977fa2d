//! The CLI's benchmarks on a Kafka cluster: `sluice perf eos` and `perf rebalance` with
//! `--bootstrap-server`, on Apache Kafka 4.4 (`SLUICE_TEST_KAFKA_BOOTSTRAP`, or one started
//! for the test) and on `sluice broker` over the wire. The figures must add up as on the
//! embedded log (`cli/tests/cli/runtime_perf.rs`).
#![cfg(feature = "kafka")]

#[path = "../../kafka/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::{PERF_EOS_ARGS, json, ok, perf_eos_figures};

/// `sluice perf eos --bootstrap-server`: the benchmark on a Kafka cluster prints the same
/// figures as on the embedded log, with every latency sample read back.
fn perf_eos_on(bootstrap: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data")
        .arg(dir.path())
        .args(PERF_EOS_ARGS)
        .args(["--bootstrap-server", bootstrap])
        .output()
        .expect("run sluice");
    perf_eos_figures(&ok(out));
}

#[test]
fn perf_eos_on_apache_kafka() {
    perf_eos_on(support::kafka_bootstrap());
}

#[test]
fn perf_eos_on_sluice_broker_over_kafka_protocol() {
    let sluice = support::SluiceBroker::start();
    perf_eos_on(&sluice.bootstrap);
}

/// `sluice perf rebalance --bootstrap-server`: a second instance joins, then leaves, on a
/// Kafka cluster; the figures add up as on the embedded log (cli/tests/cli/runtime_perf.rs).
fn perf_rebalance_on(bootstrap: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = 2000;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data")
        .arg(dir.path())
        .args(["--bootstrap-server", bootstrap])
        .args([
            "perf",
            "rebalance",
            "--keys",
            "2000",
            "--value-size",
            "10",
            "--partitions",
            "4",
        ])
        .output()
        .expect("run sluice");
    let stdout = ok(out);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let f = json(&stdout);
    assert_eq!(f["cluster"], "kafka", "{stdout}");
    assert_eq!(f["keys"], keys, "{stdout}");
    assert_eq!(f["partitions"], 4, "{stdout}");
    for phase in ["join", "leave"] {
        // Time to Running includes a heartbeat interval at most (3 s) and a small restore.
        assert!(
            f[phase]["seconds_to_running"]
                .as_f64()
                .is_some_and(|s| s > 0.0 && s < 60.0),
            "{stdout}"
        );
    }
    // The joiner starts with an empty state directory: it restores its 2 tasks' stores from
    // their changelogs, at most one record per key (compaction can only remove some).
    let joiner = f["join"]["restored_by_joiner"].as_u64().expect("joiner");
    assert!(joiner > 0 && joiner <= keys, "{stdout}");
    // The stayer keeps its 2 remaining tasks open (one clean eager revoke: `continuous`),
    // with stores at a checkpoint that covers their changelogs.
    assert_eq!(f["join"]["restored_by_stayer"], 0, "{stdout}");
    assert_eq!(f["join"]["tasks_kept_by_stayer"], 2, "{stdout}");
    assert_eq!(f["join"]["tasks_opened_by_stayer"], 0, "{stdout}");
    // On leave it gets the joiner's 2 tasks back and replays the joiner's second round of
    // updates (one per key of those tasks), keeping its own 2 open.
    let back = f["leave"]["restored_by_stayer"].as_u64().expect("stayer");
    assert!(back >= joiner && back <= keys, "{stdout}");
    assert_eq!(f["leave"]["tasks_kept_by_stayer"], 2, "{stdout}");
    assert_eq!(f["leave"]["tasks_opened_by_stayer"], 2, "{stdout}");
}

#[test]
fn perf_rebalance_on_apache_kafka() {
    perf_rebalance_on(support::kafka_bootstrap());
}

#[test]
fn perf_rebalance_on_sluice_broker_over_kafka_protocol() {
    let sluice = support::SluiceBroker::start();
    perf_rebalance_on(&sluice.bootstrap);
}
