//! The transaction coordinator's state: per transactional id, its producer id, epoch, state,
//! enlisted partitions and timeout, kept in memory and persisted, one record per change, to
//! the internal topic `__transaction_state` (fsync = always), which is read back on open.
//! The protocol steps that use this state (init, add partitions, end, timeouts) are the
//! broker's methods in `broker/txn.rs`; each holds the id's lock for its whole step, so the
//! steps of one id never interleave.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::TxnState;
use crate::batch::{BatchBuilder, split_batches};
use crate::error::{Error, Result};
use crate::storage::Partition;
use crate::topic::TopicPartition;
use crate::txn::IsolationLevel;
use crate::util::now_ms;

/// The internal topic holding the coordinator's state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";
/// The largest transaction timeout a producer may ask for (`transaction.max.timeout.ms`).
pub const MAX_TXN_TIMEOUT_MS: u64 = 900_000;

/// The coordinator's record of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TxnMeta {
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) state: TxnState,
    pub(crate) partitions: BTreeSet<TopicPartition>,
    pub(crate) timeout_ms: u64,
    /// When the open transaction started (ms), for the timeout.
    pub(crate) txn_start_ms: i64,
    /// Markers written to partitions whose policy does not fsync them (`never`,
    /// `interval`) and not yet known to be on disk. After a power loss the broker writes
    /// again the one a partition lost (see `Broker::redrive_markers`).
    pub(crate) unsynced_markers: BTreeMap<TopicPartition, Vec<UnsyncedMarker>>,
    /// The (producer id, epoch) an InitProducerId with the producer's current id and epoch
    /// (KIP-360) just moved on from, so that a retry of that request gets the same answer
    /// (Kafka's lastProducerId / lastProducerEpoch). Any other epoch change clears it. Kept
    /// in memory only: a retry across a broker restart is fenced.
    #[serde(skip)]
    pub(crate) last_producer: Option<(i64, i16)>,
    /// Set while a transaction version 1 end (markers at the transaction's own epoch, no
    /// bump) is between Prepare* and Complete*, so that whoever finishes it writes the same
    /// markers. In memory only: after a restart a Prepare* is finished as a version 2 end
    /// (markers at the next epoch, which fences the producer; it re-initializes).
    #[serde(skip)]
    pub(crate) keep_epoch: bool,
}

/// A transaction marker not yet known to be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UnsyncedMarker {
    pub(crate) producer_id: i64,
    /// The marker's epoch: the epoch of the transaction's data (transaction version 1) or
    /// one more (version 2, timeouts and fencing).
    pub(crate) epoch: i16,
    pub(crate) commit: bool,
    pub(crate) offset: i64,
}

/// How many unsynced markers one id keeps per partition before it fsyncs the partition.
pub(crate) const MAX_UNSYNCED_MARKERS: usize = 64;

impl TxnMeta {
    /// Moves to `next`, refusing a move Kafka's table does not allow.
    pub(crate) fn move_to(&mut self, next: TxnState) -> Result<()> {
        if !self.state.can_move_to(next) {
            return Err(Error::InvalidTxnState(format!(
                "transactional id `{}` cannot go from {:?} to {next:?}",
                self.transactional_id, self.state
            )));
        }
        self.state = next;
        Ok(())
    }
}

/// A transactional id as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// Its state.
    pub state: TxnState,
    /// Partitions in the open transaction.
    pub partitions: Vec<TopicPartition>,
    /// Its transaction timeout.
    pub timeout_ms: u64,
}

/// Transactional ids, their locks and their persistence.
#[derive(Debug)]
pub struct TxnCoordinator {
    log: Arc<Partition>,
    ids: Mutex<HashMap<String, Arc<Mutex<TxnMeta>>>>,
    by_producer: Mutex<HashMap<i64, Arc<Mutex<TxnMeta>>>>,
}

impl TxnCoordinator {
    /// Loads the newest record of every transactional id from `log` (partition 0 of
    /// `__transaction_state`).
    pub(crate) fn load(log: Arc<Partition>) -> Result<Self> {
        let mut latest: HashMap<String, TxnMeta> = HashMap::new();
        let mut offset = log.info().log_start_offset;
        loop {
            let data = log.read(offset, 1 << 20, IsolationLevel::ReadUncommitted)?;
            if data.records.is_empty() {
                break;
            }
            let invalid = |offset, source| Error::InvalidBatch {
                topic: TXN_STATE_TOPIC.into(),
                partition: 0,
                offset,
                source,
            };
            for batch in split_batches(data.records).map_err(|e| invalid(offset, e))? {
                for record in batch
                    .records()
                    .map_err(|e| invalid(batch.base_offset(), e))?
                {
                    let record = record.map_err(|e| invalid(batch.base_offset(), e))?;
                    let Some(value) = record.value else { continue };
                    let (meta, _): (TxnMeta, _) =
                        bincode::serde::decode_from_slice(&value, bincode::config::standard())
                            .map_err(|e| Error::CorruptMetadata {
                                path: log.dir().to_path_buf(),
                                reason: format!(
                                    "transaction state at offset {}: {e}",
                                    record.offset
                                ),
                            })?;
                    latest.insert(meta.transactional_id.clone(), meta);
                }
                offset = batch.last_offset() + 1;
            }
        }
        let coordinator = Self {
            log,
            ids: Mutex::new(HashMap::new()),
            by_producer: Mutex::new(HashMap::new()),
        };
        for meta in latest.into_values() {
            coordinator.insert(meta);
        }
        Ok(coordinator)
    }

    /// Persists `meta` durably (the topic fsyncs every write).
    pub(crate) fn persist(&self, meta: &TxnMeta) -> Result<()> {
        let value = bincode::serde::encode_to_vec(meta, bincode::config::standard())
            .map_err(|e| Error::IllegalState(format!("encoding transaction state: {e}")))?;
        let mut batch = BatchBuilder::new();
        batch.append(
            now_ms(),
            Some(meta.transactional_id.as_bytes()),
            Some(&value),
            &[],
        );
        let bytes: Bytes = batch.build().map_err(|source| Error::InvalidBatch {
            topic: TXN_STATE_TOPIC.into(),
            partition: 0,
            offset: -1,
            source,
        })?;
        self.log.append(bytes, crate::broker::Acks::All)?;
        Ok(())
    }

    /// The lock of a transactional id.
    pub(crate) fn get(&self, transactional_id: &str) -> Option<Arc<Mutex<TxnMeta>>> {
        self.ids.lock().get(transactional_id).cloned()
    }

    /// The transactional id that owns a producer id.
    pub(crate) fn by_producer(&self, producer_id: i64) -> Option<Arc<Mutex<TxnMeta>>> {
        self.by_producer.lock().get(&producer_id).cloned()
    }

    /// Registers a new id (or replaces one after a reload).
    pub(crate) fn insert(&self, meta: TxnMeta) -> Arc<Mutex<TxnMeta>> {
        let pid = meta.producer_id;
        let id = meta.transactional_id.clone();
        let shared = Arc::new(Mutex::new(meta));
        self.ids.lock().insert(id, Arc::clone(&shared));
        self.by_producer.lock().insert(pid, Arc::clone(&shared));
        shared
    }

    /// The lock of `transactional_id`, created by `make` (which also persists it) when the
    /// id is new; the map stays locked meanwhile, so two first inits cannot both create it.
    /// The flag says whether it was created.
    pub(crate) fn get_or_create(
        &self,
        transactional_id: &str,
        make: impl FnOnce() -> Result<TxnMeta>,
    ) -> Result<(Arc<Mutex<TxnMeta>>, bool)> {
        let mut ids = self.ids.lock();
        if let Some(existing) = ids.get(transactional_id) {
            return Ok((Arc::clone(existing), false));
        }
        let meta = make()?;
        let pid = meta.producer_id;
        let shared = Arc::new(Mutex::new(meta));
        ids.insert(transactional_id.to_string(), Arc::clone(&shared));
        self.by_producer.lock().insert(pid, Arc::clone(&shared));
        Ok((shared, true))
    }

    /// Points a new producer id (after epoch exhaustion) at the state of `transactional_id`.
    pub(crate) fn rebind_producer(&self, transactional_id: &str, old: i64, new: i64) {
        let Some(meta) = self.get(transactional_id) else {
            return;
        };
        let mut by_producer = self.by_producer.lock();
        by_producer.remove(&old);
        by_producer.insert(new, meta);
    }

    /// Every id's lock.
    pub(crate) fn all(&self) -> Vec<Arc<Mutex<TxnMeta>>> {
        self.ids.lock().values().cloned().collect()
    }

    /// Describes one transactional id.
    pub fn describe(&self, transactional_id: &str) -> Option<TxnDescription> {
        let meta = self.get(transactional_id)?;
        let m = meta.lock();
        Some(TxnDescription {
            transactional_id: m.transactional_id.clone(),
            producer_id: m.producer_id,
            epoch: m.epoch,
            state: m.state,
            partitions: m.partitions.iter().cloned().collect(),
            timeout_ms: m.timeout_ms,
        })
    }
}
