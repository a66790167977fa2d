//! The transaction protocol on the broker (docs/architecture.md §2.5; Kafka's KIP-98, KIP-447, KIP-890):
//! `init_transactions`, `add_partitions_to_txn`, `add_offsets_to_txn`,
//! `txn_offset_commit` and `end_txn`, the two-phase end with markers, and the sweep that
//! aborts transactions past their timeout.
//!
//! Epochs follow KIP-890 part 2 (transaction version 2, `end_txn`): a transaction runs at
//! epoch E; its markers are written at E + 1 and the producer continues at E + 1, so a
//! produce or an `end_txn` delayed from an earlier transaction carries an old epoch and is
//! fenced everywhere. A retried `end_txn` (same kind, epoch E, the transaction already
//! complete at E + 1) is answered again. Kafka clients on older protocol versions use
//! transaction version 1 (`end_txn_with(.., TxnVersion::V1)`): markers at E and the epoch
//! stays. Either way a timeout or a new instance aborts with markers at E + 1 and fences the
//! producer. InitProducerId is in `txn_init.rs`.

use super::{Broker, ProducerIdAndEpoch};
use crate::error::{Error, Result};
use crate::group::CommittedOffset;
use crate::topic::{FsyncPolicy, TopicPartition};
use crate::txn::coordinator::{MAX_UNSYNCED_MARKERS, TxnMeta, UnsyncedMarker};
use crate::txn::{ControlType, TxnDescription, TxnState, TxnVersion};
use crate::util::now_ms;

impl Broker {
    /// Checks that a request comes from the id's current producer and epoch.
    /// A different producer id is `ProducerIdMismatch` (Kafka checks the id before the
    /// epoch: INVALID_PRODUCER_ID_MAPPING), an older epoch `TxnProducerFenced`.
    pub(super) fn check_producer(m: &TxnMeta, id: ProducerIdAndEpoch) -> Result<()> {
        if m.producer_id != id.producer_id {
            return Err(Error::ProducerIdMismatch {
                transactional_id: m.transactional_id.clone(),
                producer_id: id.producer_id,
                current_producer_id: m.producer_id,
            });
        }
        if m.epoch != id.epoch {
            return Err(Error::TxnProducerFenced {
                transactional_id: m.transactional_id.clone(),
                producer_id: id.producer_id,
                epoch: id.epoch,
                current_epoch: m.epoch,
            });
        }
        Ok(())
    }

    fn txn(&self, transactional_id: &str) -> Result<std::sync::Arc<parking_lot::Mutex<TxnMeta>>> {
        self.check_open()?;
        self.inner
            .txns
            .get(transactional_id)
            .ok_or_else(|| Error::TransactionalIdNotFound(transactional_id.to_string()))
    }

    /// AddPartitionsToTxn: enlists partitions in the producer's transaction, opening it if
    /// none is open. The record is fsynced before the call returns, so a crash can never
    /// leave transactional data the coordinator does not know to abort.
    pub fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let shared = self.txn(transactional_id)?;
        let mut m = shared.lock();
        Self::check_producer(&m, producer)?;
        if m.state.is_preparing() {
            return Err(Error::ConcurrentTransactions {
                transactional_id: transactional_id.to_string(),
            });
        }
        for tp in partitions {
            self.inner.topics.get(&tp.topic)?.partition(tp.partition)?;
        }
        let opening = m.state != TxnState::Ongoing;
        let new: Vec<&TopicPartition> = partitions
            .iter()
            .filter(|p| !m.partitions.contains(*p))
            .collect();
        if !opening && new.is_empty() {
            return Ok(());
        }
        if opening {
            m.move_to(TxnState::Ongoing)?;
            m.txn_start_ms = now_ms();
            m.partitions.clear();
        }
        m.partitions.extend(new.into_iter().cloned());
        self.inner.txns.persist(&m)
    }

    /// AddOffsetsToTxn: enlists the `__consumer_offsets` partition of `group`.
    pub fn add_offsets_to_txn(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group: &str,
    ) -> Result<()> {
        let partition = self.inner.offsets.partition_for(group);
        self.add_partitions_to_txn(transactional_id, producer, &[partition])
    }

    /// TxnOffsetCommit: writes `group`'s offsets inside the transaction. They become the
    /// group's committed offsets when the transaction commits and vanish if it aborts. A
    /// member of a stale generation is refused (KIP-447 zombie fencing); generation -1 with
    /// an empty member id is a standalone (assign-mode) consumer.
    pub fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let offsets: Vec<CommittedOffset> = offsets
            .iter()
            .map(|(tp, offset)| (tp.clone(), *offset, String::new()))
            .collect();
        self.txn_offset_commit_with_metadata(
            transactional_id,
            producer,
            group,
            generation,
            member_id,
            &offsets,
        )
    }

    /// [`txn_offset_commit`](Self::txn_offset_commit) with each offset's metadata string.
    pub fn txn_offset_commit_with_metadata(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &[CommittedOffset],
    ) -> Result<()> {
        self.txn_offset_commit_with_instance(
            transactional_id,
            producer,
            group,
            generation,
            member_id,
            None,
            offsets,
        )
    }

    /// [`txn_offset_commit_with_metadata`](Self::txn_offset_commit_with_metadata) from a
    /// member that names its `group.instance.id` (TxnOffsetCommit v3+): a classic static
    /// member that was replaced gets `FencedInstanceId`, as in Kafka.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_offset_commit_with_instance(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        group: &str,
        generation: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        offsets: &[CommittedOffset],
    ) -> Result<()> {
        let shared = self.txn(transactional_id)?;
        let m = shared.lock();
        Self::check_producer(&m, producer)?;
        let offsets_partition = self.inner.offsets.partition_for(group);
        if m.state != TxnState::Ongoing || !m.partitions.contains(&offsets_partition) {
            return Err(Error::InvalidTxnState(format!(
                "transactional id `{transactional_id}` must add offsets for group `{group}` to an open transaction first"
            )));
        }
        self.inner.groups.with_txn_generation(
            group,
            generation,
            member_id,
            group_instance_id,
            || {
                self.inner.offsets.commit_transactional(
                    producer.producer_id,
                    producer.epoch,
                    group,
                    offsets,
                )
            },
        )
    }

    /// EndTxn under transaction version 2 (KIP-890 part 2): commits or aborts the open
    /// transaction and returns the producer's next epoch. See
    /// [`end_txn_with`](Self::end_txn_with).
    pub fn end_txn(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        commit: bool,
    ) -> Result<ProducerIdAndEpoch> {
        self.end_txn_with(transactional_id, producer, commit, TxnVersion::V2)
    }

    /// EndTxn: commits or aborts the open transaction. PrepareCommit / PrepareAbort is
    /// written durably first (under the `commit` and `always` policies the enlisted
    /// partitions are fsynced before it: this is the commit point), then a marker goes to
    /// every enlisted partition, then Complete*. Returns the producer's id and epoch from
    /// now on: under [`TxnVersion::V2`] the next epoch (the markers carry it), under
    /// [`TxnVersion::V1`] the same one (the markers carry the transaction's epoch).
    ///
    /// A retry of an end that already completed is answered again: under V2 when it comes
    /// from the epoch just before the current one, under V1 from the current epoch with the
    /// same kind (the other kind is `InvalidTxnState`, as Kafka answers it).
    pub fn end_txn_with(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        commit: bool,
        version: TxnVersion,
    ) -> Result<ProducerIdAndEpoch> {
        let shared = self.txn(transactional_id)?;
        let mut m = shared.lock();
        let (kind, preparing, done) = if commit {
            (
                ControlType::Commit,
                TxnState::PrepareCommit,
                TxnState::CompleteCommit,
            )
        } else {
            (
                ControlType::Abort,
                TxnState::PrepareAbort,
                TxnState::CompleteAbort,
            )
        };
        let now = ProducerIdAndEpoch {
            producer_id: m.producer_id,
            epoch: m.epoch,
        };
        if version == TxnVersion::V2
            && m.producer_id == producer.producer_id
            && m.state == done
            && i32::from(m.epoch) == i32::from(producer.epoch) + 1
        {
            // A retry of the end that already happened.
            return Ok(now);
        }
        Self::check_producer(&m, producer)?;
        match m.state {
            TxnState::Ongoing => {}
            state if version == TxnVersion::V1 && state == done => return Ok(now),
            state if state == preparing || (version == TxnVersion::V2 && state.is_preparing()) => {
                return Err(Error::ConcurrentTransactions {
                    transactional_id: transactional_id.to_string(),
                });
            }
            other => {
                return Err(Error::InvalidTxnState(format!(
                    "transactional id `{transactional_id}` has no open transaction to {} (state {other:?})",
                    if commit { "commit" } else { "abort" }
                )));
            }
        }
        if commit {
            self.flush_enlisted(&m, |policy| {
                matches!(policy, FsyncPolicy::Commit | FsyncPolicy::Always)
            })?;
        }
        m.move_to(preparing)?;
        m.keep_epoch = version == TxnVersion::V1;
        self.inner.txns.persist(&m)?;
        if commit && self.txn_fault(transactional_id) {
            return Err(Error::InjectedFault(format!(
                "EndTxn of `{transactional_id}` stopped after PrepareCommit, before the markers"
            )));
        }
        self.write_markers(&mut m, kind, version == TxnVersion::V2)?;
        Ok(ProducerIdAndEpoch {
            producer_id: m.producer_id,
            epoch: m.epoch,
        })
    }

    /// fsyncs the enlisted partitions whose topic policy `wanted` accepts.
    fn flush_enlisted(&self, m: &TxnMeta, wanted: impl Fn(FsyncPolicy) -> bool) -> Result<()> {
        for tp in &m.partitions {
            let Ok(topic) = self.inner.topics.get(&tp.topic) else {
                continue;
            };
            if wanted(topic.config.read().fsync) {
                topic.partition(tp.partition)?.flush()?;
            }
        }
        Ok(())
    }

    /// Second phase of the end, from Prepare*: a marker on every enlisted partition, the
    /// group offsets applied or dropped, then Complete*. With `bump` (transaction version 2,
    /// timeouts, fencing) the markers carry the next epoch and the id moves to it; without
    /// (version 1) they carry the transaction's own epoch, which stays.
    /// Under `commit` and `always` the marker is fsynced, so Complete* never outlives it;
    /// under `never` and `interval` it is remembered until it is on disk, and
    /// `redrive_markers` writes it again on open if a power loss took it.
    pub(super) fn write_markers(
        &self,
        m: &mut TxnMeta,
        kind: ControlType,
        bump: bool,
    ) -> Result<()> {
        let marker_epoch = if bump {
            m.epoch.saturating_add(1)
        } else {
            m.epoch
        };
        let offsets_topic = crate::group::OFFSETS_TOPIC;
        for tp in &m.partitions {
            let partition = match self
                .inner
                .topics
                .get(&tp.topic)
                .and_then(|t| t.partition(tp.partition))
            {
                Ok(p) => p,
                Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. }) => continue,
                Err(e) => return Err(e),
            };
            let offset = partition.append_marker(m.producer_id, marker_epoch, kind, 0)?;
            let policy = self
                .inner
                .topics
                .get(&tp.topic)
                .map(|t| t.config.read().fsync);
            if matches!(policy, Ok(FsyncPolicy::Commit | FsyncPolicy::Always)) {
                // The commit's data is on disk already; its marker joins it.
                partition.flush()?;
            } else {
                // The topic promises nothing for power loss: remember the marker instead,
                // so a power loss that takes it cannot leave the transaction hanging.
                let durable = partition.info().durable_offset;
                let unsynced = m.unsynced_markers.entry(tp.clone()).or_default();
                unsynced.retain(|marker| marker.offset >= durable);
                unsynced.push(UnsyncedMarker {
                    producer_id: m.producer_id,
                    epoch: marker_epoch,
                    commit: kind == ControlType::Commit,
                    offset,
                });
                if unsynced.len() > MAX_UNSYNCED_MARKERS {
                    partition.flush()?;
                    unsynced.clear();
                }
            }
            if tp.topic == offsets_topic {
                self.inner.offsets.complete_txn(m.producer_id, kind);
            }
        }
        if bump {
            self.bump_epoch(m)?;
        }
        m.keep_epoch = false;
        m.move_to(match kind {
            ControlType::Commit => TxnState::CompleteCommit,
            ControlType::Abort => TxnState::CompleteAbort,
        })?;
        m.partitions.clear();
        self.inner.txns.persist(m)?;
        tracing::debug!(transactional_id = %m.transactional_id, ?kind, epoch = m.epoch, "transaction ended");
        Ok(())
    }

    /// On open: writes again every remembered marker that its partition lost, and finishes
    /// any Prepare* a crash interrupted. Returns how many markers were written again.
    ///
    /// A remembered marker was lost when its offset is no longer in the log (recovery leaves
    /// a prefix of what was written) and its producer's transaction is still open there at
    /// the marker's epoch (version 1) or the epoch just below (version 2). The offset
    /// decides under version 1, where the next transaction runs at the marker's epoch too.
    /// A marker written again is remembered at its new offset.
    pub(crate) fn redrive_markers(&self) -> Result<usize> {
        let mut written = 0;
        for shared in self.inner.txns.all() {
            let mut m = shared.lock();
            let remembered: Vec<_> = m
                .unsynced_markers
                .iter()
                .map(|(tp, list)| (tp.clone(), list.clone()))
                .collect();
            let mut moved = false;
            for (tp, list) in remembered {
                let Ok(partition) = self
                    .inner
                    .topics
                    .get(&tp.topic)
                    .and_then(|t| t.partition(tp.partition))
                else {
                    continue;
                };
                for (i, marker) in list.iter().enumerate() {
                    let Some(open_epoch) = partition.open_txn_epoch(marker.producer_id) else {
                        continue;
                    };
                    let gap = i32::from(marker.epoch) - i32::from(open_epoch);
                    if !(gap == 0 || gap == 1) || partition.info().log_end_offset > marker.offset {
                        continue;
                    }
                    let kind = if marker.commit {
                        ControlType::Commit
                    } else {
                        ControlType::Abort
                    };
                    tracing::warn!(%tp, producer_id = marker.producer_id, epoch = marker.epoch, ?kind,
                        "writing a transaction marker lost in a crash again");
                    let offset =
                        partition.append_marker(marker.producer_id, marker.epoch, kind, 0)?;
                    if let Some(entry) = m.unsynced_markers.get_mut(&tp).and_then(|l| l.get_mut(i))
                    {
                        entry.offset = offset;
                        moved = true;
                    }
                    if tp.topic == crate::group::OFFSETS_TOPIC {
                        self.inner.offsets.complete_txn(marker.producer_id, kind);
                    }
                    written += 1;
                }
            }
            if moved {
                self.inner.txns.persist(&m)?;
            }
            self.finish_prepared(&mut m)?;
        }
        Ok(written)
    }

    /// Writes the markers of a Prepare* a crash or a fault left, as the end that wrote it
    /// would have.
    fn finish_prepared(&self, m: &mut TxnMeta) -> Result<()> {
        let bump = !m.keep_epoch;
        match m.state {
            TxnState::PrepareCommit => self.write_markers(m, ControlType::Commit, bump),
            TxnState::PrepareAbort => self.write_markers(m, ControlType::Abort, bump),
            _ => Ok(()),
        }
    }

    /// Aborts every transaction open longer than its timeout, fencing its producer (its
    /// epoch moves on). Also finishes any Prepare* left by a crash. Returns how many it
    /// aborted.
    pub fn abort_expired_transactions(&self) -> Result<usize> {
        let now = now_ms();
        let mut aborted = 0;
        for shared in self.inner.txns.all() {
            let mut m = shared.lock();
            match m.state {
                TxnState::Ongoing if now - m.txn_start_ms > m.timeout_ms as i64 => {
                    tracing::warn!(transactional_id = %m.transactional_id, "transaction timed out; aborting and fencing its producer");
                    m.move_to(TxnState::PrepareAbort)?;
                    self.inner.txns.persist(&m)?;
                    self.write_markers(&mut m, ControlType::Abort, true)?;
                    aborted += 1;
                }
                _ => self.finish_prepared(&mut m)?,
            }
        }
        Ok(aborted)
    }

    /// The coordinator's view of a transactional id.
    pub fn describe_transaction(&self, transactional_id: &str) -> Result<TxnDescription> {
        self.inner
            .txns
            .describe(transactional_id)
            .ok_or_else(|| Error::TransactionalIdNotFound(transactional_id.to_string()))
    }

    /// KIP-890 verification of a transactional batch before it is appended: the producer's
    /// current epoch must have `tp` in its open transaction. Runs `append` under the
    /// transactional id's lock, so no marker can slip in between the check and the write.
    pub(crate) fn with_verified_txn<T>(
        &self,
        producer: ProducerIdAndEpoch,
        tp: &TopicPartition,
        append: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let Some(shared) = self.inner.txns.by_producer(producer.producer_id) else {
            return Err(Error::InvalidTxnState(format!(
                "producer {} has no transactional id; call init_transactions",
                producer.producer_id
            )));
        };
        let m = shared.lock();
        if m.epoch != producer.epoch {
            return Err(Error::ProducerFenced {
                topic: tp.topic.clone(),
                partition: tp.partition,
                producer_id: producer.producer_id,
                epoch: producer.epoch,
                current_epoch: m.epoch,
            });
        }
        if m.state != TxnState::Ongoing || !m.partitions.contains(tp) {
            return Err(Error::InvalidTxnState(format!(
                "{tp} was not added to the open transaction of `{}` (epoch {})",
                m.transactional_id, m.epoch
            )));
        }
        append()
    }
}
