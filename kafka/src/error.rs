//! The errors of sluice-kafka: each names the call and the topic (and partition) it was
//! about, with librdkafka's error or the cluster's error code.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use sluice_log::cluster::{ClusterError, ErrorClass};

/// Result alias of sluice-kafka.
pub type Result<T, E = KafkaClusterError> = std::result::Result<T, E>;

/// What can go wrong talking to a Kafka cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaClusterError {
    /// librdkafka refused the config: an unknown property or a bad value.
    #[error("invalid Kafka client config: {0}")]
    Config(#[source] KafkaError),
    /// librdkafka failed a call (the cluster unreachable, a timeout, ...).
    #[error("{call} failed: {source}")]
    Client {
        /// What was being done, e.g. "fetching metadata".
        call: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The cluster refused a call about one topic.
    #[error("{call} `{topic}` refused by the cluster: {code}")]
    Topic {
        /// What was being done, e.g. "creating topic".
        call: &'static str,
        /// The topic.
        topic: String,
        /// The cluster's error code.
        code: RDKafkaErrorCode,
    },
    /// The cluster refused a call about one partition.
    #[error("{call} {topic}-{partition} refused by the cluster: {code}")]
    Partition {
        /// What was being done.
        call: &'static str,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The cluster's error code.
        code: RDKafkaErrorCode,
    },
    /// The cluster did not get where the call needed within the config's timeout.
    #[error("{call}: not done after {waited:?}")]
    Timeout {
        /// What was being waited for.
        call: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A consumer call about a partition it was not given.
    #[error("partition {topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The cluster gave a member different partition numbers of co-partitioned topics.
    #[error(
        "group `{group}`: co-partitioned topics assigned apart ({detail}); are their partition counts equal and the assignor `range`?"
    )]
    CoPartitioning {
        /// The group.
        group: String,
        /// Which topics got which partitions.
        detail: String,
    },
    /// The member is between generations (joining, or rebalancing): offsets cannot be
    /// committed as it until it has its new assignment. Classed Migrated.
    #[error("group `{group}`: this member is rebalancing, not in a generation yet")]
    NotInGeneration {
        /// The group.
        group: String,
    },
    /// librdkafka raised a fatal error on the producer; the cause is its code.
    #[error("{call}: the producer hit a fatal error: {code}: {reason}")]
    ProducerFatal {
        /// What was being done.
        call: String,
        /// The fatal error's code (e.g. PRODUCER_FENCED).
        code: RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
    },
    /// A tracked record's offset was asked before a flush reported its delivery.
    #[error("{call}: no delivery report yet (flush first)")]
    NotDelivered {
        /// Which record.
        call: String,
    },
    /// An answer without the topic asked about.
    #[error("{call} `{topic}`: the cluster's answer does not mention it")]
    MissingFromAnswer {
        /// What was being done.
        call: &'static str,
        /// The topic.
        topic: String,
    },
}

impl KafkaClusterError {
    pub(crate) fn client(call: impl Into<String>) -> impl FnOnce(KafkaError) -> Self {
        move |source| Self::Client {
            call: call.into(),
            source,
        }
    }

    /// The cluster's error code, when the cluster answered with one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Self::Topic { code, .. }
            | Self::Partition { code, .. }
            | Self::ProducerFatal { code, .. } => Some(*code),
            Self::NotInGeneration { .. } => Some(RDKafkaErrorCode::RebalanceInProgress),
            Self::Client { source, .. } | Self::Config(source) => source.rdkafka_error_code(),
            Self::MissingFromAnswer { .. }
            | Self::Timeout { .. }
            | Self::NotAssigned { .. }
            | Self::NotDelivered { .. }
            | Self::CoPartitioning { .. } => None,
        }
    }
}

impl ClusterError for KafkaClusterError {
    fn class(&self) -> ErrorClass {
        match self.code() {
            Some(
                RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch,
            ) => ErrorClass::Fenced,
            Some(
                RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::FencedInstanceId,
            ) => ErrorClass::Migrated,
            _ => ErrorClass::Fatal,
        }
    }

    fn is_unknown_topic(&self) -> bool {
        self.code().is_some_and(is_unknown_topic)
    }

    fn is_retriable(&self) -> bool {
        match self {
            Self::Client {
                source: KafkaError::Transaction(e),
                ..
            } => e.is_retriable(),
            _ => matches!(
                self.code(),
                Some(
                    RDKafkaErrorCode::UnstableOffsetCommit
                        | RDKafkaErrorCode::CoordinatorLoadInProgress
                        | RDKafkaErrorCode::NotCoordinator
                        | RDKafkaErrorCode::ConcurrentTransactions
                        | RDKafkaErrorCode::OperationTimedOut
                )
            ),
        }
    }
}

/// Whether `code` says a topic or partition does not exist: the cluster's own code, or
/// librdkafka's local ones (it answers those from its metadata without asking).
pub(crate) fn is_unknown_topic(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
    )
}
