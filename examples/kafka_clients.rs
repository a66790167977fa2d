//! A Rust program that serves its embedded log to outside Kafka clients (`Server::bind`):
//! kcat, an ordinary Kafka client, produces text lines over TCP; an exactly-once DSL word
//! count runs on the embedded broker in this process; kcat reads the counts back with
//! `isolation.level=read_committed`. The counts are checked against an in-memory count.
//!
//! Run with `cargo run --release --example kafka_clients` (needs `kcat`; `make test`
//! installs it). Prints the address Kafka clients can use while it runs.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Res;
use sluice::dsl::StreamBuilder;
use sluice::prelude::*;
use sluice::runtime::AppConfig;
use sluice::runtime::serde::StringSerde;
use sluice::server::{Server, ServerConfig};

const TEXT: &str = include_str!("data/sluice.txt");

fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Runs kcat with `args`, feeding `input`; returns its stdout.
fn kcat(args: &[&str], input: &str) -> Res<String> {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("kcat could not start ({e}); install it (apt-get install kcat)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "kcat {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() -> Res<()> {
    let temp = tempfile::tempdir()?;
    let broker = Broker::open(temp.path().join("log"), BrokerConfig::default())?;
    for topic in ["lines", "word-counts"] {
        broker.create_topic(topic, TopicConfig::default().with_partitions(2))?;
    }
    let server = Server::bind(
        broker.clone(),
        "127.0.0.1:0".parse()?,
        ServerConfig::default(),
    )?;
    let addr = server.local_addr().to_string();
    println!("serving the embedded log to Kafka clients at {addr}");

    // An outside producer: kcat, acks=all, one record per line.
    kcat(&["-b", &addr, "-P", "-t", "lines", "-X", "acks=all"], TEXT)?;
    println!("kcat produced {} lines over TCP", TEXT.lines().count());

    // The app runs on the embedded broker, exactly once, next to the server.
    let b = StreamBuilder::new();
    b.stream::<(), String>("lines")
        .flat_map_values(|line| words(&line))
        .group_by(|_, word| word.clone())
        .count("counts")
        .to_value_stream()
        .map_values(|count: u64| count.to_string())
        .to_with("word-counts", StringSerde, StringSerde); // plain text for kcat
    let config = AppConfig::default().with_state_dir(temp.path().join("state"));
    let (metrics, took) =
        common::run_to_end(&broker, "kafka-clients-wordcount", b.build()?, config)?;
    println!(
        "the word count processed {} records in {:.2} s ({} commits)",
        metrics.records_processed,
        took.as_secs_f64(),
        metrics.commits
    );

    // An outside consumer: kcat, read_committed, the newest count per word wins.
    let out = kcat(
        &[
            "-b",
            &addr,
            "-C",
            "-t",
            "word-counts",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-X",
            "isolation.level=read_committed",
            "-f",
            "%k\t%s\n",
        ],
        "",
    )?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in out.lines() {
        let (word, count) = line.split_once('\t').ok_or("a line without a tab")?;
        counts.insert(word.to_string(), count.parse()?);
    }
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for word in TEXT.lines().flat_map(words) {
        *expected.entry(word).or_default() += 1;
    }
    server.shutdown(Duration::from_secs(5));
    broker.close()?;
    println!(
        "kcat read {} counts back; every count equals the in-memory count: {}",
        counts.len(),
        counts == expected
    );
    if counts != expected {
        common::print_differences(&expected, &counts);
        return Err("the counts read over TCP differ from the in-memory count".into());
    }
    Ok(())
}
