//! Two app instances in separate OS processes share one app's tasks on a Kafka cluster
//! (Apache Kafka 4.4, and `sluice broker`): `examples/wordcount_processor` (a repartition
//! topic, a RocksDB count per word) runs as a survivor that keeps running, and as a victim
//! that is SIGKILLed at random instants 20 times (`KILLS` overrides), each time restarted
//! with one more chunk of input lines. Then the survivor is told to finish. Every word's
//! committed output must be the counts 1, 2, ..., n, in order, once each, where n is how
//! often the word occurs in the input topic: nothing lost and nothing counted twice
//! through kills, zombie sessions and the rebalances they cause.

#[path = "../kafka/tests/support/mod.rs"]
mod support;

mod cluster_support;
mod example_runs;
mod splitmix;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::read_committed_to_end;
use example_runs::example;
use sluice_kafka::{KafkaCluster, KafkaConfig};
use splitmix::Rng;

/// How long reading a topic to its end may take.
const READ_BOUND: Duration = Duration::from_secs(120);

const WORDS: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];

fn spawn(binary: &Path, bootstrap: &str, prefix: &str, dir: &Path, extra: &[&str]) -> Child {
    Command::new(binary)
        .args(["--bootstrap-servers", bootstrap, "--prefix", prefix])
        .args(["--session-timeout-ms", "6000", "--data-dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the example")
}

fn scenario(bootstrap: &str) {
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_u64);
    let kills: usize = std::env::var("KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng(seed);
    let binary = example("wordcount_processor");
    let work = tempfile::tempdir().expect("tempdir");
    let prefix = support::unique("kill");
    let stop = work.path().join("stop");
    let mut survivor = spawn(
        &binary,
        bootstrap,
        &prefix,
        &work.path().join("survivor"),
        &["--until-stop-file", stop.to_str().expect("utf-8 path")],
    );
    let started = Instant::now();
    let (mut killed, mut runs) = (0, 0);
    while killed < kills {
        runs += 1;
        let chunk = work.path().join(format!("chunk-{runs}.txt"));
        let lines: Vec<String> = (0..100)
            .map(|_| {
                (0..1 + rng.below(5))
                    .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        std::fs::write(&chunk, lines.join("\n")).expect("chunk");
        let mut victim = spawn(
            &binary,
            bootstrap,
            &prefix,
            &work.path().join("victim"),
            &[
                "--lines",
                chunk.to_str().expect("utf-8 path"),
                "--until-done",
            ],
        );
        // Joining a Kafka group takes seconds: kill anywhere from before the join to well
        // into processing.
        std::thread::sleep(Duration::from_millis(100 + rng.below(4000)));
        match victim.try_wait().expect("try_wait") {
            Some(status) => assert!(
                status.success(),
                "victim run {runs}: {status} (seed {seed})"
            ),
            None => {
                victim.kill().expect("SIGKILL");
                victim.wait().expect("reap");
                killed += 1;
            }
        }
        assert!(
            survivor.try_wait().expect("try_wait").is_none(),
            "the survivor stopped (seed {seed})"
        );
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "too slow (seed {seed})"
        );
    }
    std::fs::write(&stop, b"").expect("stop file");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = survivor.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = survivor.kill();
            panic!("the survivor did not finish (seed {seed})");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "survivor: {status} (seed {seed})");

    let cluster = KafkaCluster::connect(KafkaConfig::new(bootstrap)).expect("connect");
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    for r in read_committed_to_end(&cluster, &format!("{prefix}-text-input"), READ_BOUND) {
        let line = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        for word in line.split_whitespace() {
            *model.entry(word.to_string()).or_default() += 1;
        }
    }
    let mut outputs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in read_committed_to_end(&cluster, &format!("{prefix}-word-counts"), READ_BOUND) {
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
    assert!(!model.is_empty(), "no input (seed {seed})");
    assert_eq!(
        outputs.keys().collect::<Vec<_>>(),
        model.keys().collect::<Vec<_>>(),
        "seed {seed}"
    );
    for (word, n) in &model {
        let want: Vec<u64> = (1..=*n).collect();
        assert_eq!(
            outputs[word], want,
            "word {word} after {killed} kills (seed {seed})"
        );
    }
    println!(
        "{killed} kills over {runs} runs, {} words, {:.0} s, seed {seed}",
        model.values().sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn two_processes_one_killed_twenty_times_on_apache_kafka() {
    scenario(support::kafka_bootstrap());
}

#[test]
fn two_processes_one_killed_twenty_times_on_sluice_broker() {
    let sluice = support::SluiceBroker::start();
    scenario(&sluice.bootstrap);
}
