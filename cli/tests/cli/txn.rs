//! `perf produce --transactional`, `--isolation` and the last stable offset.

use super::{json, ok, partition_rows, run, user_error};

#[test]
fn transactional_perf_produce_then_read_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let stdout = ok(run(
        &data,
        &[
            "perf",
            "produce",
            "--topic",
            "tx",
            "--records",
            "1000",
            "--record-size",
            "20",
            "--transactional",
            "--txn-records",
            "100",
        ],
    ));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let figures = json(&stdout);
    assert_eq!(figures["records"], 1000, "{stdout}");
    let commit = &figures["commit_ms"];
    assert_eq!(commit["count"], 10, "{stdout}");
    assert!(
        matches!((commit["p50"].as_f64(), commit["p99"].as_f64()), (Some(a), Some(b)) if 0.0 <= a && a <= b),
        "{stdout}"
    );

    let stdout = ok(run(
        &data,
        &[
            "perf",
            "consume",
            "--topic",
            "tx",
            "--records",
            "1000",
            "--isolation",
            "read_committed",
        ],
    ));
    assert_eq!(json(&stdout)["records"], 1000, "{stdout}");
    assert_eq!(json(&stdout)["bytes"], 20_000, "{stdout}");

    // One commit marker per transaction; no transaction is left open.
    let describe = ok(run(&data, &["topic", "describe", "tx"]));
    assert!(describe.contains("LAST-STABLE"), "{describe}");
    let header = describe
        .lines()
        .find(|l| l.starts_with("PARTITION"))
        .expect("a header");
    assert!(
        header.contains("HIGH-WATERMARK  LAST-STABLE"),
        "LSO next to the high watermark: {header}"
    );
    let rows = partition_rows(&describe);
    assert_eq!(rows[0][2], 1010, "{describe}");
    assert_eq!(rows[0][3], 1010, "{describe}");
    assert_eq!(rows[0][4], 1010, "{describe}");

    // Markers are never printed, at either isolation level.
    for isolation in ["read_committed", "read_uncommitted"] {
        let out = ok(run(
            &data,
            &[
                "consume",
                "tx",
                "--from-beginning",
                "--isolation",
                isolation,
                "--timeout-ms",
                "300",
            ],
        ));
        assert_eq!(out.lines().count(), 1000, "{isolation}");
    }

    // Committing on a timer instead, over two partitions.
    let stdout = ok(run(
        &data,
        &[
            "perf",
            "produce",
            "--topic",
            "tx2",
            "--partitions",
            "2",
            "--records",
            "3000",
            "--record-size",
            "10",
            "--transactional",
            "--commit-interval-ms",
            "5",
        ],
    ));
    let figures = json(&stdout);
    assert_eq!(figures["records"], 3000, "{stdout}");
    assert!(
        figures["commit_ms"]["count"]
            .as_u64()
            .is_some_and(|c| c >= 1),
        "{stdout}"
    );
    let stdout = ok(run(
        &data,
        &["perf", "consume", "--topic", "tx2", "--records", "3000"],
    ));
    assert_eq!(json(&stdout)["records"], 3000, "{stdout}");

    // Without --transactional there is no commit_ms, and the transaction flags are refused.
    let stdout = ok(run(
        &data,
        &[
            "perf",
            "produce",
            "--topic",
            "plain",
            "--records",
            "10",
            "--record-size",
            "5",
        ],
    ));
    assert!(json(&stdout).get("commit_ms").is_none(), "{stdout}");
    let message = user_error(run(
        &data,
        &[
            "perf",
            "produce",
            "--topic",
            "plain",
            "--records",
            "10",
            "--record-size",
            "5",
            "--txn-records",
            "5",
        ],
    ));
    assert!(message.contains("--transactional"), "{message}");
}
