//! Helpers for tests that run the `sluice` binary, shared by `cli.rs` (on a data
//! directory) and `cli_remote.rs` and `kafka_perf.rs` (with `--bootstrap-server`):
//! running a command with an input, its output as text, the success check, the rows of
//! `group describe`, and the `perf eos` run and the figures it must print on any log.
//! Include it with `mod cli_support;` from a test in `tests/`.

#![allow(dead_code)] // each test binary uses its own part

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `cmd` with `input` on stdin, capturing stdout and stderr.
pub fn output_with_input(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sluice binary starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input.as_bytes()).expect("writing stdin");
    drop(stdin);
    child.wait_with_output().expect("waiting for sluice")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "sluice failed with {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line.trim()).expect("one JSON line")
}

/// The offset rows of `group describe`: (topic, partition, committed, log end, lag).
pub fn group_rows(describe: &str) -> Vec<(String, i32, String, String, String)> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("TOPIC"))
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 5, "{describe}");
            (
                f[0].to_string(),
                f[1].parse().expect("partition"),
                f[2].to_string(),
                f[3].to_string(),
                f[4].to_string(),
            )
        })
        .collect()
}

/// A small `sluice perf eos` run: 5000 records over 50 keys and 2 partitions, and a
/// latency probe of 500 records a second for 1 s.
pub const PERF_EOS_ARGS: [&str; 12] = [
    "perf",
    "eos",
    "--records",
    "5000",
    "--keys",
    "50",
    "--partitions",
    "2",
    "--latency-rate",
    "500",
    "--latency-seconds",
    "1",
];

/// The figures a run with [`PERF_EOS_ARGS`] printed (`stdout`, one JSON line), checked:
/// every record, a throughput for both modes, every latency sample read back, and commits.
pub fn perf_eos_figures(stdout: &str) -> serde_json::Value {
    let f = json(stdout);
    assert_eq!(f["records"], 5000, "{stdout}");
    for mode in ["alos", "eos"] {
        assert!(
            f[mode]["records_per_sec"].as_f64().is_some_and(|r| r > 0.0),
            "{stdout}"
        );
    }
    assert_eq!(f["latency_ms"]["samples"], 500, "{stdout}");
    assert!(
        f["commit_latency_ms"]["commits"]
            .as_u64()
            .is_some_and(|c| c > 0),
        "{stdout}"
    );
    f
}
