//! Every example on a Kafka cluster: each built example binary runs once with
//! `--bootstrap-servers` against Apache Kafka 4.4 (its topics and app ids end in a run id,
//! so runs never meet), and must succeed and print its own check (`result: OK`, "equals
//! the plain-Rust ...: true" ...). A few also run against `sluice broker` served in-process:
//! the `wordcount` demo, the pipeline's group-member CSV sink, and a bank run with a kill
//! and restart. Sizes are small: on Kafka each transaction commit takes tens of ms.

#[path = "../kafka/tests/support/mod.rs"]
mod support;

mod example_runs;

use example_runs::{Run, assert_bank_figures, figure, run};

/// Runs example `name` on the cluster at `bootstrap` with `args`.
fn on(bootstrap: &str, name: &str, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--bootstrap-servers", bootstrap]);
    let run = run(name, &all);
    run.assert_success(name);
    assert!(
        run.stdout
            .contains(&format!("on the Kafka cluster at {bootstrap}")),
        "{name} did not run on the cluster:\n{}",
        run.stdout
    );
    run
}

fn kafka() -> &'static str {
    support::kafka_bootstrap()
}

#[test]
fn wordcount_on_apache_kafka() {
    wordcount_on(kafka());
}

#[test]
fn wordcount_on_sluice_broker() {
    let sluice = support::SluiceBroker::start();
    wordcount_on(&sluice.bootstrap);
}

/// The `wordcount` example (what `make demo` runs): it checks its own counts against an
/// in-memory count and says so.
fn wordcount_on(bootstrap: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().to_str().expect("a UTF-8 temp path");
    let run = on(bootstrap, "wordcount", &[dir]);
    assert!(
        run.stdout
            .contains("every count equals the in-memory count: true"),
        "{}",
        run.stdout
    );
}

#[test]
fn wordcount_processor_on_apache_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = dir.path().join("lines.txt");
    std::fs::write(&lines, "one two two\nthree three three\n").expect("write the input");
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().expect("UTF-8"),
        "--lines",
        lines.to_str().expect("UTF-8"),
        "--prefix",
        &support::unique("wcp"),
    ];
    let mut all = args.to_vec();
    all.extend(["--bootstrap-servers", kafka()]);
    let run = run("wordcount_processor", &all);
    run.assert_success("wordcount_processor");
    let json = run.stdout.lines().last().expect("a JSON line");
    let figures: serde_json::Value = serde_json::from_str(json).expect("JSON figures");
    assert_eq!(figures["distinct_words"], 3, "{json}");
    // Two lines read, six words through the repartition topic (more if a rebalance made
    // it process an aborted transaction's records again).
    let processed = figures["records_processed"].as_u64().expect("a count");
    assert!(processed >= 8, "{json}");
}

#[test]
fn bank_transfers_on_apache_kafka() {
    let run = on(kafka(), "bank_transfers", &["--transfers", "1500"]);
    assert_bank_figures(&run, 1500);
}

/// Killed halfway and restarted on the same state directory, on `sluice broker`: still
/// every transfer applied once per side.
#[test]
fn bank_transfers_survives_a_kill_on_sluice_broker() {
    let sluice = support::SluiceBroker::start();
    let args = ["--transfers", "2000", "--crash-after", "700"];
    let run = on(&sluice.bootstrap, "bank_transfers", &args);
    assert_bank_figures(&run, 2000);
    assert!(
        run.stdout
            .contains("crashed by AppHandle::kill after about "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("restarted on the same state dir"));
}

fn pipeline_on(bootstrap: &str) {
    let run = on(bootstrap, "pipeline", &["--lines", "1000", "--seed", "5"]);
    let out = &run.stdout;
    assert_eq!(
        figure(out, "tailed into app-log (3 partitions): "),
        1000,
        "lines shipped by the tailer"
    );
    assert_eq!(figure(out, "app-log: "), 1000, "records in the topic");
    assert_eq!(figure(out, "(plain group consumer): "), 1000, "CSV rows");
    for agreement in [
        "metrics agree with the file: true",
        "rows agree with the file: true",
        "alerts agree with the file: true",
        "result: OK",
    ] {
        assert!(out.contains(agreement), "missing {agreement:?}:\n{out}");
    }
}

#[test]
fn pipeline_on_apache_kafka() {
    pipeline_on(kafka());
}

#[test]
fn pipeline_on_sluice_broker() {
    let sluice = support::SluiceBroker::start();
    pipeline_on(&sluice.bootstrap);
}

#[test]
fn sessions_on_apache_kafka() {
    let run = on(kafka(), "sessions", &[]);
    assert!(
        run.stdout.contains("sessions): true"),
        "brute force:\n{}",
        run.stdout
    );
    assert_eq!(
        figure(&run.stdout, "commits, "),
        0,
        "clicks dropped as late"
    );
}

#[test]
fn enrichment_on_apache_kafka() {
    let run = on(kafka(), "enrichment", &[]);
    let out = &run.stdout;
    assert_eq!(figure(out, "`orders-enriched`: "), 600, "enriched orders");
    assert_eq!(figure(out, "orders ("), 0, "duplicate orders");
    assert!(out.contains("plain-Rust enrichment: true"), "{out}");
    assert!(out.contains("plain-Rust totals: true"), "{out}");
}

#[test]
fn fraud_on_apache_kafka() {
    let run = on(kafka(), "fraud", &[]);
    let out = &run.stdout;
    assert_eq!(figure(out, "alerted twice: "), 0, "windows alerted twice");
    assert_eq!(figure(out, "injected bursts caught: "), 6, "bursts caught");
    assert!(out.contains("expected): true"), "{out}");
}

#[test]
fn log_demo_on_apache_kafka() {
    let run = on(kafka(), "log_demo", &[]);
    assert!(run.stdout.contains("consumed 6 records"), "{}", run.stdout);
    assert_eq!(
        run.stdout.matches("produced  ").count(),
        6,
        "{}",
        run.stdout
    );
}

#[test]
fn kafka_clients_on_apache_kafka() {
    let run = on(kafka(), "kafka_clients", &[]);
    assert!(
        !run.stdout.contains("serving the embedded log"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("every count equals the in-memory count: true"),
        "{}",
        run.stdout
    );
}
