//! The seam the runtime runs on (docs/architecture.md §8): a [`Cluster`] is a log that the
//! stream threads read and write, either the embedded [`Broker`](crate::Broker) of this crate
//! or a remote Kafka cluster (the `sluice-kafka` crate, over librdkafka). The traits are
//! shaped by what the runtime needs, not by either client: admin (partition counts, internal
//! topics, a partition's earliest and latest offset) and an assign-mode consumer that reads
//! read_committed, steps over transaction markers and reports its lag without a network
//! call. Records keep this crate's types ([`ConsumerRecord`], [`TopicPartition`]).
//!
//! The transactional producer ([`TxnProducer`]) and the group member ([`GroupMember`]) are
//! in the seam too. The runtime does not call the seam yet: it still calls the embedded
//! broker's clients directly.

mod embedded;
mod embedded_member;
mod member;
mod producer;

pub use embedded_member::EmbeddedMember;
pub use member::{Assignment, GroupEvent, GroupMember, GroupSpec};
pub use producer::{Delivery, ProducerSpec, TxnProducer};

use std::time::Duration;

use crate::client::{ConsumerRecord, OffsetReset};
use crate::topic::TopicPartition;
use crate::txn::IsolationLevel;

/// What a failed cluster call means to the stream thread that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The cluster fenced the thread's producer epoch (its transaction outlived the timeout,
    /// or a newer incarnation took the transactional id): a new producer, and the tasks start
    /// again from what is committed.
    Fenced,
    /// The group moved on (a new generation, or the member is unknown): abort what is open
    /// and follow the group.
    Migrated,
    /// Nothing to recover: the thread stops and the app goes to `Error`.
    Fatal,
}

/// An error a [`Cluster`] call returns: it says what failed, and how the runtime recovers.
pub trait ClusterError: std::error::Error + Send + Sync + 'static {
    /// How the runtime recovers from it.
    fn class(&self) -> ErrorClass;
    /// Whether it says the topic or partition asked about does not exist.
    fn is_unknown_topic(&self) -> bool;
    /// Whether the same call may succeed if made again (e.g. offsets a transaction is still
    /// committing: unstable until it ends).
    fn is_retriable(&self) -> bool;
}

/// What an internal topic is for; each kind gets the topic configs it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalTopicKind {
    /// A state store's changelog: compacted, no time retention (the newest value of every key
    /// is kept however old it is).
    Changelog,
    /// A repartition topic: deleted by the cluster's retention, as any topic.
    Repartition,
    /// Where records that cannot be deserialized go.
    DeadLetter,
}

/// An internal topic the runtime creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalTopic {
    /// Its partition count; `None` takes the cluster's default.
    pub partitions: Option<i32>,
    /// What it is for.
    pub kind: InternalTopicKind,
}

/// Which end of a partition [`Cluster::list_offset`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetAt {
    /// The first offset still in the log.
    Earliest,
    /// The high watermark: the offset the next record will get.
    Latest,
}

/// How a [`ClusterConsumer`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// read_committed (the runtime's) or read_uncommitted.
    pub isolation: IsolationLevel,
    /// Where a partition whose position is out of range restarts; `None` fails the poll.
    pub reset: OffsetReset,
    /// At most this many records per poll.
    pub max_poll_records: usize,
    /// A name for the client in the cluster's logs and metrics.
    pub client_id: String,
}

impl ConsumerSpec {
    /// A read_committed consumer that fails on an out-of-range position, 500 records a poll.
    pub fn read_committed(client_id: impl Into<String>) -> Self {
        Self {
            isolation: IsolationLevel::ReadCommitted,
            reset: OffsetReset::None,
            max_poll_records: 500,
            client_id: client_id.into(),
        }
    }

    /// Sets where an out-of-range partition restarts.
    pub fn with_reset(mut self, reset: OffsetReset) -> Self {
        self.reset = reset;
        self
    }

    /// Sets the most records a poll returns (at least 1).
    pub fn with_max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n.max(1);
        self
    }
}

/// A log the runtime runs on: the embedded [`Broker`](crate::Broker) or a Kafka cluster.
pub trait Cluster: Clone + Send + Sync + 'static {
    /// What its calls fail with.
    type Error: ClusterError;
    /// Its assign-mode consumer.
    type Consumer: ClusterConsumer<Error = Self::Error>;
    /// Its transactional producer.
    type Producer: TxnProducer<Error = Self::Error>;
    /// Its group member, whose metadata the producer sends offsets with.
    type Member: GroupMember<Error = Self::Error, Metadata = <Self::Producer as TxnProducer>::GroupMetadata>;

    /// How many partitions `topic` has; `None` when there is no such topic. Never creates it.
    fn partition_count(&self, topic: &str) -> Result<Option<i32>, Self::Error>;

    /// Creates an internal topic unless it exists (another instance may have won the race:
    /// that is not an error, and an existing topic is left as it is).
    fn create_internal_topic(&self, topic: &str, spec: &InternalTopic) -> Result<(), Self::Error>;

    /// A partition's earliest offset or high watermark.
    fn list_offset(&self, tp: &TopicPartition, at: OffsetAt) -> Result<i64, Self::Error>;

    /// A new consumer with no assignment.
    fn consumer(&self, spec: &ConsumerSpec) -> Result<Self::Consumer, Self::Error>;

    /// A new transactional producer; call `init_transactions` before the first transaction.
    fn producer(&self, spec: &ProducerSpec) -> Result<Self::Producer, Self::Error>;

    /// A new group member; it joins at its first `poll_group`.
    fn member(&self, spec: &GroupSpec) -> Result<Self::Member, Self::Error>;

    /// Deletes the records of `tp` before offset `before` (Kafka's DeleteRecords): the
    /// runtime purges what its tasks have committed of their repartition topics, which
    /// have no time retention.
    fn delete_records(&self, tp: &TopicPartition, before: i64) -> Result<(), Self::Error>;

    /// The committed offsets of `group` for `tps` (`None`: nothing committed), asked
    /// without joining it.
    fn committed_offsets(
        &self,
        group: &str,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, Self::Error>;

    /// Fault injection: makes the next EndTxn of `transactional_id` stop after
    /// PrepareCommit, as a broker crash there would (`None` disarms). `false` when the
    /// backend cannot (a remote cluster). Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    fn arm_txn_fault(&self, _transactional_id: Option<&str>) -> bool {
        false
    }
}

/// A consumer of partitions it is given (no group): one per thread, used with `&mut`.
pub trait ClusterConsumer: Send {
    /// What its calls fail with.
    type Error: ClusterError;

    /// Replaces the assignment: exactly these partitions, each read from the offset given.
    fn assign(&mut self, at: &[(TopicPartition, i64)]) -> Result<(), Self::Error>;

    /// Sets the next offset read from an assigned partition; records already fetched for it
    /// are dropped.
    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Self::Error>;

    /// The next records, waiting up to `timeout` when none are there yet (an empty answer:
    /// nothing arrived in time). Under read_committed no record of an open or aborted
    /// transaction is returned, and never a transaction marker.
    fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Self::Error>;

    /// The offset of the next record to read from `tp`. Once every record before the end of
    /// what is readable has been returned, it has stepped over the transaction markers and
    /// aborted records there too, so it can equal the end.
    fn position(&mut self, tp: &TopicPartition) -> Result<i64, Self::Error>;

    /// How many records of `tp` are readable beyond the position, as of what the consumer
    /// last heard from the cluster, without asking it (Kafka's `currentLag`, KIP-695); under
    /// read_committed, up to the last stable offset. `None` while it does not know yet.
    fn current_lag(&mut self, tp: &TopicPartition) -> Result<Option<i64>, Self::Error>;
}
