//! `make demo`: word count with the DSL, exactly once, on the embedded log.
//!
//! Produces a bundled text (`examples/data/sluice.txt`) into `text-input`, runs the
//! topology of docs/architecture.md §4 (split lines into words, group by word, count, write every new
//! count to `word-counts-output`) as an exactly-once app until all input is committed, then
//! prints the ten most frequent words and checks them against a count done in memory.
//!
//! Run with `cargo run --release --example wordcount [DATA_DIR]` (default: a temporary
//! directory). It ends by itself. With `--bootstrap-servers HOST:PORT` it runs on that Kafka
//! cluster (Apache Kafka or `sluice broker`) instead, with topic names and the app id suffixed
//! by the run (`text-input-<run>` ...) so a rerun starts from empty topics; the data
//! directory then holds only the app's state.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Backend, Names, OnCluster, Res, Target};
use sluice::log::cluster::{Cluster, ProducerSpec, TxnProducer};
use sluice::prelude::*;

const TEXT: &str = include_str!("data/sluice.txt");
const INPUT: &str = "text-input";
const OUTPUT: &str = "word-counts-output";

fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
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
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
    println!("sluice word count: data directory {}", dir.display());
    Target::new(servers).run(&dir.join("log"), WordCount { dir: &dir })
}

/// The example, on whichever cluster [`Target`] chose.
struct WordCount<'a> {
    /// Where the app's state goes.
    dir: &'a Path,
}

impl OnCluster for WordCount<'_> {
    type Output = ();
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<()> {
        // A rerun on the same data directory finds the topics there already.
        for topic in [INPUT, OUTPUT] {
            let config = TopicConfig::default().with_partitions(2);
            cluster.create_topic_if_missing(&names.of(topic), &config)?;
        }
        run(cluster, self.dir, names)
    }
}

fn run<C: Cluster>(broker: &C, dir: &Path, names: &Names) -> Res<()> {
    let (input, output) = (names.of(INPUT), names.of(OUTPUT));
    let mut producer = broker.producer(&ProducerSpec::idempotent("wordcount-input"))?;
    for line in TEXT.lines() {
        producer.send(ProducerRecord::new(input.as_str(), line.to_string()))?;
    }
    producer.flush()?;
    producer.close()?;

    let b = StreamBuilder::new();
    b.stream::<(), String>(&input)
        .flat_map_values(|line| words(&line))
        .group_by(|_, word| word.clone()) // a key change: a repartition topic is added
        .count("word-counts") // a RocksDB store with a changelog
        .to_stream()
        .to(&output);
    let topology = b.build()?;
    println!("{}", topology.describe());

    let config = AppConfig::default().with_state_dir(dir.join("state"));
    // Until every input and repartition partition is committed to its end.
    let (metrics, took) = common::run_to_end(broker, &names.of("wordcount"), topology, config)?;

    // The committed output: the last count of each word is its total.
    let totals = common::latest_u64_by_key(broker, &output)?;
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
