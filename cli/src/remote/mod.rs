//! The topic, produce, consume and group commands on a Kafka cluster (`--bootstrap-server`):
//! Apache Kafka or a running `sluice broker`, through sluice-kafka (librdkafka). They take
//! the embedded commands' arguments and print what they print (the parsers and formatting
//! functions are shared); a value a Kafka client cannot know prints `-`. This module holds
//! the connection, the errors and the dispatch.

pub mod consume;
pub mod group;
pub mod produce;
pub mod topic;

use std::time::Duration;

use sluice::kafka::rdkafka::error::RDKafkaErrorCode;
use sluice::kafka::{KafkaCluster, KafkaClusterError, KafkaConfig, PartitionOffsets};

use super::error::{CliError, CliResult};
use super::{ClusterArgs, Command};

/// What went wrong on a Kafka cluster. Each names the cluster, topic, partition or group.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The cluster did not answer (unreachable, refused, timed out): exit 1.
    #[error(
        "cannot reach the Kafka cluster at {bootstrap} (waited up to {} ms, see --request-timeout-ms): {source}",
        waited.as_millis()
    )]
    Connect {
        /// The bootstrap servers.
        bootstrap: String,
        /// How long the connection was waited for.
        waited: Duration,
        /// sluice-kafka's error.
        #[source]
        source: KafkaClusterError,
    },
    /// No such topic: exit 2.
    #[error("unknown topic `{topic}` on the cluster at {bootstrap}")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// The bootstrap servers.
        bootstrap: String,
    },
    /// No such partition: exit 2.
    #[error("unknown partition {topic}-{partition} (the topic has {partitions} partitions)")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        partitions: i32,
    },
    /// `topic create` of a topic that exists: exit 2.
    #[error("topic `{topic}` already exists on the cluster at {bootstrap}")]
    TopicExists {
        /// The topic.
        topic: String,
        /// The bootstrap servers.
        bootstrap: String,
    },
    /// `consume --offset` outside the partition: exit 2.
    #[error(
        "offset {offset} is out of range for {topic}-{partition} (log start {log_start}, high watermark {end})"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset asked for.
        offset: i64,
        /// The partition's first offset.
        log_start: i64,
        /// Its high watermark.
        end: i64,
    },
    /// `consume --group` got no assignment in time: exit 1.
    #[error(
        "group `{group}`: no partitions of `{topic}` assigned within {} ms of joining (see --request-timeout-ms)",
        waited.as_millis()
    )]
    JoinTimeout {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The cluster refused a call or failed: exit 2 when the refusal is about the input
    /// (a bad config or partition count, an unknown topic), otherwise 1.
    #[error("{source} (cluster at {bootstrap})")]
    Cluster {
        /// The bootstrap servers.
        bootstrap: String,
        /// sluice-kafka's error, naming the call and its topic.
        #[source]
        source: KafkaClusterError,
    },
}

impl RemoteError {
    /// Whether the input is at fault (exit 2) rather than the cluster or the network.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::UnknownTopic { .. }
            | Self::UnknownPartition { .. }
            | Self::TopicExists { .. }
            | Self::OffsetOutOfRange { .. } => true,
            Self::Connect { .. } | Self::JoinTimeout { .. } => false,
            Self::Cluster { source, .. } => {
                matches!(source, KafkaClusterError::Config(_))
                    || source.code().is_some_and(is_user_code)
            }
        }
    }
}

/// Cluster error codes that say the request itself was wrong.
fn is_user_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::InvalidConfig
            | C::InvalidPartitions
            | C::InvalidReplicationFactor
            | C::InvalidReplicaAssignment
            | C::InvalidTopic
            | C::TopicAlreadyExists
            | C::PolicyViolation
            | C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::UnknownPartition
            | C::OffsetOutOfRange
            | C::InvalidGroupId
            | C::GroupIdNotFound
            | C::NonEmptyGroup
            | C::InvalidArgument
    )
}

/// A connected cluster and the address it was reached at (for messages).
#[derive(Debug)]
pub struct Remote {
    /// The connection.
    pub cluster: KafkaCluster,
    /// `--bootstrap-server` as given.
    pub bootstrap: String,
}

/// The librdkafka config of `args`: the bootstrap servers, the request timeout, then the
/// properties in the order given. Idle connections the broker closes are not logged.
pub fn kafka_config(args: &ClusterArgs) -> KafkaConfig {
    let mut config = KafkaConfig::new(args.bootstrap.as_str())
        .with_timeout(args.request_timeout)
        .set("log.connection.close", "false");
    for (key, value) in &args.properties {
        config = config.set(key.as_str(), value.as_str());
    }
    config
}

/// Connects to the cluster `args` names (one metadata request, bounded by the request
/// timeout).
pub fn connect(args: &ClusterArgs) -> CliResult<Remote> {
    let bootstrap = args.bootstrap.clone();
    match KafkaCluster::connect(kafka_config(args)) {
        Ok(cluster) => Ok(Remote { cluster, bootstrap }),
        // A property librdkafka refuses is the user's to fix.
        Err(source @ KafkaClusterError::Config(_)) => {
            Err(RemoteError::Cluster { bootstrap, source }.into())
        }
        Err(source) => Err(RemoteError::Connect {
            bootstrap,
            waited: args.request_timeout,
            source,
        }
        .into()),
    }
}

impl Remote {
    /// Wraps a cluster error with the cluster's address.
    pub fn fail(&self) -> impl FnOnce(KafkaClusterError) -> CliError + '_ {
        move |source| {
            RemoteError::Cluster {
                bootstrap: self.bootstrap.clone(),
                source,
            }
            .into()
        }
    }

    /// The unknown-topic error of `topic`.
    pub fn unknown_topic(&self, topic: &str) -> CliError {
        RemoteError::UnknownTopic {
            topic: topic.to_string(),
            bootstrap: self.bootstrap.clone(),
        }
        .into()
    }

    /// How many partitions `topic` has; an unknown topic is a user error. Never creates it
    /// (the metadata of every topic is asked for, not this one's).
    pub fn partition_count(&self, topic: &str) -> CliResult<i32> {
        self.cluster
            .partition_count(topic)
            .map_err(self.fail())?
            .ok_or_else(|| self.unknown_topic(topic))
    }

    /// Refuses a partition `topic` (of `partitions`) does not have.
    pub fn check_partition(&self, topic: &str, partition: i32, partitions: i32) -> CliResult {
        if (0..partitions).contains(&partition) {
            return Ok(());
        }
        Err(RemoteError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions,
        }
        .into())
    }

    /// A partition's log start and high watermark.
    pub fn offsets(&self, topic: &str, partition: i32) -> CliResult<PartitionOffsets> {
        self.cluster.offsets(topic, partition).map_err(self.fail())
    }
}

/// Runs a topic, produce, consume or group command on the cluster `args` names.
pub fn run(args: &ClusterArgs, command: Command) -> CliResult {
    match command {
        Command::Topic(cmd) => topic::run(args, cmd),
        Command::Produce(produce) => produce::run(args, &produce),
        Command::Consume(consume) => consume::run(args, &consume),
        Command::Group(cmd) => group::run(args, cmd),
        Command::Perf(_) | Command::Broker(_) => Err(CliError::Usage(
            "--bootstrap-server applies to the topic, produce, consume and group commands, `perf eos` and `perf rebalance`".into(),
        )),
    }
}
