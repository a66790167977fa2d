//! A Rust program that serves its embedded log to outside Kafka clients (`Server::bind`):
//! kcat, an ordinary Kafka client, produces text lines over TCP; an exactly-once DSL word
//! count runs on the embedded broker in this process; kcat reads the counts back with
//! `isolation.level=read_committed`. The counts are checked against an in-memory count.
//!
//! Run with `cargo run --release --example kafka_clients` (needs `kcat`; `make test`
//! installs it). Prints the address Kafka clients can use while it runs.
//!
//! With `--bootstrap-servers HOST:PORT` nothing is served: kcat and the app both use that
//! Kafka cluster (Apache Kafka or `sluice broker`), with the topics and the app id ending
//! in a run id (`lines-<run>` ...), so a rerun starts from empty topics.
//!
//! ```text
//! cargo run --release --example kafka_clients [-- --bootstrap-servers HOST:PORT]
//! ```

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Backend, Names, OnCluster, Res, Target};
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
    let mut servers = None;
    let usage = "[--bootstrap-servers HOST:PORT]";
    for (_, value) in common::named_args(&["--bootstrap-servers"], usage)? {
        servers = Some(value);
    }
    let temp = tempfile::tempdir()?;
    let dir = temp.path();
    let target = Target::new(servers.clone());
    let counts = target.run(&dir.join("log"), KafkaClients { servers, dir })?;

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for word in TEXT.lines().flat_map(words) {
        *expected.entry(word).or_default() += 1;
    }
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

/// The example, on whichever cluster [`Target`] chose; returns the counts kcat read.
struct KafkaClients<'a> {
    /// The Kafka cluster kcat talks to; `None`: the embedded log, served here.
    servers: Option<String>,
    /// Where the app's state goes.
    dir: &'a Path,
}

impl OnCluster for KafkaClients<'_> {
    type Output = BTreeMap<String, u64>;

    /// On a Kafka cluster: kcat talks to it directly.
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<Self::Output> {
        let servers = self.servers.ok_or("no bootstrap servers")?;
        word_count(cluster, names, &servers, self.dir)
    }

    /// On the embedded log: served to kcat over TCP while the app runs in this process.
    fn run_embedded(self, broker: &Broker, names: &Names) -> Res<Self::Output> {
        let server = Server::bind(
            broker.clone(),
            "127.0.0.1:0".parse()?,
            ServerConfig::default(),
        )?;
        let addr = server.local_addr().to_string();
        println!("serving the embedded log to Kafka clients at {addr}");
        let counts = word_count(broker, names, &addr, self.dir);
        server.shutdown(Duration::from_secs(5));
        broker.close()?;
        counts
    }
}

/// kcat produces the text to `lines`, the word count runs on `cluster`, and kcat reads
/// the counts back from `word-counts` (both at `addr`).
fn word_count<C: Backend>(
    cluster: &C,
    names: &Names,
    addr: &str,
    dir: &Path,
) -> Res<BTreeMap<String, u64>> {
    let topics = TopicConfig::default().with_partitions(2);
    common::create_topics(cluster, names, &["lines", "word-counts"], &topics)?;
    let (lines, counts_topic) = (names.of("lines"), names.of("word-counts"));

    // An outside producer: kcat, acks=all, one record per line.
    kcat(&["-b", addr, "-P", "-t", &lines, "-X", "acks=all"], TEXT)?;
    println!("kcat produced {} lines over TCP", TEXT.lines().count());

    // The app runs in this process, exactly once.
    let b = StreamBuilder::new();
    b.stream::<(), String>(&lines)
        .flat_map_values(|line| words(&line))
        .group_by(|_, word| word.clone())
        .count("counts")
        .to_value_stream()
        .map_values(|count: u64| count.to_string())
        .to_with(&counts_topic, StringSerde, StringSerde); // plain text for kcat
    let config = AppConfig::default().with_state_dir(dir.join("state"));
    let app_id = names.of("kafka-clients-wordcount");
    let (metrics, took) = common::run_to_end(cluster, &app_id, b.build()?, config)?;
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
            addr,
            "-C",
            "-t",
            &counts_topic,
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
    Ok(counts)
}
