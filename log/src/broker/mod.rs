//! The embedded broker: one data directory, one method per Kafka RPC (docs/architecture.md §2.8). It is
//! cheap to clone and `Send + Sync`; clients share one instance across threads.
//!
//! ```
//! use sluice_log::{Broker, BrokerConfig, TopicConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
//! broker.create_topic("events", TopicConfig::default().with_partitions(3)).unwrap();
//! assert_eq!(broker.topic_metadata("events").unwrap().partitions.len(), 3);
//! ```

mod classic_groups;
mod fetch;
mod group_lag;
mod groups;
mod maintenance;
mod pid;
mod produce;
mod topics;
mod txn;
mod txn_init;

pub use fetch::{FetchRequest, FetchedPartition, ListedOffset, OffsetSpec};
pub use group_lag::PartitionLag;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::group::{GroupCoordinator, OFFSETS_TOPIC, OffsetStore};
use crate::storage::{Partition, SyncWorkers};
use crate::storage::{PartitionData, PartitionInfo};
use crate::topic::{CleanupPolicy, FsyncPolicy, TopicConfig};
use crate::txn::{IsolationLevel, TXN_STATE_TOPIC, TxnCoordinator};
use crate::util::AppendSignal;
use pid::ProducerIdAllocator;
use topics::TopicRegistry;

/// Broker-wide settings. Build with `Default` and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// How often retention and compaction run (`log.retention.check.interval.ms`). Default
    /// 5 minutes.
    pub retention_check_interval: Duration,
    /// How often the maintenance thread looks for data to fsync (sealed segments, and
    /// `interval:MS` topics whose interval has passed). Default 50 ms; an `interval` shorter
    /// than this is honoured at this granularity.
    pub flush_check_interval: Duration,
    /// How long a classic group that was empty waits for more members before its first
    /// rebalance completes, extended by each new member up to the rebalance timeout
    /// (`group.initial.rebalance.delay.ms`). Default 3 s.
    pub group_initial_rebalance_delay: Duration,
    /// The shortest session timeout a classic member may ask for
    /// (`group.min.session.timeout.ms`). Default 6 s.
    pub group_min_session_timeout: Duration,
    /// The longest session timeout a classic member may ask for
    /// (`group.max.session.timeout.ms`). Default 30 min.
    pub group_max_session_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            retention_check_interval: Duration::from_secs(300),
            flush_check_interval: Duration::from_millis(50),
            group_initial_rebalance_delay: Duration::from_millis(3000),
            group_min_session_timeout: Duration::from_millis(6000),
            group_max_session_timeout: Duration::from_millis(1_800_000),
        }
    }
}

impl BrokerConfig {
    /// Sets how often retention runs.
    pub fn with_retention_check_interval(mut self, every: Duration) -> Self {
        self.retention_check_interval = every;
        self
    }
    /// Sets how often the maintenance thread checks for data to fsync.
    pub fn with_flush_check_interval(mut self, every: Duration) -> Self {
        self.flush_check_interval = every;
        self
    }
    /// Sets `group.initial.rebalance.delay.ms`.
    pub fn with_group_initial_rebalance_delay(mut self, delay: Duration) -> Self {
        self.group_initial_rebalance_delay = delay;
        self
    }
    /// Sets `group.min.session.timeout.ms`.
    pub fn with_group_min_session_timeout(mut self, timeout: Duration) -> Self {
        self.group_min_session_timeout = timeout;
        self
    }
    /// Sets `group.max.session.timeout.ms`.
    pub fn with_group_max_session_timeout(mut self, timeout: Duration) -> Self {
        self.group_max_session_timeout = timeout;
        self
    }
}

/// How much a produce waits for before it is acknowledged (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Written to the log (acks=1). Under the `commit` policy, not fsynced.
    Leader,
    /// Written and, under the `commit` policy, fsynced (acks=all). The default.
    #[default]
    All,
}

/// A producer id and epoch, as `init_producer_id` returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
}

/// A topic's config and its partitions' offsets.
#[derive(Debug, Clone)]
pub struct TopicMetadata {
    /// The topic.
    pub name: String,
    /// Its settings.
    pub config: TopicConfig,
    /// One entry per partition, in order.
    pub partitions: Vec<PartitionInfo>,
    /// Whether it is one of the broker's internal topics (`__transaction_state`,
    /// `__consumer_offsets`).
    pub internal: bool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    dir: PathBuf,
    config: BrokerConfig,
    topics: TopicRegistry,
    pids: Mutex<ProducerIdAllocator>,
    txns: TxnCoordinator,
    offsets: OffsetStore,
    groups: GroupCoordinator,
    signal: Arc<AppendSignal>,
    closed: AtomicBool,
    maintenance: maintenance::Handle,
    /// Fsyncs for [`Broker::durable`] waits.
    sync_workers: SyncWorkers,
    /// The data directory's lock; released by `close`.
    lock: Mutex<Option<File>>,
    /// Fault injection: asked after a PrepareCommit is durable, before the markers.
    #[cfg(feature = "fault-injection")]
    fault_hook: FaultHookSlot,
}

#[cfg(feature = "fault-injection")]
#[derive(Default)]
struct FaultHookSlot(Mutex<Option<TxnFaultHook>>);

#[cfg(feature = "fault-injection")]
impl std::fmt::Debug for FaultHookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.lock().is_some() {
            "Some(hook)"
        } else {
            "None"
        })
    }
}

/// Decides, for a transactional id whose PrepareCommit was just written, whether the broker
/// stops that EndTxn there (fault injection; see [`Broker::set_txn_fault_hook`]).
#[cfg(feature = "fault-injection")]
pub type TxnFaultHook = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The embedded broker. See the module doc.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl Broker {
    /// Fault injection for tests of clients and apps: after an EndTxn(commit) has written
    /// PrepareCommit durably and before it writes the markers, `hook(transactional_id)` is
    /// asked; when it says yes, the call fails with `InjectedFault` and the transaction stays
    /// in PrepareCommit, as a coordinator crash there leaves it. The next `init_transactions`
    /// of that id (or a broker restart) completes the commit. `None` removes the hook.
    /// Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn set_txn_fault_hook(&self, hook: Option<TxnFaultHook>) {
        *self.inner.fault_hook.0.lock() = hook;
    }

    /// Whether the fault hook stops `transactional_id`'s EndTxn after PrepareCommit.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn txn_fault(&self, transactional_id: &str) -> bool {
        let hook = self.inner.fault_hook.0.lock().clone();
        hook.is_some_and(|h| h(transactional_id))
    }

    /// Never, without the `fault-injection` feature.
    #[cfg(not(feature = "fault-injection"))]
    pub(crate) fn txn_fault(&self, _transactional_id: &str) -> bool {
        false
    }

    /// Opens the data directory `dir` (creating it if needed), recovers every partition and
    /// starts the maintenance thread (background fsync and retention). A second broker on
    /// the same directory, in this process or another, is refused, and so is a non-empty
    /// directory that holds no sluice data.
    pub fn open(dir: impl AsRef<Path>, config: BrokerConfig) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta = dir.join("meta");
        let foreign = !meta.is_dir()
            && std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
        if foreign {
            return Err(Error::IllegalState(format!(
                "refusing to use {} as a data directory: it is not empty and holds no sluice data (no meta/ inside)",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&meta).map_err(|e| Error::io("creating", &meta, e))?;
        let lock_path = meta.join("lock");
        let lock = File::create(&lock_path).map_err(|e| Error::io("creating", &lock_path, e))?;
        lock.try_lock().map_err(|_| Error::DataDirInUse {
            dir: dir.clone(),
            lock: lock_path.clone(),
        })?;
        let signal = Arc::new(AppendSignal::default());
        let topics = TopicRegistry::open(&dir, Arc::clone(&signal))?;
        let pids = Mutex::new(ProducerIdAllocator::open(&meta)?);
        // Both internal topics are keyed (transactional id; group and partition) and read
        // back from the log start on open, so compaction keeps exactly what a reload needs.
        let internal = TopicConfig::default()
            .with_cleanup(CleanupPolicy::Compact)
            .with_retention_ms(None)
            .with_segment_bytes(64 << 20)
            .with_fsync(FsyncPolicy::Always);
        let txns = TxnCoordinator::load(internal_partition(&topics, TXN_STATE_TOPIC, &internal)?)?;
        let offsets = OffsetStore::load(internal_partition(&topics, OFFSETS_TOPIC, &internal)?)?;
        let inner = Arc::new_cyclic(|weak| Inner {
            dir: dir.clone(),
            config: config.clone(),
            topics,
            pids,
            txns,
            offsets,
            groups: GroupCoordinator::default(),
            signal,
            closed: AtomicBool::new(false),
            maintenance: maintenance::Handle::start(weak.clone(), &config),
            sync_workers: SyncWorkers::default(),
            lock: Mutex::new(Some(lock)),
            #[cfg(feature = "fault-injection")]
            fault_hook: FaultHookSlot::default(),
        });
        let broker = Self { inner };
        let redriven = broker.redrive_markers()?;
        if redriven > 0 {
            tracing::warn!(
                markers = redriven,
                "wrote transaction markers lost in a crash again"
            );
        }
        tracing::info!(dir = %dir.display(), "broker opened");
        Ok(broker)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The broker's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(Error::Closed("broker"))
        } else {
            Ok(())
        }
    }

    /// Creates a topic (CreateTopics). Names follow Kafka's rules; configs are validated and
    /// persisted.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        self.inner.topics.create(name, config)
    }

    /// Creates several topics; one result per topic, in order.
    pub fn create_topics<'a>(
        &self,
        topics: impl IntoIterator<Item = (&'a str, TopicConfig)>,
    ) -> Vec<(String, Result<()>)> {
        topics
            .into_iter()
            .map(|(name, config)| (name.to_string(), self.create_topic(name, config)))
            .collect()
    }

    /// Deletes a topic and its data (DeleteTopics).
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.check_open()?;
        if is_internal(name) {
            return Err(Error::InvalidConfig {
                key: "topic",
                value: name.to_string(),
                reason: "internal topics cannot be deleted".into(),
            });
        }
        self.inner.topics.delete(name)
    }

    /// Deletes several topics; one result per topic, in order.
    pub fn delete_topics<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, Result<()>)> {
        topics
            .into_iter()
            .map(|name| (name.to_string(), self.delete_topic(name)))
            .collect()
    }

    /// Raises a topic's partition count to `total` (CreatePartitions). Partitions only grow.
    pub fn create_partitions(&self, name: &str, total: i32) -> Result<()> {
        self.check_open()?;
        self.inner.topics.increase_partitions(name, total)
    }

    /// Every topic with its partitions (Metadata), sorted by name.
    pub fn metadata(&self) -> Vec<TopicMetadata> {
        self.inner
            .topics
            .all()
            .iter()
            .map(|t| describe(t))
            .collect()
    }

    /// One topic's metadata.
    pub fn topic_metadata(&self, name: &str) -> Result<TopicMetadata> {
        Ok(describe(self.inner.topics.get(name)?.as_ref()))
    }

    /// The number of partitions of a topic.
    pub fn partition_count(&self, name: &str) -> Result<i32> {
        Ok(self.inner.topics.get(name)?.partitions.read().len() as i32)
    }

    /// Hands out a new producer id at epoch 0 (InitProducerId without a transactional id).
    pub fn init_producer_id(&self) -> Result<ProducerIdAndEpoch> {
        self.check_open()?;
        let producer_id = self.inner.pids.lock().allocate()?;
        Ok(ProducerIdAndEpoch {
            producer_id,
            epoch: 0,
        })
    }

    /// Reads whole batches from one partition, starting with the batch that holds `offset`,
    /// up to the high watermark (read_uncommitted: open and aborted transactions included).
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<PartitionData> {
        self.read_isolated(
            topic,
            partition,
            offset,
            max_bytes,
            IsolationLevel::ReadUncommitted,
        )
    }

    /// Reads as [`read`](Self::read) does, at the given isolation level: read_committed stops
    /// at the last stable offset and lists the aborted transactions in what it returns.
    pub fn read_isolated(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        isolation: IsolationLevel,
    ) -> Result<PartitionData> {
        self.check_open()?;
        self.inner
            .topics
            .get(topic)?
            .partition(partition)?
            .read(offset, max_bytes, isolation)
    }

    /// fsyncs one partition; returns the offset below which everything is durable.
    pub fn flush_partition(&self, topic: &str, partition: i32) -> Result<i64> {
        self.inner.topics.get(topic)?.partition(partition)?.flush()
    }

    /// fsyncs every partition.
    pub fn flush(&self) -> Result<()> {
        for topic in self.inner.topics.all() {
            for partition in topic.partitions.read().iter() {
                partition.flush()?;
            }
        }
        Ok(())
    }

    /// Runs retention on every partition of a `cleanup = delete` topic now; returns how many
    /// segments were deleted.
    pub fn run_retention(&self) -> Result<usize> {
        let now = crate::util::now_ms();
        let mut deleted = 0;
        for topic in self.inner.topics.all() {
            let partitions: Vec<_> = topic.partitions.read().clone();
            for partition in partitions {
                deleted += partition.apply_retention(now)?;
            }
        }
        Ok(deleted)
    }

    /// Compacts every partition of every `cleanup = compact` topic now (and of the internal
    /// topics, whatever config an older data directory gave them); returns how many segments
    /// were rewritten. A partition that fails is logged and skipped; the first error is
    /// returned after the others were compacted. The maintenance thread does this every
    /// `retention_check_interval`.
    pub fn run_compaction(&self) -> Result<usize> {
        self.check_open()?;
        let now = crate::util::now_ms();
        let mut rewritten = 0;
        let mut first_error = None;
        for topic in self.inner.topics.all() {
            let compacted = topic.config.read().cleanup == CleanupPolicy::Compact;
            if !compacted && !is_internal(&topic.name) {
                continue;
            }
            let partitions: Vec<_> = topic.partitions.read().clone();
            for partition in partitions {
                match partition.compact(now) {
                    Ok(stats) => rewritten += stats.segments_rewritten,
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = partition.id(), error = %e, "compaction failed");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        first_error.map_or(Ok(rewritten), Err)
    }

    /// Closes the broker cleanly: answers parked classic JoinGroup and SyncGroup calls
    /// `Closed`, stops the maintenance and group timer threads, writes indexes and producer
    /// snapshots, fsyncs every partition and releases the data directory, which another
    /// broker may then open. Later calls on any handle fail with `Closed`. Dropping the last
    /// handle closes it too (logging any error).
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.groups.close_classic();
        self.inner.maintenance.stop();
        self.inner.sync_workers.stop();
        let result = self.inner.close_partitions();
        self.inner.lock.lock().take();
        result
    }

    pub(crate) fn signal(&self) -> &AppendSignal {
        &self.inner.signal
    }

    /// The transaction coordinator's state.
    pub fn transactions(&self) -> &TxnCoordinator {
        &self.inner.txns
    }

    pub(crate) fn topics(&self) -> &TopicRegistry {
        &self.inner.topics
    }
}

impl Inner {
    fn close_partitions(&self) -> Result<()> {
        let mut first_error = None;
        for topic in self.topics.all() {
            for partition in topic.partitions.read().iter() {
                if let Err(e) = partition.close() {
                    tracing::error!(topic = %topic.name, partition = partition.id(), error = %e, "closing partition failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.maintenance.stop();
        self.sync_workers.stop();
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.close_partitions();
        }
    }
}

/// Partition 0 of an internal topic, created with `config` on first use.
fn internal_partition(
    topics: &TopicRegistry,
    name: &str,
    config: &TopicConfig,
) -> Result<Arc<Partition>> {
    if topics.get(name).is_err() {
        topics.create(name, config.clone())?;
    }
    topics.get(name)?.partition(0)
}

/// Whether clients may not write to or delete `topic`.
fn is_internal(topic: &str) -> bool {
    topic == TXN_STATE_TOPIC || topic == OFFSETS_TOPIC
}

fn describe(topic: &topics::TopicState) -> TopicMetadata {
    TopicMetadata {
        name: topic.name.clone(),
        config: topic.config.read().clone(),
        partitions: topic.partitions.read().iter().map(|p| p.info()).collect(),
        internal: is_internal(&topic.name),
    }
}
