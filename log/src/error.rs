//! The log's error type. Every variant names what failed and where: topic, partition and,
//! where there is one, the offset or producer involved.

use std::path::PathBuf;

use crate::batch::BatchError;

/// Result alias of the log crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the log, the broker and its clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fault injected by a test hook (`Broker::set_txn_fault_hook`, with the
    /// `fault-injection` feature); never happens without it.
    #[error("injected fault: {0}")]
    InjectedFault(String),
    /// A topic name outside Kafka's rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// No topic of that name.
    #[error("unknown topic `{topic}`")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The topic exists but not that partition.
    #[error("unknown partition {topic}-{partition} (the topic has {partitions} partitions)")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many the topic has.
        partitions: i32,
    },
    /// Creating a topic that exists.
    #[error("topic `{topic}` already exists")]
    TopicExists {
        /// The topic.
        topic: String,
    },
    /// A partition count that is not allowed (zero, or fewer than now).
    #[error("topic `{topic}`: cannot go from {current} to {requested} partitions: {reason}")]
    InvalidPartitions {
        /// The topic.
        topic: String,
        /// Partitions now.
        current: i32,
        /// Partitions asked for.
        requested: i32,
        /// Why not.
        reason: &'static str,
    },
    /// New partitions that would keep more files open than the process's soft open-file
    /// limit (`RLIMIT_NOFILE`) allows: refused before anything is created.
    #[error(
        "topic `{topic}`: {requested} partitions need {needed} more open files, which with the {open} open now and {reserved} kept free passes the open-file limit of {limit}; nothing was created: raise the limit with `ulimit -n` (or ask for fewer partitions)"
    )]
    OpenFileLimit {
        /// The topic.
        topic: String,
        /// Partitions asked for (in all).
        requested: i32,
        /// Files the new partitions would keep open.
        needed: u64,
        /// Files the process had open.
        open: u64,
        /// Files kept free for connections and segment rolls.
        reserved: u64,
        /// The soft open-file limit.
        limit: u64,
    },
    /// A configuration value out of range or unparsable.
    #[error("invalid config `{key}` = {value:?}: {reason}")]
    InvalidConfig {
        /// The setting.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// A produced batch that is malformed, or corrupt data found in a segment.
    #[error("corrupt or invalid batch for {topic}-{partition} at offset {offset}: {source}")]
    InvalidBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The batch's base offset (or the log end offset for a produce).
        offset: i64,
        /// What was wrong with the bytes.
        #[source]
        source: BatchError,
    },
    /// A batch kind the log refuses from clients (control batches, or transactions before the
    /// coordinator exists).
    #[error("{topic}-{partition}: {reason}")]
    UnsupportedBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What is not supported.
        reason: &'static str,
    },
    /// A batch larger than the topic or the broker accepts.
    #[error("{topic}-{partition}: batch of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A fetch or seek outside `[log start, log end]`.
    #[error(
        "offset {offset} is out of range for {topic}-{partition} (log start {log_start}, log end {log_end})"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset asked for.
        offset: i64,
        /// First offset still in the log.
        log_start: i64,
        /// Next offset to be written.
        log_end: i64,
    },
    /// An idempotent batch whose sequence is not the next one expected.
    #[error(
        "out of order sequence for producer {producer_id} on {topic}-{partition}: expected {expected}, got {received}"
    )]
    OutOfOrderSequence {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The producer.
        producer_id: i64,
        /// The sequence the log expected.
        expected: i32,
        /// The sequence the batch carried.
        received: i32,
    },
    /// A batch from an older epoch of a producer: a newer instance has taken over.
    #[error(
        "producer {producer_id} epoch {epoch} is fenced on {topic}-{partition}: current epoch is {current_epoch}"
    )]
    ProducerFenced {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The producer.
        producer_id: i64,
        /// The epoch it used.
        epoch: i16,
        /// The epoch the log knows.
        current_epoch: i16,
    },
    /// A producer id this broker never handed out.
    #[error("unknown producer id {producer_id} (never allocated by this broker)")]
    UnknownProducerId {
        /// The producer.
        producer_id: i64,
    },
    /// An fsync of this partition failed earlier: what was written since its last good fsync
    /// may be lost, so the partition refuses reads, writes and syncs until the broker
    /// restarts and recovers it (Kafka takes the log directory offline).
    #[error("partition {topic}-{partition} is offline after a failed fsync: {reason}")]
    StorageFailed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The fsync's error.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("i/o error while {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Persisted metadata that does not parse.
    #[error("corrupt metadata file {path}: {reason}")]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The broker, producer or consumer was closed.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// A client call that waited longer than it was allowed.
    #[error("timed out after {millis} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        millis: u64,
    },
    /// A produced record that could not be delivered; the cause is shared by every record of
    /// its batch.
    #[error("delivery to {topic}-{partition} failed: {source}")]
    Delivery {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why the batch failed.
        #[source]
        source: std::sync::Arc<Error>,
    },
    /// A transactional request that does not fit the transaction's state (Kafka's
    /// `INVALID_TXN_STATE`), e.g. a non-transactional write from a producer with an open
    /// transaction, or a transactional write to a partition not added to it.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// The coordinator is finishing the previous transaction of this id; retry shortly
    /// (Kafka's `CONCURRENT_TRANSACTIONS`, retriable).
    #[error("transactional id `{transactional_id}` is completing a previous transaction; retry")]
    ConcurrentTransactions {
        /// The transactional id.
        transactional_id: String,
    },
    /// A transactional request from an older epoch of the producer (Kafka's
    /// `PRODUCER_FENCED` / `INVALID_PRODUCER_EPOCH` at the coordinator).
    #[error(
        "transactional id `{transactional_id}`: producer {producer_id} epoch {epoch} is fenced (current epoch {current_epoch})"
    )]
    TxnProducerFenced {
        /// The transactional id.
        transactional_id: String,
        /// The producer id sent.
        producer_id: i64,
        /// The epoch sent.
        epoch: i16,
        /// The coordinator's epoch for the id.
        current_epoch: i16,
    },
    /// A transactional request whose producer id is not the transactional id's (Kafka's
    /// `INVALID_PRODUCER_ID_MAPPING`).
    #[error(
        "transactional id `{transactional_id}` belongs to producer {current_producer_id}, not {producer_id}"
    )]
    ProducerIdMismatch {
        /// The transactional id.
        transactional_id: String,
        /// The producer id sent.
        producer_id: i64,
        /// The id's producer.
        current_producer_id: i64,
    },
    /// A transactional id the coordinator does not know (call `init_producer_id` first).
    #[error("unknown transactional id `{0}`; initialize the producer first")]
    TransactionalIdNotFound(String),
    /// A transaction timeout out of the allowed range.
    #[error("transaction timeout {millis} ms is not between 1 and {max} ms")]
    InvalidTransactionTimeout {
        /// The timeout asked for.
        millis: u64,
        /// The broker's maximum.
        max: u64,
    },
    /// A committed-offsets request whose offsets wait on an open transaction (Kafka's
    /// `UNSTABLE_OFFSET_COMMIT`, retriable).
    #[error("group `{group}` has a pending transactional offset commit for {partition}; retry")]
    UnstableOffsetCommit {
        /// The group.
        group: String,
        /// The partition whose offset is pending.
        partition: String,
    },
    /// A group request from a member the group does not know (expired or never joined).
    #[error("group `{group}`: unknown member `{member_id}`")]
    UnknownMemberId {
        /// The group.
        group: String,
        /// The member.
        member_id: String,
    },
    /// A group request from an older generation: the group rebalanced since (zombie fencing).
    #[error("group `{group}`: generation {generation} is stale (current {current}); rejoin")]
    IllegalGeneration {
        /// The group.
        group: String,
        /// The generation sent.
        generation: i32,
        /// The group's generation.
        current: i32,
    },
    /// The group is rebalancing: the member must fetch its new assignment.
    #[error("group `{group}` is rebalancing; rejoin")]
    RebalanceInProgress {
        /// The group.
        group: String,
    },
    /// A join whose protocol type or protocols the group cannot accept: an embedded member
    /// joining a classic group that has members (or the reverse), another protocol type, or
    /// no protocol every member supports (Kafka's `INCONSISTENT_GROUP_PROTOCOL`).
    #[error("group `{group}`: inconsistent group protocol")]
    InconsistentGroupProtocol {
        /// The group.
        group: String,
    },
    /// A new member of a classic group must rejoin with the id it was given (JoinGroup v4+,
    /// Kafka's `MEMBER_ID_REQUIRED`).
    #[error("group `{group}`: rejoin with member id `{member_id}`")]
    MemberIdRequired {
        /// The group.
        group: String,
        /// The id to rejoin with.
        member_id: String,
    },
    /// A static member replaced by a newer instance with the same `group.instance.id`
    /// (KIP-345, Kafka's `FENCED_INSTANCE_ID`).
    #[error("group `{group}`: member `{member_id}` of instance `{group_instance_id}` is fenced")]
    FencedInstanceId {
        /// The group.
        group: String,
        /// The member id sent.
        member_id: String,
        /// The instance id sent.
        group_instance_id: String,
    },
    /// A session timeout outside the broker's bounds (Kafka's `INVALID_SESSION_TIMEOUT`).
    #[error(
        "group `{group}`: member `{member_id}`: session timeout {millis} ms is not between {min} and {max} ms"
    )]
    InvalidSessionTimeout {
        /// The group.
        group: String,
        /// The member id sent ("" for a new member).
        member_id: String,
        /// The timeout asked for.
        millis: u64,
        /// `group.min.session.timeout.ms`.
        min: u64,
        /// `group.max.session.timeout.ms`.
        max: u64,
    },
    /// An empty group id in a classic group request (Kafka's `INVALID_GROUP_ID`).
    #[error("invalid group id {group:?}")]
    InvalidGroupId {
        /// The group id sent.
        group: String,
    },
    /// Deleting a group that still has members (Kafka's `NON_EMPTY_GROUP`).
    #[error("group `{group}` has {members} member(s) and cannot be deleted")]
    NonEmptyGroup {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
    /// A group the broker does not know (Kafka's `GROUP_ID_NOT_FOUND`).
    #[error("group `{group}` does not exist")]
    GroupIdNotFound {
        /// The group.
        group: String,
    },
    /// A client used in a way its state does not allow.
    #[error("{0}")]
    IllegalState(String),
    /// The data directory is open in another broker (this process or another): one process
    /// owns a data directory.
    #[error(
        "data directory {dir} is in use by another broker or sluice command (it holds the lock {lock})"
    )]
    DataDirInUse {
        /// The data directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether the same request may succeed if sent again unchanged (Kafka's retriable errors).
    /// Idempotent producers retry these; everything else is returned to the caller.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::ConcurrentTransactions { .. }
                | Self::UnstableOffsetCommit { .. }
        ) || matches!(self, Self::Io { source, .. } if matches!(
            source.kind(),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
        ))
    }

    /// Whether this is a user error (bad name, unknown topic, bad config, out of range, more
    /// partitions than the open-file limit allows) rather than a failure of the log itself.
    /// The CLI exits with 2 for these.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidTopicName { .. }
                | Self::UnknownTopic { .. }
                | Self::UnknownPartition { .. }
                | Self::TopicExists { .. }
                | Self::InvalidPartitions { .. }
                | Self::OpenFileLimit { .. }
                | Self::InvalidConfig { .. }
                | Self::OffsetOutOfRange { .. }
                | Self::RecordTooLarge { .. }
                | Self::DataDirInUse { .. }
        )
    }
}
