//! Word count with the Processor API, exactly once, on the embedded log.
//!
//! `split` turns each line into words and writes them, keyed by word, to the repartition
//! topic `words-repartition`, declared internal, so the app names it after itself
//! (`<app>-words-repartition`: apps sharing a cluster never share it) and purges what it
//! has committed of it; `count` keeps a RocksDB count per word and writes every new
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
//!
//! With `--bootstrap-servers HOST:PORT` it runs on that Kafka cluster instead (Apache Kafka or
//! `sluice broker`; D then holds only the state), `--prefix P` names the topics and the app
//! `P-text-input`, `P-word-counts`, `P-wordcount` (so several runs share a cluster),
//! `--session-timeout-ms MS` sets the group session, and `--until-stop-file F` keeps it
//! running until F exists, then until every input line is committed. The two-process kill
//! test on Kafka runs one instance that way and SIGKILLs and restarts another.

mod common;

use std::path::PathBuf;

use common::{Res, RunningApp};
use sluice::log::cluster::{Cluster, ProducerSpec, TxnProducer};
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

fn topology(input: &str, output: &str) -> Res<Topology> {
    let mut b = TopologyBuilder::new();
    b.add_source("lines", &[input], UnitSerde, StringSerde)?;
    b.add_processor("split", &["lines"], || Split)?;
    b.add_sink(
        "to-words",
        "words-repartition",
        &["split"],
        StringSerde,
        StringSerde,
    )?;
    b.add_source("words", &["words-repartition"], StringSerde, StringSerde)?;
    b.declare_internal_topic("words-repartition");
    b.add_processor("count", &["words"], || Count)?;
    b.add_state_store(
        StoreSpec::key_value::<String, u64>("counts", StringSerde, BigEndianSerde),
        &["count"],
    )?;
    b.add_sink::<String, u64>("out", output, &["count"], StringSerde, BigEndianSerde)?;
    Ok(b.build()?)
}

const DEMO: &str = "the quick brown fox jumps over the lazy dog
the dog barks and the fox runs
exactly once means every word counts once";

/// The command line.
#[derive(Debug, Default)]
struct Options {
    data_dir: Option<PathBuf>,
    lines: Option<PathBuf>,
    servers: Option<String>,
    prefix: Option<String>,
    session_timeout_ms: Option<u64>,
    stop_file: Option<PathBuf>,
}

fn options() -> Res<Options> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--data-dir" => o.data_dir = Some(value()?.into()),
            "--lines" => o.lines = Some(value()?.into()),
            "--bootstrap-servers" => o.servers = Some(value()?),
            "--prefix" => o.prefix = Some(value()?),
            "--session-timeout-ms" => o.session_timeout_ms = Some(value()?.parse()?),
            "--until-stop-file" => o.stop_file = Some(value()?.into()),
            // It always stops once caught up; the flag says so explicitly for scripts.
            "--until-done" => {}
            other => return Err(format!("unknown argument {other:?} (see the file's doc)").into()),
        }
    }
    Ok(o)
}

/// The topics and app id of a run.
struct Names {
    input: String,
    output: String,
    app: String,
}

fn main() -> Res<()> {
    let o = options()?;
    let temp = tempfile::tempdir()?;
    let demo = o.data_dir.is_none();
    let dir = o
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let named = |name: &str| match &o.prefix {
        Some(prefix) => format!("{prefix}-{name}"),
        None => name.to_string(),
    };
    let names = Names {
        input: named("text-input"),
        output: named("word-counts"),
        app: named("wordcount"),
    };
    match &o.servers {
        None => {
            let broker = Broker::open(dir.join("log"), BrokerConfig::default())?;
            for topic in [&names.input, &names.output] {
                if broker.topic_metadata(topic).is_err() {
                    broker.create_topic(topic, TopicConfig::default().with_partitions(2))?;
                }
            }
            run(&broker, &o, &dir, &names, demo)
        }
        Some(servers) => on_kafka(servers, &o, &dir, &names),
    }
}

#[cfg(feature = "kafka")]
fn on_kafka(servers: &str, o: &Options, dir: &std::path::Path, names: &Names) -> Res<()> {
    use sluice::kafka::{KafkaCluster, KafkaConfig, TopicSpec};
    let cluster = KafkaCluster::connect(KafkaConfig::new(servers))?;
    for topic in [&names.input, &names.output] {
        cluster.create_topic(topic, &TopicSpec::new(2))?;
    }
    run(&cluster, o, dir, names, false)
}

#[cfg(not(feature = "kafka"))]
fn on_kafka(_: &str, _: &Options, _: &std::path::Path, _: &Names) -> Res<()> {
    Err("--bootstrap-servers needs sluice built with the `kafka` feature".into())
}

fn run<C: Cluster>(
    broker: &C,
    o: &Options,
    dir: &std::path::Path,
    names: &Names,
    demo: bool,
) -> Res<()> {
    let text = match &o.lines {
        Some(file) => Some(std::fs::read_to_string(file)?),
        None if demo => Some(DEMO.to_string()),
        None => None,
    };
    if let Some(text) = text {
        let mut producer = broker.producer(&ProducerSpec::idempotent("wordcount-input"))?;
        for line in text.lines() {
            producer.send(ProducerRecord::new(names.input.as_str(), line.to_string()))?;
        }
        producer.flush()?;
        producer.close()?;
    }

    let topology = topology(&names.input, &names.output)?;
    if demo {
        println!("{}", topology.describe());
    }
    let mut config = AppConfig::default().with_state_dir(dir.join("app-state"));
    if let Some(ms) = o.session_timeout_ms {
        config = config.with_session_timeout(std::time::Duration::from_millis(ms));
    }
    let app = RunningApp::start(broker, &names.app, topology, config)?;
    if let Some(stop) = &o.stop_file {
        while !stop.exists() {
            if app.handle.state() == sluice::runtime::app::AppState::Error {
                return Err(app.handle.error().unwrap_or_default().into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    // Until every input and repartition partition is committed to its end (so every word
    // is counted): checked after each commit.
    app.wait_caught_up(None)?;
    let (metrics, took) = app.shut_down()?;

    // Read the committed counts back: the last count of each word is its total.
    let totals = common::latest_u64_by_key(broker, &names.output)?;
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
