//! Word count with the Processor API, exactly once, on the embedded log.
//!
//! `split` turns each line into words and writes them, keyed by word, to the repartition
//! topic `words-repartition`; `count` keeps a RocksDB count per word and writes every new
//! count to `word-counts`. Output, state and input offsets commit as one transaction
//! (docs/architecture.md §3.1), so the counts are exact through crashes.
//!
//! ```text
//! cargo run --release --example wordcount_processor                 # demo on a temp dir
//! cargo run --release --example wordcount_processor -- --data-dir D --until-done
//! ```
//!
//! With `--data-dir D` it runs on that broker directory (state in `D/app-state`) and
//! creates `text-input` and `word-counts` if missing; `--lines FILE` produces FILE's lines
//! first; `--until-done` stops (cleanly) once every input line is committed. The process
//! kill test runs it this way and SIGKILLs it at random moments.

mod common;

use std::path::PathBuf;

use common::{Res, RunningApp};
use sluice::prelude::*;
use sluice::runtime::AppConfig;
use sluice::runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice::runtime::serde::{BigEndianSerde, StringSerde, UnitSerde};
use sluice::runtime::topology::{StoreSpec, Topology, TopologyBuilder};

/// Splits a line into lowercase words, each keyed by itself.
#[derive(Debug)]
struct Split;

impl Processor<(), String, String, String> for Split {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        line: Record<(), String>,
    ) -> ProcessResult {
        for word in line
            .value
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let word = word.to_lowercase();
            ctx.forward(Record::new(word.clone(), word, line.timestamp))?;
        }
        Ok(())
    }
}

/// Counts words in the `counts` store and forwards each new count.
#[derive(Debug)]
struct Count;

impl Processor<String, String, String, u64> for Count {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, u64>,
        word: Record<String, String>,
    ) -> ProcessResult {
        let mut counts = ctx.kv_store::<String, u64>("counts")?;
        let count = counts.get(&word.key)?.unwrap_or(0) + 1;
        counts.put(&word.key, &count)?;
        ctx.forward(word.with_value(count))?;
        Ok(())
    }
}

fn topology() -> Res<Topology> {
    let mut b = TopologyBuilder::new();
    b.add_source("lines", &["text-input"], UnitSerde, StringSerde)?;
    b.add_processor("split", &["lines"], || Split)?;
    b.add_sink(
        "to-words",
        "words-repartition",
        &["split"],
        StringSerde,
        StringSerde,
    )?;
    b.add_source("words", &["words-repartition"], StringSerde, StringSerde)?;
    b.add_processor("count", &["words"], || Count)?;
    b.add_state_store(
        StoreSpec::key_value::<String, u64>("counts", StringSerde, BigEndianSerde),
        &["count"],
    )?;
    b.add_sink::<String, u64>(
        "out",
        "word-counts",
        &["count"],
        StringSerde,
        BigEndianSerde,
    )?;
    Ok(b.build()?)
}

const DEMO: &str = "the quick brown fox jumps over the lazy dog
the dog barks and the fox runs
exactly once means every word counts once";

fn main() -> Res<()> {
    let mut data_dir: Option<PathBuf> = None;
    let mut lines_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => data_dir = args.next().map(Into::into),
            "--lines" => lines_file = args.next().map(Into::into),
            // It always stops once caught up; the flag says so explicitly for scripts.
            "--until-done" => {}
            other => return Err(format!("unknown argument {other:?} (see the file's doc)").into()),
        }
    }
    let temp = tempfile::tempdir()?;
    let demo = data_dir.is_none();
    let dir = data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    let broker = Broker::open(dir.join("log"), BrokerConfig::default())?;
    for topic in ["text-input", "word-counts"] {
        if broker.topic_metadata(topic).is_err() {
            broker.create_topic(topic, TopicConfig::default().with_partitions(2))?;
        }
    }
    let text = match &lines_file {
        Some(file) => Some(std::fs::read_to_string(file)?),
        None if demo => Some(DEMO.to_string()),
        None => None,
    };
    if let Some(text) = text {
        let producer = Producer::new(&broker, ProducerConfig::default())?;
        for line in text.lines() {
            producer.send(ProducerRecord::new("text-input", line.to_string()))?;
        }
        producer.flush()?;
    }

    let topology = topology()?;
    if demo {
        println!("{}", topology.describe());
    }
    let config = AppConfig::default().with_state_dir(dir.join("app-state"));
    // Until every input and repartition partition is committed to its end (so every word
    // is counted): checked after each commit.
    let app = RunningApp::start(&broker, "wordcount", topology, config)?;
    app.wait_caught_up(None)?;
    let (metrics, took) = app.shut_down()?;

    // Read the committed counts back: the last count of each word is its total.
    let totals = common::latest_u64_by_key(&broker, "word-counts")?;
    if demo {
        println!("word counts (exactly once):");
        for (word, count) in &totals {
            println!("  {word:>8} {count}");
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "records_processed": metrics.records_processed,
            "commits": metrics.commits,
            "records_restored": metrics.records_restored,
            "distinct_words": totals.len(),
            "seconds": took.as_secs_f64(),
        })
    );
    Ok(())
}
