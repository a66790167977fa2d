//! `make demo`: word count with the DSL, exactly once, on the embedded log.
//!
//! Produces a bundled text (`examples/data/sluice.txt`) into `text-input`, runs the
//! topology of docs/architecture.md §4 (split lines into words, group by word, count, write every new
//! count to `word-counts-output`) as an exactly-once app until all input is committed, then
//! prints the ten most frequent words and checks them against a count done in memory.
//!
//! Run with `cargo run --release --example wordcount [DATA_DIR]` (default: a temporary
//! directory). It ends by itself.

mod common;

use std::collections::BTreeMap;

use common::Res;
use sluice::prelude::*;

const TEXT: &str = include_str!("data/sluice.txt");

fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn main() -> Res<()> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    println!("sluice word count: data directory {}", dir.display());
    let broker = Broker::open(dir.join("log"), BrokerConfig::default())?;
    for topic in ["text-input", "word-counts-output"] {
        if broker.topic_metadata(topic).is_err() {
            broker.create_topic(topic, TopicConfig::default().with_partitions(2))?;
        }
    }
    let producer = Producer::new(&broker, ProducerConfig::default())?;
    for line in TEXT.lines() {
        producer.send(ProducerRecord::new("text-input", line.to_string()))?;
    }
    producer.flush()?;

    let b = StreamBuilder::new();
    b.stream::<(), String>("text-input")
        .flat_map_values(|line| words(&line))
        .group_by(|_, word| word.clone()) // a key change: a repartition topic is added
        .count("word-counts") // a RocksDB store with a changelog
        .to_stream()
        .to("word-counts-output");
    let topology = b.build()?;
    println!("{}", topology.describe());

    let config = AppConfig::default().with_state_dir(dir.join("state"));
    // Until every input and repartition partition is committed to its end.
    let (metrics, took) = common::run_to_end(&broker, "wordcount", topology, config)?;

    // The committed output: the last count of each word is its total.
    let totals = common::latest_u64_by_key(&broker, "word-counts-output")?;
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
