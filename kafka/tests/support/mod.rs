//! The clusters the tests run against: `sluice broker` served in-process on an ephemeral
//! loopback port, and a real Apache Kafka 4.4 (KRaft, one node, loopback, ephemeral ports).
//!
//! Kafka starts once per test run: `make test` starts it and sets
//! `SLUICE_TEST_KAFKA_BOOTSTRAP`; without that variable, the first test that needs it starts
//! one with `tests/conformance/kafka.sh` and a watchdog process stops it once this test
//! process has exited.

#![allow(dead_code)] // each test binary uses its own part of the fixtures

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sluice_log::{Broker, BrokerConfig};
use sluice_server::{Server, ServerConfig};

/// `sluice broker` on an ephemeral loopback port, with its data in a temporary directory.
pub struct SluiceBroker {
    pub bootstrap: String,
    pub broker: Broker,
    server: Option<Server>,
    _dir: tempfile::TempDir,
}

impl SluiceBroker {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open broker");
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server =
            Server::bind(broker.clone(), addr, ServerConfig::default()).expect("bind server");
        Self {
            bootstrap: server.local_addr().to_string(),
            broker,
            server: Some(server),
            _dir: dir,
        }
    }
}

impl Drop for SluiceBroker {
    fn drop(&mut self) {
        self.broker.close_classic_groups();
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_secs(5));
        }
        let _ = self.broker.close();
    }
}

/// The bootstrap address of this run's Apache Kafka 4.4.
pub fn kafka_bootstrap() -> &'static str {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| match std::env::var("SLUICE_TEST_KAFKA_BOOTSTRAP") {
        Ok(bootstrap) if !bootstrap.is_empty() => bootstrap,
        _ => start_kafka(),
    })
}

fn start_kafka() -> String {
    // From the workspace root (the `sluice` package) or from a member crate's directory.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = [
        manifest.join("tests/conformance/kafka.sh"),
        manifest.join("../tests/conformance/kafka.sh"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("tests/conformance/kafka.sh");
    let dir = tempfile::Builder::new()
        .prefix("sluice-kafka-tests.")
        .tempdir()
        .expect("tempdir")
        .keep();
    let status = Command::new(&script)
        .arg("start")
        .arg(&dir)
        .status()
        .expect("run kafka.sh");
    assert!(status.success(), "{} start failed", script.display());
    // Stops the broker once this process is gone, however the test run ends.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{script}' stop '{dir}' >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        script = script.display(),
        dir = dir.display(),
    );
    // The watchdog must outlive this process, so it is never waited for: `setsid` detaches
    // it (bash then runs in a new session, reparented to init once `setsid` exits).
    let watchdog = Command::new("setsid")
        .args(["--fork", "bash", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the Kafka watchdog");
    assert!(watchdog.success(), "the Kafka watchdog did not start");
    std::fs::read_to_string(dir.join("bootstrap"))
        .expect("kafka.sh wrote the bootstrap")
        .trim()
        .to_string()
}

/// A topic name no other test or run uses.
pub fn unique(name: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{n}", std::process::id())
}

/// Polls `done` until it holds; panics past `bound` (a generous bound, so a hang fails
/// instead of blocking the run).
pub fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
