//! `make demo`: word count with the DSL, exactly once, on the embedded log.
//!
//! Produces a bundled text (`examples/data/sluice.txt`) into `text-input`, runs the
//! topology of DESIGN §4 (split lines into words, group by word, count, write every new
//! count to `word-counts-output`) as an exactly-once app until all input is committed, then
//! prints the ten most frequent words and checks them against a count done in memory.
//!
//! Run with `cargo run --release --example wordcount [DATA_DIR]` (default: a temporary
//! directory). It ends by itself.

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

use sluice::dsl::StreamBuilder;
use sluice::log::{IsolationLevel, OffsetSpec, TopicPartition};
use sluice::prelude::*;
use sluice::runtime::AppConfig;
use sluice::runtime::app::{App, AppState};

const TEXT: &str = include_str!("data/sluice.txt");

fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether the app committed every input and repartition partition to its end.
fn done(broker: &Broker) -> Result<bool, Box<dyn Error>> {
    for topic in ["text-input", "word-counts-repartition"] {
        let count = broker.partition_count(topic)?;
        let tps: Vec<TopicPartition> = (0..count).map(|p| TopicPartition::new(topic, p)).collect();
        for (tp, committed) in broker.offset_fetch("wordcount", &tps, false)? {
            let end = broker
                .list_offsets(&tp.topic, tp.partition, OffsetSpec::Latest)?
                .map_or(0, |l| l.offset);
            if committed.unwrap_or(0) < end {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn main() -> Result<(), Box<dyn Error>> {
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

    let app = App::new(
        "wordcount",
        topology,
        AppConfig::default().with_state_dir(dir.join("state")),
    )?;
    let started = Instant::now();
    let handle = app.start(&broker)?;
    while !(handle.state() == AppState::Running && done(&broker)?) {
        if handle.state() == AppState::Error {
            return Err(handle.error().unwrap_or_default().into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let metrics = handle.metrics();
    handle.shutdown()?;

    // The committed output: the last count of each word is its total.
    let mut consumer = Consumer::new(
        &broker,
        ConsumerConfig::default().with_isolation(IsolationLevel::ReadCommitted),
    );
    consumer.assign(
        (0..2)
            .map(|p| TopicPartition::new("word-counts-output", p))
            .collect(),
    )?;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let records = consumer.poll(Duration::from_millis(100))?;
        if records.is_empty() {
            break;
        }
        for r in records {
            let word = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let count = r
                .value
                .as_deref()
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map_or(0, u64::from_be_bytes);
            totals.insert(word, count);
        }
    }
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
        started.elapsed().as_secs_f64(),
        metrics.commits,
        totals == expected
    );
    if totals != expected {
        return Err("the counts differ from the in-memory count".into());
    }
    Ok(())
}
