//! Running the example binaries as a user would, for `tests/examples.rs` (on the embedded
//! log) and `tests/kafka_examples.rs` (with `--bootstrap-servers`): finds each one built by
//! cargo next to the test binary (building it if missing), runs it with a hang guard, and
//! reads the figures it prints.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hang guard, not a speed check (speed is measured by the benchmarks): an example still
/// running after this long is killed and the test fails.
pub const TIME_LIMIT: Duration = Duration::from_secs(600);

/// The example binary `name`, built next to this test (or built now).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let release = exe.parent().and_then(Path::parent).expect("target dir");
    let path = release.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--example", name])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building example {name} failed");
    }
    path
}

/// What a run of an example did.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// Panics with the example's output unless it exited with success.
    pub fn assert_success(&self, name: &str) {
        assert!(
            self.success,
            "{name} failed:\n{}\n{}",
            self.stdout, self.stderr
        );
    }
}

/// Runs example `name` with `args` (killing it past [`TIME_LIMIT`]).
pub fn run(name: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::from(
            std::fs::File::create(&out).expect("stdout file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(&err).expect("stderr file"),
        ))
        .spawn()
        .expect("spawn the example");
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            child.kill().expect("kill");
            child.wait().expect("reap");
            panic!("{name} {args:?} still runs after {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        success: status.success(),
        stdout: std::fs::read_to_string(&out).expect("read stdout"),
        stderr: std::fs::read_to_string(&err).expect("read stderr"),
        took: started.elapsed(),
    };
    println!(
        "{name} {args:?}: {status} in {:.2} s\n{}",
        run.took.as_secs_f64(),
        run.stdout
    );
    run
}

/// The number right after the first occurrence of `label` in `text` (a sign allowed).
pub fn figure(text: &str, label: &str) -> i64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in the output:\n{text}"));
    let rest = &text[at + label.len()..];
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{label:?} is not followed by a number in:\n{text}"))
}

/// Checks the figures `bank_transfers` printed for a run of `transfers` transfers.
pub fn assert_bank_figures(run: &Run, transfers: i64) {
    run.assert_success("bank_transfers");
    let out = &run.stdout;
    assert_eq!(
        figure(out, "total: "),
        figure(out, "(opening "),
        "the total is not conserved"
    );
    assert_eq!(figure(out, "debits "), transfers, "debits applied");
    assert_eq!(figure(out, "credits "), transfers, "credits applied");
    assert_eq!(figure(out, "output: "), 2 * transfers, "output updates");
    assert_eq!(figure(out, "duplicates: "), 0, "transfers applied twice");
    assert_eq!(figure(out, "lost: "), 0, "transfers lost");
    assert_eq!(
        figure(out, "out of sequence: "),
        0,
        "updates out of sequence"
    );
    assert!(out.contains("digest matches: true"), "digest");
    assert!(
        out.contains("store and output agree: true"),
        "store vs output"
    );
    assert!(out.contains("balances equal to the model: true"), "model");
    assert!(out.contains("result: OK"), "result");
}
