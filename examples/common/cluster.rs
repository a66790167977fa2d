//! Where an example runs: the embedded log in a data directory (the default), or a Kafka
//! cluster (Apache Kafka, a managed one, or `sluice broker`) given with
//! `--bootstrap-servers HOST:PORT`.
//!
//! An example writes what it does once, generic over the cluster ([`OnCluster`]), and
//! [`Target::run`] runs it on the one the command line chose. On a Kafka cluster every topic
//! and app id of the example ends in a run id ([`Names::of`]: `clicks` becomes
//! `clicks-<run>`), so a rerun starts from empty topics and a fresh consumer group; on the
//! embedded log the names stay as they are.
//!
//! - [`Target`]: the parsed `--bootstrap-servers` (or its absence).
//! - [`OnCluster`]: what an example does, on any [`Backend`].
//! - [`Backend`]: a [`Cluster`] that can also create an example's topics.
//! - [`Names`], [`create_topics`], [`caught_up`]: the run's names, its topics, and whether a
//!   consumer group has committed them to their end.

use std::path::Path;

use sluice::log::cluster::{Cluster, OffsetAt};
use sluice::prelude::*;

use super::Res;

/// The cluster an example runs on, as the command line gave it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--bootstrap-servers`: a Kafka cluster; `None`: the embedded log.
    servers: Option<String>,
}

impl Target {
    /// The Kafka cluster at `servers` (`HOST:PORT[,HOST:PORT...]`), or the embedded log.
    pub fn new(servers: Option<String>) -> Self {
        Self { servers }
    }

    /// The Kafka cluster's bootstrap servers; `None` on the embedded log.
    pub fn servers(&self) -> Option<&str> {
        self.servers.as_deref()
    }

    /// Runs `job`: on the embedded log opened in `log_dir` (created if needed), or on the
    /// Kafka cluster, with names suffixed by a run id there.
    pub fn run<J: OnCluster>(&self, log_dir: &Path, job: J) -> Res<J::Output> {
        match &self.servers {
            None => {
                let broker = Broker::open(log_dir, BrokerConfig::default())?;
                job.run_embedded(&broker, &Names::default())
            }
            Some(servers) => on_kafka(servers, job),
        }
    }
}

#[cfg(feature = "kafka")]
fn on_kafka<J: OnCluster>(servers: &str, job: J) -> Res<J::Output> {
    use sluice::kafka::{KafkaCluster, KafkaConfig};
    let cluster = KafkaCluster::connect(KafkaConfig::new(servers))?;
    let run = format!("{:x}-{}", sluice::log::now_ms(), std::process::id());
    println!("on the Kafka cluster at {servers}: topic names and app ids end in -{run}");
    job.run(&cluster, &Names { run: Some(run) })
}

#[cfg(not(feature = "kafka"))]
fn on_kafka<J: OnCluster>(_servers: &str, _job: J) -> Res<J::Output> {
    Err("--bootstrap-servers needs sluice built with the `kafka` feature".into())
}

/// What an example does, written once for any cluster.
pub trait OnCluster: Sized {
    /// What it returns.
    type Output;

    /// Runs on `cluster`, naming its topics and apps with `names`.
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<Self::Output>;

    /// Runs on the embedded log: [`run`](Self::run) unless the example needs the broker
    /// itself (to serve it to Kafka clients, say).
    fn run_embedded(self, broker: &Broker, names: &Names) -> Res<Self::Output> {
        self.run(broker, names)
    }
}

/// A cluster an example can run on: the runtime's [`Cluster`] seam, plus creating the
/// example's own topics (the seam creates internal topics only).
pub trait Backend: Cluster {
    /// Creates `topic` with `config`'s partitions, cleanup policy and retention unless it
    /// exists; whether it was created.
    fn create_topic_if_missing(&self, topic: &str, config: &TopicConfig) -> Res<bool>;
}

impl Backend for Broker {
    fn create_topic_if_missing(&self, topic: &str, config: &TopicConfig) -> Res<bool> {
        if self.topic_metadata(topic).is_ok() {
            return Ok(false);
        }
        self.create_topic(topic, config.clone())?;
        Ok(true)
    }
}

#[cfg(feature = "kafka")]
impl Backend for sluice::kafka::KafkaCluster {
    fn create_topic_if_missing(&self, topic: &str, config: &TopicConfig) -> Res<bool> {
        use sluice::kafka::{Created, TopicSpec};
        use sluice::log::CleanupPolicy;
        let retention = config.retention_ms.unwrap_or(-1); // -1: kept forever
        let mut spec =
            TopicSpec::new(config.partitions).with_config("retention.ms", retention.to_string());
        if config.cleanup == CleanupPolicy::Compact {
            spec = spec.with_config("cleanup.policy", "compact");
        }
        Ok(self.create_topic(topic, &spec)? == Created::New)
    }
}

/// The names of one run's topics and apps: as written on the embedded log, suffixed with
/// the run id on a Kafka cluster.
#[derive(Debug, Clone, Default)]
pub struct Names {
    run: Option<String>,
}

impl Names {
    /// The name `name` has in this run.
    pub fn of(&self, name: &str) -> String {
        match &self.run {
            Some(run) => format!("{name}-{run}"),
            None => name.to_string(),
        }
    }

    /// Whether this run is on a Kafka cluster.
    pub fn on_kafka(&self) -> bool {
        self.run.is_some()
    }
}

/// Creates each of `topics` (logical names, see [`Names::of`]) with `config`; an error if
/// one exists already (the example needs it empty: a fresh data directory).
pub fn create_topics<C: Backend>(
    cluster: &C,
    names: &Names,
    topics: &[&str],
    config: &TopicConfig,
) -> Res<()> {
    for topic in topics {
        let name = names.of(topic);
        if !cluster.create_topic_if_missing(&name, config)? {
            return Err(format!("topic {name} exists already (use a fresh data directory)").into());
        }
    }
    Ok(())
}

/// Whether consumer group `group` has committed every partition of `topics` to its end (a
/// partition without a committed offset counts as committed at its log start). Asked
/// through the cluster, without joining the group.
pub fn caught_up<C: Cluster, S: AsRef<str>>(cluster: &C, group: &str, topics: &[S]) -> Res<bool> {
    for topic in topics {
        let topic = topic.as_ref();
        let partitions = cluster
            .partition_count(topic)?
            .ok_or_else(|| format!("no topic {topic}"))?;
        let tps: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(topic, p))
            .collect();
        for (tp, committed) in cluster.committed_offsets(group, &tps)? {
            let committed = match committed {
                Some(offset) => offset,
                None => cluster.list_offset(&tp, OffsetAt::Earliest)?,
            };
            if committed < cluster.list_offset(&tp, OffsetAt::Latest)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
