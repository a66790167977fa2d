//! What the examples share: the command line, seeded data, the cluster they run on (the
//! embedded log or, with `--bootstrap-servers`, a Kafka cluster: [`cluster`]), running an app
//! until it has processed everything, and reading a topic back.
//!
//! Each example declares `mod common;` and compiles this file on its own (cargo does not
//! take `examples/common/mod.rs` for an example), so a function one example does not use
//! is dead code there: hence the `allow(dead_code)`.
//!
//! - [`named_args`], [`seed_args`]: `--name value` arguments.
//! - [`Rng`], [`mix`]: a small deterministic generator, so a seed replays a run.
//! - [`cluster`]: [`Target`] (`--bootstrap-servers` or the embedded log), [`OnCluster`]
//!   (an example written once for both), [`Names`] (topic names suffixed by a run id on
//!   Kafka), [`create_topics`], [`caught_up`] (whether a consumer group committed every
//!   partition of some topics to its end).
//! - [`RunningApp`], [`run_to_end`]: an app started, waited for and shut down.
//! - [`read_committed`], [`latest_u64_by_key`]: every committed record of a topic.
//! - [`print_differences`], [`conclude`]: reporting the checks.

#![allow(dead_code)]

pub mod cluster;

#[allow(unused_imports)] // each example uses its own part
pub use cluster::{Backend, Names, OnCluster, Target, caught_up, create_topics};

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use sluice::log::cluster::{Cluster, ClusterConsumer, ConsumerSpec, OffsetAt};
use sluice::prelude::*;
use sluice::runtime::AppConfig;
use sluice::runtime::app::{App, AppHandle, AppMetrics};
use sluice::runtime::topology::Topology;

/// The examples' result: any error, sendable across threads.
pub type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The command line's `--name value` pairs, in order. An argument that is not one of
/// `names`, or has no value, is an error that shows `usage`.
pub fn named_args(names: &[&str], usage: &str) -> Res<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        if !names.contains(&name.as_str()) {
            return Err(format!("unknown argument {name:?} (usage: {usage})").into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{name} needs a value (usage: {usage})"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The seed given with `--seed N`, or `default`, and where to run: `--bootstrap-servers
/// HOST:PORT` (a Kafka cluster) or the embedded log (the only arguments allowed).
pub fn seed_args(default: u64) -> Res<(u64, Target)> {
    let (mut seed, mut servers) = (default, None);
    let usage = "[--seed N] [--bootstrap-servers HOST:PORT]";
    for (name, value) in named_args(&["--seed", "--bootstrap-servers"], usage)? {
        match name.as_str() {
            "--seed" => seed = value.parse()?,
            _ => servers = Some(value),
        }
    }
    Ok((seed, Target::new(servers)))
}

/// A small deterministic generator (SplitMix64): the same seed makes the same data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `0..n` for signed quantities such as times and amounts (0 when `n` is 0
    /// or less).
    pub fn below_i64(&mut self, n: i64) -> i64 {
        (self.next_u64() % n.max(1) as u64) as i64
    }

    /// One of `items` (not empty), each as likely.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// SplitMix64's finalizer: a good 64-bit hash of a 64-bit number.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every topic `topology` reads: its inputs and its repartition topics.
pub fn source_topics(topology: &Topology) -> Vec<String> {
    topology
        .sub_topologies()
        .iter()
        .flat_map(|s| s.source_topics.iter().cloned())
        .collect()
}

/// An app started on a broker, with what waiting for it needs.
#[derive(Debug)]
pub struct RunningApp {
    /// The application id, which is also its consumer group.
    pub id: String,
    /// The running instance.
    pub handle: AppHandle,
    /// Every topic it reads ([`source_topics`]).
    pub sources: Vec<String>,
    /// When it was started.
    pub started: Instant,
}

impl RunningApp {
    /// Starts `topology` on `broker` (the embedded log or a Kafka cluster) as app `id` with
    /// `config`.
    pub fn start<C: Cluster>(
        broker: &C,
        id: &str,
        topology: Topology,
        config: AppConfig,
    ) -> Res<Self> {
        let app = App::new(id, topology, config)?;
        // As the app names them: its repartition topics are `<id>-...`.
        let sources = source_topics(app.topology());
        let started = Instant::now();
        let handle = app.start(broker)?;
        Ok(Self {
            id: id.to_string(),
            handle,
            sources,
            started,
        })
    }

    /// Whether the app runs and has committed everything its sources hold so far; an error
    /// if it failed.
    pub fn caught_up(&self) -> Res<bool> {
        Ok(self.handle.caught_up()?)
    }

    /// Waits until the app has [caught up](Self::caught_up); an error if it fails, or
    /// (`too slow`) if `deadline` passes first.
    pub fn wait_caught_up(&self, deadline: Option<Instant>) -> Res<()> {
        let timeout = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if self.handle.wait_until_caught_up(timeout)? {
            Ok(())
        } else {
            Err("too slow".into())
        }
    }

    /// The app's figures once its last commit is counted (the input offsets are visible as
    /// committed a moment before the commit counter moves).
    pub fn settled_metrics(&self) -> AppMetrics {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut metrics = self.handle.metrics();
        while metrics.commits == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            metrics = self.handle.metrics();
        }
        metrics
    }

    /// Shuts the app down cleanly; returns its [settled](Self::settled_metrics) figures and
    /// how long it ran.
    pub fn shut_down(self) -> Res<(AppMetrics, Duration)> {
        let metrics = self.settled_metrics();
        self.handle.shutdown()?;
        Ok((metrics, self.started.elapsed()))
    }
}

/// Runs `topology` as app `id` with `config` until it has processed and committed
/// everything its sources hold, then shuts it down: its figures and how long it ran.
pub fn run_to_end<C: Cluster>(
    broker: &C,
    id: &str,
    topology: Topology,
    config: AppConfig,
) -> Res<(AppMetrics, Duration)> {
    let app = RunningApp::start(broker, id, topology, config)?;
    app.wait_caught_up(None)?;
    app.shut_down()
}

/// Every committed record of `topic`, each partition in offset order, read_committed up to
/// the high watermark (so an open transaction, which holds such a reader back, is an error
/// after a few seconds).
pub fn read_committed<C: Cluster>(broker: &C, topic: &str) -> Res<Vec<ConsumerRecord>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let partitions = broker
        .partition_count(topic)?
        .ok_or_else(|| format!("no topic {topic}"))?;
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let tp = TopicPartition::new(topic, p);
        starts.push((tp.clone(), broker.list_offset(&tp, OffsetAt::Earliest)?));
        ends.push((tp.clone(), broker.list_offset(&tp, OffsetAt::Latest)?));
    }
    let mut consumer = broker.consumer(&ConsumerSpec::read_committed("example-reader"))?;
    consumer.assign(&starts)?;
    let mut out = Vec::new();
    for (tp, end) in &ends {
        while consumer.position(tp)? < *end {
            out.extend(consumer.poll(Duration::from_millis(10))?);
            if Instant::now() > deadline {
                return Err(format!("{topic}/{} does not read to its end", tp.partition).into());
            }
        }
    }
    Ok(out)
}

/// The last committed value of each key of `topic`, for string keys and big-endian `u64`
/// values (what `count` writes): each key's latest count.
pub fn latest_u64_by_key<C: Cluster>(broker: &C, topic: &str) -> Res<BTreeMap<String, u64>> {
    let mut latest = BTreeMap::new();
    for r in read_committed(broker, topic)? {
        let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        let value = <[u8; 8]>::try_from(r.value.as_deref().unwrap_or_default())
            .map_err(|_| format!("a value of {topic} is not a u64"))?;
        latest.insert(key, u64::from_be_bytes(value));
    }
    Ok(latest)
}

/// Prints how `got` differs from `expected`: each expected entry missing or different in
/// `got`, then each key only `got` has.
pub fn print_differences<K: Ord + Debug, V: PartialEq + Debug>(
    expected: &BTreeMap<K, V>,
    got: &BTreeMap<K, V>,
) {
    for (key, value) in expected {
        if got.get(key) != Some(value) {
            println!("  expected {key:?}: {value:?}, got {:?}", got.get(key));
        }
    }
    for key in got.keys().filter(|k| !expected.contains_key(*k)) {
        println!("  unexpected {key:?}");
    }
}

/// Prints `result: OK`, or `FAILED: ` and each of the `failures`; an error if any.
pub fn conclude(failures: &[String]) -> Res<()> {
    if failures.is_empty() {
        println!("result: OK");
        return Ok(());
    }
    for failure in failures {
        println!("FAILED: {failure}");
    }
    Err(format!("{} check(s) failed", failures.len()).into())
}
