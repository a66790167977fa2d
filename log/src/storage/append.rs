//! Writing to a partition: produced batches (checked, deduplicated, offsets assigned), the
//! transaction markers the coordinator writes, and segment rolls. Every write goes through
//! [`Partition::write_locked`], which also keeps the transaction state: the open
//! transactions (whose first offset is the last stable offset) and the aborted ones.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::MutexGuard;

use super::partition::{AppendOutcome, LogState, Partition, Unsynced};
use super::producer_state::{ProducerStates, SequenceCheck, SequenceError};
use super::segment::Segment;
use crate::batch::{self, BatchError, BatchHeader, RecordBatch};
use crate::broker::Acks;
use crate::error::{Error, Result};
use crate::topic::FsyncPolicy;
use crate::txn::{AbortedTxn, ControlType, marker_batch};
use crate::util::now_ms;

impl Partition {
    /// Appends one produced batch: checks its CRC, its records and its producer sequence,
    /// assigns offsets, writes it and, under `fsync = always`, syncs it before returning.
    /// Transactional batches must come from a producer id; the broker checks with the
    /// transaction coordinator that the partition is in the producer's open transaction.
    pub fn append(&self, batch: Bytes, acks: Acks) -> Result<AppendOutcome> {
        let (outcome, durable_at) = self.append_deferred(batch, acks)?;
        if let Some(up_to) = durable_at {
            self.sync_up_to(up_to)?;
        }
        Ok(outcome)
    }

    /// [`append`](Self::append) without the wait for durability: returns the outcome and,
    /// when the acknowledgement must wait for an fsync (acks=all under `commit`, every write
    /// under `always`), the offset below which data must be durable first
    /// ([`sync_up_to`](Self::sync_up_to)). A server answers later requests meanwhile, and
    /// concurrent waiters share one fsync (group commit).
    pub fn append_deferred(
        &self,
        batch: Bytes,
        acks: Acks,
    ) -> Result<(AppendOutcome, Option<i64>)> {
        self.check_alive()?;
        let size = batch.len();
        if size > self.config.max_message_bytes {
            return Err(Error::RecordTooLarge {
                topic: self.topic.clone(),
                partition: self.id,
                size,
                max: self.config.max_message_bytes,
            });
        }
        let checked = RecordBatch::parse(batch).map_err(|e| self.invalid(-1, e))?;
        if checked.as_bytes().len() != size {
            return Err(self.invalid(
                -1,
                BatchError::Inconsistent(format!(
                    "{} bytes after the batch; send one batch per produce",
                    size - checked.as_bytes().len()
                )),
            ));
        }
        let header = *checked.header();
        if header.is_control() {
            return Err(Error::UnsupportedBatch {
                topic: self.topic.clone(),
                partition: self.id,
                reason: "control batches are written by the transaction coordinator, not by clients",
            });
        }
        if header.is_transactional() && !header.has_producer_id() {
            return Err(self.invalid(
                -1,
                BatchError::Inconsistent("a transactional batch needs a producer id".into()),
            ));
        }
        let corrected_max_timestamp = checked
            .validate_records_max_timestamp()
            .map_err(|e| self.invalid(-1, e))?;
        let mut bytes = match checked.as_bytes().clone().try_into_mut() {
            Ok(unique) => unique,
            Err(shared) => BytesMut::from(&shared[..]),
        };
        let mut header = header;
        if let Some(max_timestamp) = corrected_max_timestamp {
            // As Kafka's broker does: the header takes the records' real largest timestamp.
            batch::set_max_timestamp(&mut bytes, max_timestamp);
            header.max_timestamp = max_timestamp;
        }

        let sync = self.syncs_on_ack(acks == Acks::All && !header.is_transactional());
        let state = self.state.lock();
        self.check_alive()?;
        if header.has_producer_id() {
            if let Some(duplicate) = self.check_sequence(&state, &header)? {
                // The original's acknowledgement may have been lost before its fsync: the
                // retry is acknowledged under the same durability.
                return Ok((duplicate, sync.then_some(duplicate.last_offset + 1)));
            }
            if !header.is_transactional() && state.producers.has_open_txn(header.producer_id) {
                return Err(Error::InvalidTxnState(format!(
                    "producer {} wrote a non-transactional batch to {}-{} while its transaction is open",
                    header.producer_id, self.topic, self.id
                )));
            }
        }
        let outcome = self.write_locked(state, bytes, header, None, false)?;
        Ok((outcome, sync.then_some(outcome.last_offset + 1)))
    }

    /// Whether a write is fsynced before it is acknowledged: always under `always`; under
    /// `commit` only for `commit_like` writes (non-transactional with acks=all).
    fn syncs_on_ack(&self, commit_like: bool) -> bool {
        match self.config.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Commit => commit_like,
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => false,
        }
    }

    /// Appends a batch written by the broker itself on a producer's behalf (transactional
    /// offset commits): checked like a produced batch but without a sequence number, so it
    /// joins the producer's open transaction without touching its sequences.
    pub(crate) fn append_unsequenced(&self, batch: Bytes) -> Result<AppendOutcome> {
        self.check_alive()?;
        let checked = RecordBatch::parse(batch).map_err(|e| self.invalid(-1, e))?;
        checked
            .validate_records()
            .map_err(|e| self.invalid(-1, e))?;
        let header = *checked.header();
        let bytes = BytesMut::from(&checked.as_bytes()[..]);
        let state = self.state.lock();
        self.check_alive()?;
        let sync = self.syncs_on_ack(false);
        self.write_locked(state, bytes, header, None, sync)
    }

    /// The sequence verdict for an idempotent batch: `Some` outcome for a duplicate, `None`
    /// to append it, or the error.
    fn check_sequence(
        &self,
        state: &LogState,
        header: &BatchHeader,
    ) -> Result<Option<AppendOutcome>> {
        match state.producers.check(header) {
            Ok(SequenceCheck::Append) => Ok(None),
            Ok(SequenceCheck::Duplicate(meta)) => {
                tracing::debug!(topic = %self.topic, partition = self.id, producer_id = header.producer_id,
                    base_sequence = header.base_sequence, offset = meta.first_offset, "duplicate batch acknowledged again");
                Ok(Some(AppendOutcome {
                    base_offset: meta.first_offset,
                    last_offset: meta.last_offset,
                    duplicate: true,
                    log_start_offset: state.log_start,
                }))
            }
            Err(SequenceError::OutOfOrder { expected, received }) => {
                Err(Error::OutOfOrderSequence {
                    topic: self.topic.clone(),
                    partition: self.id,
                    producer_id: header.producer_id,
                    expected,
                    received,
                })
            }
            Err(SequenceError::Fenced {
                epoch,
                current_epoch,
            }) => Err(Error::ProducerFenced {
                topic: self.topic.clone(),
                partition: self.id,
                producer_id: header.producer_id,
                epoch,
                current_epoch,
            }),
        }
    }

    /// Writes a transaction marker for `producer_id`: closes its open transaction here (if
    /// any) and, for an abort, records the aborted range. A marker from an epoch older than
    /// the producer's is fenced. Returns the marker's offset.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        kind: ControlType,
        coordinator_epoch: i32,
    ) -> Result<i64> {
        self.check_alive()?;
        let bytes = marker_batch(producer_id, epoch, kind, coordinator_epoch, now_ms())
            .map_err(|e| self.invalid(-1, e))?;
        let header = BatchHeader::parse(&bytes).map_err(|e| self.invalid(-1, e))?;
        let state = self.state.lock();
        self.check_alive()?;
        if let Some(current) = state.producers.epoch(producer_id)
            && current > epoch
        {
            return Err(Error::ProducerFenced {
                topic: self.topic.clone(),
                partition: self.id,
                producer_id,
                epoch,
                current_epoch: current,
            });
        }
        let sync = self.syncs_on_ack(false);
        let outcome =
            self.write_locked(state, BytesMut::from(&bytes[..]), header, Some(kind), sync)?;
        Ok(outcome.base_offset)
    }

    /// The epoch of `producer_id`'s transaction open here, if one is (after a power loss
    /// that took its marker, the coordinator writes the marker again).
    pub(crate) fn open_txn_epoch(&self, producer_id: i64) -> Option<i16> {
        let state = self.state.lock();
        if state.producers.has_open_txn(producer_id) {
            state.producers.epoch(producer_id)
        } else {
            None
        }
    }

    /// Assigns offsets, rolls if needed, writes, updates producer and transaction state, and
    /// applies the fsync policy. Releases the lock before any fsync.
    fn write_locked(
        &self,
        mut state: MutexGuard<'_, LogState>,
        mut bytes: BytesMut,
        mut header: BatchHeader,
        marker: Option<ControlType>,
        sync: bool,
    ) -> Result<AppendOutcome> {
        let base_offset = state.log_end();
        batch::set_base_offset(&mut bytes, base_offset);
        bytes[12..16].copy_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        header.base_offset = base_offset;
        let now = now_ms();
        let active = state.active();
        if active.is_full_for(
            bytes.len() as u64,
            header.last_offset(),
            self.config.segment_bytes,
        ) || (active.size > 0 && now - active.created_ms >= self.config.segment_ms)
        {
            self.roll(&mut state, base_offset)?;
        }
        let active = state.active_mut();
        active
            .append(&bytes, &header)
            .map_err(|e| Error::io("appending to", active.log_path().to_path_buf(), e))?;
        match marker {
            None => state.producers.update(&header),
            Some(kind) => {
                let first = state
                    .producers
                    .complete_txn(header.producer_id, header.producer_epoch);
                if let (ControlType::Abort, Some(first_offset)) = (kind, first) {
                    let aborted = AbortedTxn {
                        producer_id: header.producer_id,
                        first_offset,
                        last_offset: base_offset,
                    };
                    // In memory first: readers must never see the aborted records, even if
                    // the index write below fails (recovery rebuilds the index).
                    state.aborted.push(aborted);
                    let segment_base = state.active().base_offset;
                    super::txn_index::append(&self.dir, segment_base, &aborted)
                        .map_err(|e| self.io("writing the transaction index in", e))?;
                }
            }
        }
        let outcome = AppendOutcome {
            base_offset,
            last_offset: header.last_offset(),
            duplicate: false,
            log_start_offset: state.log_start,
        };
        drop(state);
        if sync {
            // Group commit: appends waiting for durability share the fsyncs.
            self.sync_up_to(outcome.last_offset + 1)?;
        }
        self.signal.bump();
        Ok(outcome)
    }

    /// Seals the active segment and starts a new one at `next_offset`, writing the sealed
    /// segment's indexes and a producer-state snapshot at `next_offset`. The sealed segment is
    /// fsynced later (by the maintenance thread or the next flush).
    fn roll(&self, state: &mut LogState, next_offset: i64) -> Result<()> {
        let sealed = state.active();
        // Nothing but whole batches stays in a sealed segment.
        sealed
            .file()
            .set_len(sealed.size)
            .map_err(|e| Error::io("sealing", sealed.log_path().to_path_buf(), e))?;
        sealed
            .write_indexes()
            .map_err(|e| Error::io("writing indexes of", sealed.log_path().to_path_buf(), e))?;
        state.unsynced.push(Unsynced {
            file: Arc::clone(sealed.file()),
            base: sealed.base_offset,
            next: next_offset,
        });
        let snapshot = state.producers.encode_snapshot(next_offset);
        let path = ProducerStates::snapshot_path(&self.dir, next_offset);
        std::fs::write(&path, snapshot).map_err(|e| Error::io("writing snapshot", path, e))?;
        super::partition_open::prune_snapshots(&self.dir, 3);
        let segment = Segment::create(&self.dir, next_offset, self.config.index_interval_bytes)
            .map_err(|e| self.io("creating a segment in", e))?;
        tracing::debug!(topic = %self.topic, partition = self.id, base_offset = next_offset, "rolled segment");
        state.segments.push(segment);
        Ok(())
    }
}
