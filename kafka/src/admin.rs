//! [`KafkaCluster`]: a connection to a Kafka cluster, and the admin calls the runtime needs
//! to start an app there: partition counts, creating internal topics with their configs,
//! deleting topics, and a partition's earliest and latest offsets.
//!
//! librdkafka's admin calls are futures driven by its own polling thread; each call here
//! blocks the calling thread until the answer, bounded by the config's timeout (from async
//! code, call them on a blocking thread, e.g. tokio's `spawn_blocking`). Partition counts
//! and the wait for a new topic's leaders read the metadata of every topic: asking for one
//! topic by name would auto-create it on clusters with `auto.create.topics.enable`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::error::{KafkaClusterError, Result};

/// A topic to create: its partition count, replication factor and Kafka configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Partitions.
    pub partitions: i32,
    /// Replicas of each partition; `None` leaves it to the cluster's
    /// `default.replication.factor` (Kafka 2.4 and later).
    pub replication_factor: Option<i16>,
    /// Topic configs (`cleanup.policy`, `retention.ms`, `min.insync.replicas`, ...).
    pub configs: BTreeMap<String, String>,
}

impl TopicSpec {
    /// `partitions` partitions, the cluster's default replication factor, no configs.
    pub fn new(partitions: i32) -> Self {
        Self {
            partitions,
            replication_factor: None,
            configs: BTreeMap::new(),
        }
    }

    /// A state store's changelog: compacted, so the newest value of every key is kept
    /// however old it is, as Kafka Streams creates them.
    pub fn changelog(partitions: i32) -> Self {
        Self::new(partitions).with_config("cleanup.policy", "compact")
    }

    /// Sets the replication factor.
    pub fn with_replication_factor(mut self, factor: i16) -> Self {
        self.replication_factor = Some(factor);
        self
    }

    /// Sets a topic config.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// What [`KafkaCluster::create_topic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The topic was created.
    New,
    /// It existed already (perhaps created by another instance meanwhile); nothing changed.
    Existed,
}

/// A partition's offsets: where its log starts and its high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The first offset still in the log.
    pub earliest: i64,
    /// The high watermark: the offset the next record will get.
    pub latest: i64,
}

/// A connection to a Kafka cluster. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct KafkaCluster {
    pub(crate) admin: Arc<AdminClient<DefaultClientContext>>,
    config: KafkaConfig,
    /// Per group, an assign-mode handle that reads its committed offsets without joining.
    pub(crate) offset_readers:
        Arc<std::sync::Mutex<std::collections::HashMap<String, crate::KafkaConsumer>>>,
}

impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster")
            .field("bootstrap.servers", &self.config.get("bootstrap.servers"))
            .finish_non_exhaustive()
    }
}

impl KafkaCluster {
    /// Connects to the cluster `config` names and checks that it answers (one metadata
    /// request), so a wrong address or a refused login fails here, with librdkafka's
    /// reason, rather than at the first use.
    pub fn connect(config: KafkaConfig) -> Result<Self> {
        let mut client = config.client_config();
        // `offsets` reports the high watermark (ListOffsets under read_uncommitted), as the
        // embedded broker does; librdkafka's default would be the last stable offset.
        client.set("isolation.level", "read_uncommitted");
        let admin: AdminClient<DefaultClientContext> =
            client.create().map_err(KafkaClusterError::Config)?;
        let cluster = Self {
            admin: Arc::new(admin),
            config,
            offset_readers: Arc::default(),
        };
        cluster
            .admin
            .inner()
            .fetch_metadata(None, cluster.config.timeout())
            .map_err(KafkaClusterError::client(format!(
                "connecting to {}",
                cluster.config.get("bootstrap.servers").unwrap_or("?")
            )))?;
        Ok(cluster)
    }

    /// The config it was connected with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// How many partitions `topic` has; `None` when there is no such topic. Asks for every
    /// topic's metadata rather than this one's, so the question never auto-creates it on a
    /// cluster with `auto.create.topics.enable`.
    pub fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, self.config.timeout())
            .map_err(KafkaClusterError::client(format!(
                "fetching metadata for `{topic}`"
            )))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match found.error().map(RDKafkaErrorCode::from) {
            None => Ok(Some(
                i32::try_from(found.partitions().len()).unwrap_or(i32::MAX),
            )),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(None),
            Some(code) => Err(KafkaClusterError::Topic {
                call: "reading the metadata of topic",
                topic: topic.to_string(),
                code,
            }),
        }
    }

    /// Creates `topic` as `spec` says. A topic that exists already is not an error
    /// ([`Created::Existed`]; its partitions and configs are left as they are): two app
    /// instances starting at once both ask for the same internal topics.
    pub fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<Created> {
        let replication = TopicReplication::Fixed(spec.replication_factor.map_or(-1, i32::from));
        let mut new_topic = NewTopic::new(topic, spec.partitions, replication);
        for (key, value) in &spec.configs {
            new_topic = new_topic.set(key, value);
        }
        let options = self.options();
        let results = futures::executor::block_on(self.admin.create_topics([&new_topic], &options))
            .map_err(KafkaClusterError::client(format!(
                "creating topic `{topic}`"
            )))?;
        match single(results, "creating topic", topic)? {
            Ok(_) => {
                self.wait_until_led(topic)?;
                Ok(Created::New)
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                // Perhaps created a moment ago by another instance: usable only once led.
                self.wait_until_led(topic)?;
                Ok(Created::Existed)
            }
            Err((_, code)) => Err(KafkaClusterError::Topic {
                call: "creating topic",
                topic: topic.to_string(),
                code,
            }),
        }
    }

    /// Deletes `topic` and its data.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        let options = self.options();
        let results = futures::executor::block_on(self.admin.delete_topics(&[topic], &options))
            .map_err(KafkaClusterError::client(format!(
                "deleting topic `{topic}`"
            )))?;
        single(results, "deleting topic", topic)?.map_err(|(_, code)| {
            KafkaClusterError::Topic {
                call: "deleting topic",
                topic: topic.to_string(),
                code,
            }
        })?;
        Ok(())
    }

    /// A topic's configs as the cluster reports them (its own settings and the defaults it
    /// inherits), by name; a config without a value (a sensitive one) is left out.
    pub fn topic_configs(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        let options = self.options();
        let resource = ResourceSpecifier::Topic(topic);
        let results =
            futures::executor::block_on(self.admin.describe_configs([&resource], &options))
                .map_err(KafkaClusterError::client(format!(
                    "describing the configs of topic `{topic}`"
                )))?;
        let described =
            single(results, "describing the configs of topic", topic)?.map_err(|code| {
                KafkaClusterError::Topic {
                    call: "describing the configs of topic",
                    topic: topic.to_string(),
                    code,
                }
            })?;
        Ok(described
            .entries
            .into_iter()
            .filter_map(|e| e.value.map(|v| (e.name, v)))
            .collect())
    }

    /// A partition's earliest offset and high watermark, from its leader. While the
    /// partition has no leader yet (just created, or its leader moving) the call is tried
    /// again, up to the config's timeout.
    pub fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        let deadline = Instant::now() + self.config.timeout();
        let (earliest, latest) = loop {
            let answer = self.admin.inner().fetch_watermarks(
                topic,
                partition,
                deadline.saturating_duration_since(Instant::now()),
            );
            match answer {
                Err(e)
                    if e.rdkafka_error_code().is_some_and(leader_moving)
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(RETRY_BACKOFF);
                }
                other => break other,
            }
        }
        .map_err(|source| match source.rdkafka_error_code() {
            Some(code) if crate::error::is_unknown_topic(code) => KafkaClusterError::Partition {
                call: "listing offsets of",
                topic: topic.to_string(),
                partition,
                code,
            },
            _ => KafkaClusterError::Client {
                call: format!("listing offsets of {topic}-{partition}"),
                source,
            },
        })?;
        Ok(PartitionOffsets { earliest, latest })
    }

    /// Deletes the records of `topic`-`partition` before offset `before` (Kafka's
    /// DeleteRecords): its log start moves there. Returns the new log start.
    pub fn delete_records(&self, topic: &str, partition: i32, before: i64) -> Result<i64> {
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(before))
            .map_err(KafkaClusterError::client(format!(
                "deleting records of {topic}-{partition} before {before}"
            )))?;
        let options = self.options();
        let answer = futures::executor::block_on(self.admin.delete_records(&list, &options))
            .map_err(KafkaClusterError::client(format!(
                "deleting records of {topic}-{partition} before {before}"
            )))?;
        let element = answer.find_partition(topic, partition).ok_or_else(|| {
            KafkaClusterError::MissingFromAnswer {
                call: "deleting records of",
                topic: format!("{topic}-{partition}"),
            }
        })?;
        if let Err(e) = element.error() {
            return Err(match e.rdkafka_error_code() {
                Some(code) => KafkaClusterError::Partition {
                    call: "deleting records of",
                    topic: topic.to_string(),
                    partition,
                    code,
                },
                None => KafkaClusterError::Client {
                    call: format!("deleting records of {topic}-{partition} before {before}"),
                    source: e,
                },
            });
        }
        Ok(element.offset().to_raw().unwrap_or(before))
    }

    /// Waits until `topic` is in the metadata with a leader for every partition: a topic
    /// just created is then usable by every client at once, as Kafka Streams checks for its
    /// internal topics. Bounded by the config's timeout.
    pub(crate) fn wait_until_led(&self, topic: &str) -> Result<()> {
        let deadline = Instant::now() + self.config.timeout();
        loop {
            let metadata = self
                .admin
                .inner()
                .fetch_metadata(None, deadline.saturating_duration_since(Instant::now()))
                .map_err(KafkaClusterError::client(format!(
                    "waiting for the partition leaders of topic `{topic}`"
                )))?;
            let led = metadata.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0)
            });
            if led {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(KafkaClusterError::Timeout {
                    call: format!("waiting for the partition leaders of topic `{topic}`"),
                    waited: self.config.timeout(),
                });
            }
            std::thread::sleep(RETRY_BACKOFF);
        }
    }

    pub(crate) fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.config.timeout()))
            .operation_timeout(Some(self.config.timeout()))
    }
}

/// How long to wait before asking again while a partition has no leader.
pub(crate) const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Whether `code` means the partition's leader is being elected or moving: worth asking again.
pub(crate) fn leader_moving(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable
    )
}

/// The one result of a call made for one topic.
pub(crate) fn single<T>(results: Vec<T>, call: &'static str, topic: &str) -> Result<T> {
    results
        .into_iter()
        .next()
        .ok_or_else(|| KafkaClusterError::MissingFromAnswer {
            call,
            topic: topic.to_string(),
        })
}
