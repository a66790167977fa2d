//! The examples as programs: runs the built `bank_transfers` and `pipeline` binaries (built
//! next to this test by `cargo test --release --all-targets`, or built now) with small
//! arguments, and checks their exit status and the figures they print: a conserved total,
//! every transfer applied once per side, no duplicate and nothing lost, also across a
//! crash and restart (and a failure when the same crash strikes an at-least-once run); and
//! every pipeline consumer agreeing with the log file. Also the DSL examples `sessions`,
//! `enrichment` and `fraud`, each of which checks its output against a plain-Rust
//! computation: session windows equal to a brute-force sessionization, enriched orders and
//! revenue per segment as of each order's time, and exactly the expected fraud alerts.

mod example_runs;

use example_runs::{assert_bank_figures, figure, run};

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
