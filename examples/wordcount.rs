//! `make demo`: word count with the DSL, exactly once, on the embedded log.
//!
//! Produces a bundled text (`examples/data/sluice.txt`) into `text-input`, runs the
//! topology of docs/architecture.md §4 (split lines into words, group by word, count, write every new
//! count to `word-counts-output`) as an exactly-once app until all input is committed, then
//! prints the ten most frequent words and checks them against a count done in memory.
//!
//! Run with `cargo run --release --example wordcount [DATA_DIR]` (default: a temporary
//! directory). It ends by itself. With `--bootstrap-servers HOST:PORT` it runs on that Kafka
//! cluster (Apache Kafka or `sluice broker`) instead, with topic names suffixed by the run
//! (`text-input-<run>` ...) so a rerun starts from empty topics; the data directory then
//! holds only the app's state.

mod common;

use std::collections::BTreeMap;

use common::Res;
use sluice::log::cluster::{Cluster, ProducerSpec, TxnProducer};
use sluice::prelude::*;

const TEXT: &str = include_str!("data/sluice.txt");

fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The topics and app id of a run.
struct Names {
    input: String,
    output: String,
    app: String,
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut servers) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bootstrap-servers" => {
                servers = Some(args.next().ok_or("--bootstrap-servers needs HOST:PORT")?);
            }
            other if other.starts_with("--") => {
                return Err(format!(
                    "unknown option {other}; usage: wordcount [DATA_DIR] [--bootstrap-servers HOST:PORT]"
                )
                .into());
            }
            other => dir = Some(std::path::PathBuf::from(other)),
        }
    }
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
    println!("sluice word count: data directory {}", dir.display());
    match servers {
        None => {
            let broker = Broker::open(dir.join("log"), BrokerConfig::default())?;
            for topic in ["text-input", "word-counts-output"] {
                if broker.topic_metadata(topic).is_err() {
                    broker.create_topic(topic, TopicConfig::default().with_partitions(2))?;
                }
            }
            let names = Names {
                input: "text-input".into(),
                output: "word-counts-output".into(),
                app: "wordcount".into(),
            };
            run(&broker, &dir, &names)
        }
        Some(servers) => on_kafka(&servers, &dir),
    }
}

#[cfg(feature = "kafka")]
fn on_kafka(servers: &str, dir: &std::path::Path) -> Res<()> {
    use sluice::kafka::{KafkaCluster, KafkaConfig, TopicSpec};
    let cluster = KafkaCluster::connect(KafkaConfig::new(servers))?;
    let run_id = format!("{:x}", sluice::log::now_ms());
    let names = Names {
        input: format!("text-input-{run_id}"),
        output: format!("word-counts-output-{run_id}"),
        app: format!("wordcount-{run_id}"),
    };
    println!(
        "on the Kafka cluster at {servers}: topics {} and {}",
        names.input, names.output
    );
    for topic in [&names.input, &names.output] {
        cluster.create_topic(topic, &TopicSpec::new(2))?;
    }
    run(&cluster, dir, &names)
}

#[cfg(not(feature = "kafka"))]
fn on_kafka(_servers: &str, _dir: &std::path::Path) -> Res<()> {
    Err("--bootstrap-servers needs sluice built with the `kafka` feature".into())
}

fn run<C: Cluster>(broker: &C, dir: &std::path::Path, names: &Names) -> Res<()> {
    let mut producer = broker.producer(&ProducerSpec::idempotent("wordcount-input"))?;
    for line in TEXT.lines() {
        producer.send(ProducerRecord::new(names.input.as_str(), line.to_string()))?;
    }
    producer.flush()?;
    producer.close()?;

    let b = StreamBuilder::new();
    b.stream::<(), String>(&names.input)
        .flat_map_values(|line| words(&line))
        .group_by(|_, word| word.clone()) // a key change: a repartition topic is added
        .count("word-counts") // a RocksDB store with a changelog
        .to_stream()
        .to(&names.output);
    let topology = b.build()?;
    println!("{}", topology.describe());

    let config = AppConfig::default().with_state_dir(dir.join("state"));
    // Until every input and repartition partition is committed to its end.
    let (metrics, took) = common::run_to_end(broker, &names.app, topology, config)?;

    // The committed output: the last count of each word is its total.
    let totals = common::latest_u64_by_key(broker, &names.output)?;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for word in TEXT.lines().flat_map(words) {
        *expected.entry(word).or_default() += 1;
    }
    let mut top: Vec<(&String, &u64)> = totals.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!(
        "top ten words (of {} distinct, {} in all):",
        totals.len(),
        totals.values().sum::<u64>()
    );
    for (word, count) in top.into_iter().take(10) {
        println!("  {count:>4}  {word}");
    }
    println!(
        "{} records in {:.2} s, {} commits; every count equals the in-memory count: {}",
        metrics.records_processed,
        took.as_secs_f64(),
        metrics.commits,
        totals == expected
    );
    if totals != expected {
        return Err("the counts differ from the in-memory count".into());
    }
    Ok(())
}
