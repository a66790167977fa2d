//! The examples as programs: runs the built `bank_transfers` and `pipeline` binaries (built
//! next to this test by `cargo test --release --all-targets`, or built now) with small
//! arguments, and checks their exit status and the figures they print: a conserved total,
//! every transfer applied once per side, no duplicate and nothing lost, also across a
//! crash and restart (and a failure when the same crash strikes an at-least-once run); and
//! every pipeline consumer agreeing with the log file. Also the DSL examples `sessions`,
//! `enrichment` and `fraud`, each of which checks its output against a plain-Rust
//! computation: session windows equal to a brute-force sessionization, enriched orders and
//! revenue per segment as of each order's time, and exactly the expected fraud alerts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hang guard, not a speed check (speed is measured by the benchmarks): an example still
/// running after this long is killed and the test fails.
const TIME_LIMIT: Duration = Duration::from_secs(600);

/// The example binary `name`, built next to this test (or built now).
fn example(name: &str) -> PathBuf {
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
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs example `name` with `args` (killing it past [`TIME_LIMIT`]).
fn run(name: &str, args: &[&str]) -> Run {
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
fn figure(text: &str, label: &str) -> i64 {
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
fn assert_bank_figures(run: &Run, transfers: i64) {
    assert!(
        run.success,
        "bank_transfers failed:\n{}\n{}",
        run.stdout, run.stderr
    );
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

#[test]
fn bank_transfers_conserves_money_exactly_once() {
    let run = run("bank_transfers", &["--transfers", "5000"]);
    assert_bank_figures(&run, 5000);
    assert!(!run.stdout.contains("crashed"), "no crash was asked for");
}

#[test]
fn bank_transfers_survives_a_kill_and_restart() {
    let run = run(
        "bank_transfers",
        &[
            "--transfers",
            "8000",
            "--crash-after",
            "3000",
            "--seed",
            "11",
        ],
    );
    assert_bank_figures(&run, 8000);
    let crashed_after = figure(&run.stdout, "crashed by AppHandle::kill after about ");
    assert!(
        (3000..8000).contains(&crashed_after),
        "crashed after {crashed_after}"
    );
    assert!(run.stdout.contains("restarted on the same state dir"));
}

#[test]
fn bank_transfers_restores_after_a_crash_between_commit_and_apply() {
    let run = run(
        "bank_transfers",
        &[
            "--transfers",
            "8000",
            "--crash-after",
            "2000",
            "--crash-point",
            "after-commit-before-apply",
        ],
    );
    assert_bank_figures(&run, 8000);
    assert!(
        run.stdout.contains("crashed at AfterCommitBeforeApply"),
        "the crash point was not reached"
    );
    // RocksDB missed the last commit's state: the restart replays it from the changelog.
    let restored = figure(&run.stdout, "records processed, ");
    assert!(restored > 0, "nothing restored from the changelog");
}

/// The checks have teeth: without transactions, a crash after the flush and before the
/// offset commit makes the restart apply transfers again, and the example must say so.
#[test]
fn bank_transfers_catches_duplicates_under_at_least_once() {
    let run = run(
        "bank_transfers",
        &[
            "--transfers",
            "8000",
            "--at-least-once",
            "--crash-after",
            "2000",
            "--crash-point",
            "after-flush",
        ],
    );
    assert!(!run.success, "duplicates went unnoticed:\n{}", run.stdout);
    assert!(
        run.stdout.contains("crashed at AfterFlush"),
        "{}",
        run.stdout
    );
    assert!(
        figure(&run.stdout, "duplicates: ") > 0,
        "no duplicate reported"
    );
    assert!(run.stdout.contains("FAILED: output: "), "{}", run.stdout);
    assert!(!run.stdout.contains("result: OK"));
}

#[test]
fn bank_transfers_rejects_a_crash_beyond_the_input() {
    let run = run(
        "bank_transfers",
        &["--transfers", "100", "--crash-after", "100"],
    );
    assert!(!run.success, "an impossible crash point was accepted");
    assert!(run.stderr.contains("must be below"), "{}", run.stderr);
}

#[test]
fn pipeline_consumers_agree_with_the_log_file() {
    let run = run("pipeline", &["--lines", "2000", "--seed", "5"]);
    assert!(
        run.success,
        "pipeline failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    let out = &run.stdout;
    assert_eq!(
        figure(out, "tailed into app-log (3 partitions): "),
        2000,
        "lines shipped by the tailer"
    );
    assert_eq!(figure(out, "app-log: "), 2000, "records in the topic");
    let errors = figure(out, "ERROR ");
    let levels = figure(out, "INFO ") + figure(out, "WARN ") + errors;
    assert_eq!(levels, 2000, "lines counted per level");
    assert_eq!(figure(out, "(plain group consumer): "), 2000, "CSV rows");
    let alerts = figure(out, "(DSL filter to `alerts`): ");
    let (error_alerts, slow_alerts) = (figure(out, " alerts ("), figure(out, "errors, "));
    assert_eq!(error_alerts + slow_alerts, alerts, "alerts by reason");
    assert_eq!(error_alerts, errors, "one alert per ERROR line");
    assert!(slow_alerts > 0, "no slow request in 2000 lines");
    for agreement in [
        "metrics agree with the file: true",
        "per-service order kept: true",
        "rows agree with the file: true",
        "alerts agree with the file: true",
        "result: OK",
    ] {
        assert!(out.contains(agreement), "missing {agreement:?}");
    }
}

#[test]
fn sessions_equal_the_brute_force_sessionization() {
    for args in [&[][..], &["--seed", "7"][..]] {
        let run = run("sessions", args);
        assert!(
            run.success,
            "sessions failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        let out = &run.stdout;
        let sessions = figure(out, "total: ");
        assert!(sessions > 0, "no session");
        assert_eq!(
            figure(out, "sessionization ("),
            sessions,
            "sessions expected"
        );
        assert_eq!(
            figure(out, "sessions, "),
            figure(out, "produced "),
            "clicks in sessions"
        );
        assert!(figure(out, "updates and ") > 0, "no session was replaced");
        let merged = figure(out, "by a late click: ");
        assert!(merged > 0, "no late click merged two sessions");
        assert_eq!(merged, figure(out, "(bridging clicks: "), "merges");
        assert_eq!(figure(out, "commits, "), 0, "clicks dropped as late");
        assert!(out.contains("sessions): true"), "brute force");
    }
}

#[test]
fn enrichment_sees_each_customer_as_of_the_order() {
    let run = run("enrichment", &[]);
    assert!(
        run.success,
        "enrichment failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    let out = &run.stdout;
    assert_eq!(figure(out, "`orders-enriched`: "), 600, "enriched orders");
    assert_eq!(figure(out, "orders ("), 0, "duplicate orders");
    assert_eq!(figure(out, "total: "), 600, "orders in the revenue totals");
    // Orders of customers not (yet) known, before and after the profile changes.
    assert!(figure(out, "of unknown customers: ") > 0, "unknown before");
    assert!(
        figure(out, "before the profile changes, ") > 0,
        "unknown after"
    );
    assert!(
        out.contains("(deleted): its orders before the change went to [")
            && out.contains("after to [unknown customer]"),
        "the deleted customer"
    );
    assert!(out.contains("plain-Rust enrichment: true"), "enrichment");
    assert!(out.contains("plain-Rust totals: true"), "revenue totals");
}

#[test]
fn fraud_alerts_each_window_once() {
    for args in [&[][..], &["--seed", "11"][..]] {
        let run = run("fraud", args);
        assert!(run.success, "fraud failed:\n{}\n{}", run.stdout, run.stderr);
        let out = &run.stdout;
        let alerts = figure(out, "total: ");
        assert!(alerts > 0, "no alert");
        assert_eq!(figure(out, "pairs ("), alerts, "alerts expected");
        assert_eq!(figure(out, "`fraud-alerts`: "), alerts, "alert records");
        assert_eq!(figure(out, "alerted twice: "), 0, "windows alerted twice");
        assert_eq!(figure(out, "injected bursts caught: "), 6, "bursts caught");
        assert_eq!(figure(out, "commits, "), 0, "transactions dropped as late");
        assert!(out.contains("expected): true"), "alerts");
    }
}

#[test]
fn kafka_clients_serves_the_embedded_log_to_kcat_and_counts_exactly_once() {
    let run = run("kafka_clients", &[]);
    assert!(
        run.success,
        "kafka_clients failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout
            .contains("serving the embedded log to Kafka clients at 127.0.0.1:")
    );
    assert!(
        run.stdout
            .contains("every count equals the in-memory count: true"),
        "{}",
        run.stdout
    );
}
