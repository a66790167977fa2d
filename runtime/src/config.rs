//! [`AppConfig`]: how an app instance runs (Kafka Streams' `StreamsConfig`), built with
//! `Default` + `with_*`.

use std::path::PathBuf;
use std::time::Duration;

/// Delivery guarantee of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Output, state and input offsets commit as one transaction (docs/architecture.md §3.1).
    #[default]
    ExactlyOnce,
    /// No transaction: flush output, apply state, then commit offsets. A crash in between
    /// replays input, so effects may repeat.
    AtLeastOnce,
}

/// What happens to a record whose key or value does not deserialize.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Fail the task (the default): the app stops in `Error`, nothing half-committed.
    #[default]
    Fail,
    /// Log a warning and skip the record.
    LogAndSkip,
    /// Send the raw record to `topic`, with headers `sluice.error`, `sluice.topic`,
    /// `sluice.partition` and `sluice.offset`, in the same transaction; then skip it.
    DeadLetter {
        /// The dead-letter topic (created if missing).
        topic: String,
    },
}

/// A crash point of the commit protocol (docs/architecture.md §3.1), for fault injection: the testkit's
/// harness makes an instance stop dead at one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrashPoint {
    /// Records processed and sent, offsets and changelog records added to the transaction
    /// (exactly-once), the producer not yet flushed.
    BeforeFlush,
    /// The producer flushed, the transaction not yet committed.
    AfterFlush,
    /// Offsets added to the transaction (exactly-once), the changelog records not yet sent
    /// and output records possibly still in flight.
    AfterSendOffsets,
    /// The coordinator wrote PrepareCommit; the markers are not yet written.
    AfterPrepareCommit,
    /// The transaction committed; RocksDB not yet updated.
    AfterCommitBeforeApply,
    /// Part of a store restored from its changelog.
    MidRestore,
}

impl CrashPoint {
    /// Every crash point.
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::BeforeFlush,
        CrashPoint::AfterFlush,
        CrashPoint::AfterSendOffsets,
        CrashPoint::AfterPrepareCommit,
        CrashPoint::AfterCommitBeforeApply,
        CrashPoint::MidRestore,
    ];
}

/// Hears of restore progress (Kafka Streams' `StateRestoreListener`): called after every
/// batch a store's restore applies.
pub type RestoreListener = std::sync::Arc<dyn Fn(&crate::state::RestoreProgress) + Send + Sync>;

/// Decides at each crash point whether the instance dies there.
#[cfg(feature = "fault-injection")]
pub type CrashHook = std::sync::Arc<dyn Fn(CrashPoint) -> bool + Send + Sync>;

/// How an app instance runs.
#[derive(Clone)]
pub struct AppConfig {
    /// Exactly-once (default) or at-least-once.
    pub processing_guarantee: ProcessingGuarantee,
    /// Stream threads in this instance (default 1).
    pub num_threads: usize,
    /// How often each thread commits; `None` takes 100 ms under exactly-once and 1 s under
    /// at-least-once.
    pub commit_interval: Option<Duration>,
    /// Where the instance keeps its RocksDB and its instance id (default
    /// `./sluice-state/<application id>`).
    pub state_dir: Option<PathBuf>,
    /// What to do with records that do not deserialize.
    pub deserialization_handler: DeserializationHandler,
    /// Records per poll.
    pub max_poll_records: usize,
    /// How long a task with several input partitions waits for one that has no records
    /// queued and none on the broker, before processing the others (Kafka's
    /// `max.task.idle.ms`). Whatever it is, a task never processes while a drained input
    /// has records on the broker not yet fetched: they may be older than what is queued.
    pub max_task_idle: Duration,
    /// How long the group waits for a silent instance before giving its tasks away.
    pub session_timeout: Duration,
    /// How often threads heartbeat (and notice rebalances).
    pub heartbeat_interval: Duration,
    /// The longest a thread may go without serving its group membership, and how long a
    /// rebalance waits for members to rejoin (Kafka's `max.poll.interval.ms`, default
    /// 5 min). On a Kafka cluster a member that stalls longer loses its tasks (librdkafka
    /// heartbeats on its own thread, so the session alone never expires); on the embedded
    /// log the session timeout decides.
    pub max_poll_interval: Duration,
    /// Records per RocksDB batch while restoring.
    pub restore_batch: usize,
    /// How often a thread deletes what its tasks have committed of their repartition
    /// topics (Kafka Streams' `repartition.purge.interval.ms`, default 30 s). Repartition
    /// topics have no time retention, so this is what bounds them.
    pub repartition_purge_interval: Duration,
    /// How long the broker lets a transaction stay open before aborting it (default 10 s,
    /// as Kafka Streams sets under exactly-once): bounds how long a crashed instance's
    /// open transaction holds up the instance that takes its tasks.
    pub transaction_timeout: Duration,
    /// Called as stores restore from their changelogs (progress also goes to tracing).
    pub restore_listener: Option<RestoreListener>,
    #[cfg(feature = "fault-injection")]
    pub(crate) crash_hook: Option<CrashHook>,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("processing_guarantee", &self.processing_guarantee)
            .field("num_threads", &self.num_threads)
            .field("commit_interval", &self.commit_interval)
            .field("state_dir", &self.state_dir)
            .field("deserialization_handler", &self.deserialization_handler)
            .field("max_poll_records", &self.max_poll_records)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("restore_batch", &self.restore_batch)
            .field(
                "repartition_purge_interval",
                &self.repartition_purge_interval,
            )
            .field("transaction_timeout", &self.transaction_timeout)
            .field("restore_listener", &self.restore_listener.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            processing_guarantee: ProcessingGuarantee::ExactlyOnce,
            num_threads: 1,
            commit_interval: None,
            state_dir: None,
            deserialization_handler: DeserializationHandler::Fail,
            max_poll_records: 1000,
            max_task_idle: Duration::ZERO,
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(100),
            max_poll_interval: Duration::from_secs(300),
            restore_batch: 10_000,
            repartition_purge_interval: Duration::from_secs(30),
            transaction_timeout: Duration::from_secs(10),
            restore_listener: None,
            #[cfg(feature = "fault-injection")]
            crash_hook: None,
        }
    }
}

impl AppConfig {
    /// Sets the processing guarantee.
    pub fn with_processing_guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.processing_guarantee = guarantee;
        self
    }
    /// Sets the number of stream threads.
    pub fn with_num_threads(mut self, threads: usize) -> Self {
        self.num_threads = threads;
        self
    }
    /// Sets the commit interval.
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = Some(interval);
        self
    }
    /// Sets the state directory.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    /// Sets the deserialization-error handler.
    pub fn with_deserialization_handler(mut self, handler: DeserializationHandler) -> Self {
        self.deserialization_handler = handler;
        self
    }
    /// Sets the records per poll.
    pub fn with_max_poll_records(mut self, records: usize) -> Self {
        self.max_poll_records = records;
        self
    }
    /// Sets how long a task waits for an input partition that has nothing to read (see
    /// [`AppConfig::max_task_idle`]).
    pub fn with_max_task_idle(mut self, idle: Duration) -> Self {
        self.max_task_idle = idle;
        self
    }
    /// Sets the session timeout.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }
    /// Sets the heartbeat interval.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }
    /// Sets the records per RocksDB batch while restoring.
    pub fn with_restore_batch(mut self, records: usize) -> Self {
        self.restore_batch = records.max(1);
        self
    }
    /// Sets the transaction timeout.
    pub fn with_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }
    /// Sets the longest time between two services of the group membership.
    pub fn with_max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }
    /// Sets how often committed repartition records are deleted.
    pub fn with_repartition_purge_interval(mut self, interval: Duration) -> Self {
        self.repartition_purge_interval = interval;
        self
    }
    /// Sets the restore listener.
    pub fn with_restore_listener(mut self, listener: RestoreListener) -> Self {
        self.restore_listener = Some(listener);
        self
    }
    /// Fault injection: `hook` is asked at every [`CrashPoint`]; when it says yes, the
    /// thread stops dead there, as a killed process would (nothing flushed, aborted or
    /// applied), and the app reports `Error`. For the testkit's harness; only with the
    /// `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn with_crash_hook(mut self, hook: CrashHook) -> Self {
        self.crash_hook = Some(hook);
        self
    }

    /// The commit interval in effect.
    pub fn effective_commit_interval(&self) -> Duration {
        self.commit_interval
            .unwrap_or(match self.processing_guarantee {
                ProcessingGuarantee::ExactlyOnce => Duration::from_millis(100),
                ProcessingGuarantee::AtLeastOnce => Duration::from_secs(1),
            })
    }
}
