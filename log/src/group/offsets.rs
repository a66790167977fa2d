//! Committed offsets of consumer groups (docs/architecture.md §2.6), in memory and in the internal topic
//! `__consumer_offsets`. A plain commit is visible at once; a transactional one (written
//! with the producer's id inside its transaction) stays pending until the transaction's
//! marker: a commit marker makes it visible, an abort marker drops it. On open the topic is
//! replayed with the same rules, so offsets of transactions still open stay pending.
//! Deleting a group writes a tombstone (a null value) per committed partition, so a replay
//! (and compaction) forgets them too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchBuilder, split_batches};
use crate::error::{Error, Result};
use crate::storage::Partition;
use crate::topic::TopicPartition;
use crate::txn::{ControlType, IsolationLevel, control_type};
use crate::util::now_ms;

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OffsetKey {
    group: String,
    partition: TopicPartition,
}

/// One committed offset with the metadata string its commit carried (Kafka's
/// `committed_metadata`; empty when none).
pub type CommittedOffset = (TopicPartition, i64, String);

#[derive(Debug, Default)]
struct OffsetState {
    committed: HashMap<String, BTreeMap<TopicPartition, i64>>,
    /// The non-empty metadata strings of committed offsets.
    metadata: HashMap<(String, TopicPartition), String>,
    /// Transactional commits waiting for their marker, by producer id.
    pending: HashMap<i64, Vec<(String, CommittedOffset)>>,
}

impl OffsetState {
    fn apply(&mut self, group: String, partition: TopicPartition, offset: i64, metadata: String) {
        let key = (group, partition);
        if metadata.is_empty() {
            self.metadata.remove(&key);
        } else {
            self.metadata.insert(key.clone(), metadata);
        }
        let (group, partition) = key;
        self.committed
            .entry(group)
            .or_default()
            .insert(partition, offset);
    }

    fn forget(&mut self, group: &str, partition: &TopicPartition) {
        self.metadata
            .remove(&(group.to_string(), partition.clone()));
        if let Some(committed) = self.committed.get_mut(group) {
            committed.remove(partition);
            if committed.is_empty() {
                self.committed.remove(group);
            }
        }
    }

    fn complete(&mut self, producer_id: i64, kind: ControlType) {
        let Some(pending) = self.pending.remove(&producer_id) else {
            return;
        };
        if kind == ControlType::Commit {
            for (group, (partition, offset, metadata)) in pending {
                self.apply(group, partition, offset, metadata);
            }
        }
    }
}

/// The offset store of a broker.
#[derive(Debug)]
pub struct OffsetStore {
    log: Arc<Partition>,
    state: Mutex<OffsetState>,
}

fn encode_key(group: &str, partition: &TopicPartition) -> Result<Vec<u8>> {
    let key = OffsetKey {
        group: group.to_string(),
        partition: partition.clone(),
    };
    bincode::serde::encode_to_vec(&key, bincode::config::standard())
        .map_err(|e| Error::IllegalState(format!("encoding an offset key: {e}")))
}

impl OffsetStore {
    /// Replays `log` (partition 0 of `__consumer_offsets`).
    pub(crate) fn load(log: Arc<Partition>) -> Result<Self> {
        let mut state = OffsetState::default();
        let mut offset = log.info().log_start_offset;
        let invalid = |offset, source| Error::InvalidBatch {
            topic: OFFSETS_TOPIC.into(),
            partition: 0,
            offset,
            source,
        };
        loop {
            let data = log.read(offset, 1 << 20, IsolationLevel::ReadUncommitted)?;
            if data.records.is_empty() {
                break;
            }
            for batch in split_batches(data.records).map_err(|e| invalid(offset, e))? {
                let header = *batch.header();
                offset = batch.last_offset() + 1;
                if header.is_control() {
                    let kind = control_type(&batch).map_err(|e| invalid(header.base_offset, e))?;
                    state.complete(header.producer_id, kind);
                    continue;
                }
                for record in batch
                    .records()
                    .map_err(|e| invalid(header.base_offset, e))?
                {
                    let record = record.map_err(|e| invalid(header.base_offset, e))?;
                    let Some(key) = record.key else {
                        continue;
                    };
                    let Ok((key, _)) = bincode::serde::decode_from_slice::<OffsetKey, _>(
                        &key,
                        bincode::config::standard(),
                    ) else {
                        continue;
                    };
                    let Some(value) = record.value else {
                        if !header.is_transactional() {
                            state.forget(&key.group, &key.partition);
                        }
                        continue;
                    };
                    // The offset (8 bytes), then the commit's metadata string, if any.
                    let Some(bytes) = value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok())
                    else {
                        continue;
                    };
                    let committed = i64::from_be_bytes(bytes);
                    let metadata = String::from_utf8_lossy(&value[8..]).into_owned();
                    if header.is_transactional() {
                        state
                            .pending
                            .entry(header.producer_id)
                            .or_default()
                            .push((key.group, (key.partition, committed, metadata)));
                    } else {
                        state.apply(key.group, key.partition, committed, metadata);
                    }
                }
            }
        }
        Ok(Self {
            log,
            state: Mutex::new(state),
        })
    }

    /// The partition of `__consumer_offsets` that holds `group`'s commits.
    pub fn partition_for(&self, _group: &str) -> TopicPartition {
        TopicPartition::new(OFFSETS_TOPIC, self.log.id())
    }

    fn batch(
        &self,
        group: &str,
        offsets: &[CommittedOffset],
        producer: Option<(i64, i16)>,
    ) -> Result<bytes::Bytes> {
        let mut builder = BatchBuilder::new();
        if let Some((producer_id, epoch)) = producer {
            builder = builder
                .with_producer(producer_id, epoch, -1)
                .with_transactional(true);
        }
        let now = now_ms();
        for (partition, offset, metadata) in offsets {
            let key = encode_key(group, partition)?;
            let mut value = Vec::with_capacity(8 + metadata.len());
            value.extend_from_slice(&offset.to_be_bytes());
            value.extend_from_slice(metadata.as_bytes());
            builder.append(now, Some(&key), Some(&value), &[]);
        }
        builder.build().map_err(|source| Error::InvalidBatch {
            topic: OFFSETS_TOPIC.into(),
            partition: 0,
            offset: -1,
            source,
        })
    }

    /// Commits offsets outside a transaction: written, then visible.
    pub(crate) fn commit(&self, group: &str, offsets: &[CommittedOffset]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.log
            .append(self.batch(group, offsets, None)?, crate::broker::Acks::All)?;
        let mut state = self.state.lock();
        for (partition, offset, metadata) in offsets {
            state.apply(
                group.to_string(),
                partition.clone(),
                *offset,
                metadata.clone(),
            );
        }
        Ok(())
    }

    /// Writes offsets inside producer `producer_id`'s transaction; they stay pending until
    /// [`complete_txn`](Self::complete_txn).
    pub(crate) fn commit_transactional(
        &self,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: &[CommittedOffset],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.log
            .append_unsequenced(self.batch(group, offsets, Some((producer_id, epoch)))?)?;
        self.state
            .lock()
            .pending
            .entry(producer_id)
            .or_default()
            .extend(offsets.iter().map(|c| (group.to_string(), c.clone())));
        Ok(())
    }

    /// Applies or drops a producer's pending offsets once its marker is written.
    pub(crate) fn complete_txn(&self, producer_id: i64, kind: ControlType) {
        self.state.lock().complete(producer_id, kind);
    }

    /// The committed offsets of `group` for `partitions` (all of its partitions when empty).
    /// With `require_stable`, a partition whose offset waits on an open transaction is
    /// `UnstableOffsetCommit` (retriable), as Kafka's read_committed consumers ask for.
    pub fn fetch(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        require_stable: bool,
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let state = self.state.lock();
        if require_stable {
            for pending in state.pending.values() {
                if let Some((_, (p, _, _))) = pending.iter().find(|(g, (p, _, _))| {
                    g == group && (partitions.is_empty() || partitions.contains(p))
                }) {
                    return Err(Error::UnstableOffsetCommit {
                        group: group.to_string(),
                        partition: p.to_string(),
                    });
                }
            }
        }
        let committed = state.committed.get(group);
        Ok(if partitions.is_empty() {
            committed
                .map(|c| c.iter().map(|(p, o)| (p.clone(), Some(*o))).collect())
                .unwrap_or_default()
        } else {
            partitions
                .iter()
                .map(|p| (p.clone(), committed.and_then(|c| c.get(p)).copied()))
                .collect()
        })
    }

    /// The metadata string committed with `group`'s offset of `partition` (empty when none).
    pub fn metadata(&self, group: &str, partition: &TopicPartition) -> String {
        self.state
            .lock()
            .metadata
            .get(&(group.to_string(), partition.clone()))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `group` has committed offsets.
    pub fn has_group(&self, group: &str) -> bool {
        self.state.lock().committed.contains_key(group)
    }

    /// Forgets every committed offset of `group`: one tombstone per partition is written
    /// (durably) first, so a reload does not bring them back.
    pub(crate) fn delete_group(&self, group: &str) -> Result<()> {
        let partitions: Vec<TopicPartition> = match self.state.lock().committed.get(group) {
            Some(committed) => committed.keys().cloned().collect(),
            None => return Ok(()),
        };
        let mut builder = BatchBuilder::new();
        let now = now_ms();
        for partition in &partitions {
            builder.append(now, Some(&encode_key(group, partition)?), None, &[]);
        }
        let batch = builder.build().map_err(|source| Error::InvalidBatch {
            topic: OFFSETS_TOPIC.into(),
            partition: 0,
            offset: -1,
            source,
        })?;
        self.log.append(batch, crate::broker::Acks::All)?;
        let mut state = self.state.lock();
        for partition in &partitions {
            state.forget(group, partition);
        }
        Ok(())
    }

    /// Every group with committed offsets, sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.state.lock().committed.keys().cloned().collect();
        groups.sort();
        groups
    }
}
