//! A real process-kill test (docs/architecture.md §3.1): `examples/wordcount_processor` runs exactly-once
//! word count on a data directory and is SIGKILLed at random moments, at least 20 times,
//! each followed by a restart (each run first produces one more chunk of lines). Then it
//! runs to the end. Every word's output must be the counts 1, 2, ..., n in order, once each,
//! where n is how often the word occurs in the input topic, and the RocksDB store must
//! hold exactly n: nothing lost, nothing applied twice, through kill -9 of broker and app
//! together (one process).

mod cluster_support;
mod example_runs;
mod splitmix;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::read_committed_to_end;
use example_runs::example;
use sluice::log::{Broker, BrokerConfig};
use sluice::runtime::serde::{BigEndianSerde, StringSerde};
use sluice::runtime::state::{StateDb, StoreName, WriteOverlay};
use splitmix::Rng;

const KILLS: usize = 20;
/// How long reading a topic to its end may take.
const READ_BOUND: Duration = Duration::from_secs(60);
const WORDS: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima",
];

#[test]
fn wordcount_survives_twenty_kill_9s_exactly_once() {
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_u64);
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = example("wordcount_processor");
    let mut kills = 0;
    let mut runs = 0;
    let started = Instant::now();
    while kills < KILLS {
        runs += 1;
        let chunk = dir.path().join(format!("chunk-{runs}.txt"));
        let lines: Vec<String> = (0..200)
            .map(|_| {
                (0..1 + rng.below(6))
                    .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        std::fs::write(&chunk, lines.join("\n")).expect("chunk");
        let mut child = Command::new(&binary)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--lines")
            .arg(&chunk)
            .arg("--until-done")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the example");
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        match child.try_wait().expect("try_wait") {
            Some(status) => assert!(
                status.success(),
                "run {runs} failed: {status} (seed {seed})"
            ),
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                kills += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "too slow (seed {seed})"
        );
    }
    // One last run to the end.
    let status = Command::new(&binary)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--until-done")
        .stdout(Stdio::null())
        .status()
        .expect("final run");
    assert!(status.success(), "final run failed (seed {seed})");

    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    for r in read_committed_to_end(&broker, "text-input", READ_BOUND) {
        let line = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        for word in line.split_whitespace() {
            *model.entry(word.to_string()).or_default() += 1;
        }
    }
    let mut outputs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in read_committed_to_end(&broker, "word-counts", READ_BOUND) {
        let word = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        let count = u64::from_be_bytes(
            r.value
                .as_deref()
                .expect("value")
                .try_into()
                .expect("8-byte count"),
        );
        outputs.entry(word).or_default().push(count);
    }
    assert_eq!(
        outputs.keys().collect::<Vec<_>>(),
        model.keys().collect::<Vec<_>>(),
        "seed {seed}"
    );
    for (word, n) in &model {
        let want: Vec<u64> = (1..=*n).collect();
        assert_eq!(
            outputs[word], want,
            "word {word} after {kills} kills (seed {seed})"
        );
    }
    drop(broker);
    let db = StateDb::open(&dir.path().join("app-state").join("rocksdb")).expect("state");
    let mut stored = BTreeMap::new();
    for p in 0..2 {
        let store = db
            .kv_store::<String, u64>(&StoreName::new("counts", p), StringSerde, BigEndianSerde)
            .expect("store");
        let nothing_written = WriteOverlay::default();
        for entry in store.all(&nothing_written).expect("scan") {
            let (word, count) = entry.expect("read");
            stored.insert(word, count);
        }
    }
    assert_eq!(stored, model, "RocksDB after {kills} kills (seed {seed})");
    println!(
        "{kills} kills over {runs} runs, {} words, seed {seed}",
        model.values().sum::<u64>()
    );
}
