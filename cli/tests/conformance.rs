//! Real Kafka clients against `sluice broker`: each test starts the broker on an ephemeral
//! loopback port and runs one client's scenarios from `tests/conformance/` (keyed round trip
//! with headers and codecs, a rebalancing group with committed offsets, an idempotent
//! producer, a transactional copier with aborts; the Java tools). The clients are installed by
//! `make conformance-deps`, which `make test` runs first.

mod served;

use std::path::Path;
use std::process::Command;

use served::RunningBroker;

/// One suite at a time: each starts JVMs or client pools of its own, and their deadlines are
/// meant for a machine that is not also running four other suites.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `program args... BOOTSTRAP` (the bootstrap address replaces `{bootstrap}`) against a
/// fresh broker and asserts it passed.
fn run_against_broker(program: &str, args: &[&str]) {
    run_against(&["--num-partitions", "1"], "conformance:", program, args);
}

/// [`run_against_broker`] with the broker's flags and the prefix of the suite's summary line
/// (`<prefix> N passed, N failed`).
fn run_against(broker_flags: &[&str], summary_prefix: &str, program: &str, args: &[&str]) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let broker = RunningBroker::start(broker_flags);
    // The repository root: the suites and their scripts live under `tests/`.
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{bootstrap}", &broker.addr))
        .collect();
    let out = Command::new(program)
        .args(&args)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run ({e}); run `make conformance-deps`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status.code()
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(summary_prefix))
        .unwrap_or_else(|| panic!("no summary line from {program}\n{stdout}\n{stderr}"));
    assert!(
        summary.contains(" 0 failed"),
        "{summary}\n{stdout}\n{stderr}"
    );
}

#[test]
fn confluent_kafka_python_librdkafka() {
    run_against_broker(
        "python3",
        &[
            "tests/conformance/scenarios.py",
            "--bootstrap",
            "{bootstrap}",
            "--client",
            "confluent",
        ],
    );
}

#[test]
fn kafka_python() {
    run_against_broker(
        "python3",
        &[
            "tests/conformance/scenarios.py",
            "--bootstrap",
            "{bootstrap}",
            "--client",
            "kafka-python",
        ],
    );
}

#[test]
fn kafkajs() {
    run_against_broker(
        "node",
        &[
            "tests/conformance/scenarios.js",
            "--bootstrap",
            "{bootstrap}",
        ],
    );
}

#[test]
fn kcat() {
    run_against_broker("bash", &["tests/conformance/kcat.sh", "{bootstrap}"]);
}

/// librdkafka's own integration tests (2.0.2, Debian's source, built by
/// `tests/librdkafka/setup.sh`): the CI subset 0001-0005, 0018, 0090, 0103, 0113 (less h, i,
/// j, n) and the patched 0129. The suite wants 4 partitions per auto-created topic.
#[test]
fn librdkafka_integration_suite_ci_subset() {
    run_against(
        &["--num-partitions", "4"],
        "librdkafka:",
        "bash",
        &["tests/librdkafka/run.sh", "{bootstrap}", "--ci"],
    );
}

#[test]
fn java_client_and_kafka_tools() {
    run_against_broker("bash", &["tests/conformance/java.sh", "{bootstrap}"]);
}
