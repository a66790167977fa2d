//! One partition's log: an ordered run of segments, the last one active. It assigns offsets,
//! enforces idempotence, rolls segments, serves reads and applies retention (compaction is in
//! `compaction.rs`). All mutation is under one lock; reads take a [`ReadView`] under the lock
//! and do their I/O without it. Offsets within sealed segments may have gaps once compacted:
//! a read returns the first batch that ends at or after the offset asked for.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::producer_state::ProducerStates;
use super::segment::{ReadView, Segment};
use crate::batch::{BatchError, RecordBatch};
use crate::error::{Error, Result};
use crate::topic::{FsyncPolicy, TopicConfig};
use crate::txn::{AbortedTxn, IsolationLevel};
use crate::util::{AppendSignal, now_ms};

/// Where a produced batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// True when the batch was a retry of one already in the log, which was not appended again.
    pub duplicate: bool,
    /// The partition's log start offset after the append.
    pub log_start_offset: i64,
}

/// Whole batches read from a partition, with its offsets at the time of the read.
#[derive(Debug, Clone)]
pub struct PartitionData {
    /// Consecutive v2 batches; the first holds the offset asked for. May be empty. Under
    /// read_committed none reaches the last stable offset.
    pub records: Bytes,
    /// The high watermark: offsets below it are readable by read_uncommitted.
    pub high_watermark: i64,
    /// The last stable offset: below it every transaction is decided.
    pub last_stable_offset: i64,
    /// The first offset still in the log.
    pub log_start_offset: i64,
    /// Under read_committed: the aborted transactions that overlap the returned batches,
    /// whose records the reader must drop (control batches are dropped too).
    pub aborted_transactions: Vec<AbortedTxn>,
}

/// The leading whole batches of `records` whose base offset is below `upper`.
fn batches_below(mut records: Bytes, upper: i64) -> Bytes {
    let mut keep = 0usize;
    while let Ok(header) = crate::batch::BatchHeader::parse(&records[keep..]) {
        if header.base_offset >= upper || keep + header.total_len() > records.len() {
            break;
        }
        keep += header.total_len();
    }
    records.truncate(keep);
    records
}

/// A partition's offsets and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition number.
    pub partition: i32,
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Next offset to be assigned.
    pub log_end_offset: i64,
    /// Offsets below this are readable. On this single-node log every acknowledged append is
    /// committed, so it equals the log end offset.
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, or the high watermark when none is
    /// open: read_committed readers stop here.
    pub last_stable_offset: i64,
    /// Offsets below this are known to be fsynced.
    pub durable_offset: i64,
    /// Bytes in all segments.
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: usize,
}

/// A sealed segment whose data (and transaction index) still awaits fsync.
#[derive(Debug)]
pub(super) struct Unsynced {
    pub(super) file: Arc<File>,
    pub(super) base: i64,
    /// The sealed segment's next offset: the recovery point once it is synced.
    pub(super) next: i64,
}

#[derive(Debug)]
pub(super) struct LogState {
    pub(super) segments: Vec<Segment>,
    pub(super) log_start: i64,
    pub(super) producers: ProducerStates,
    /// Sealed segments written since their last fsync.
    pub(super) unsynced: Vec<Unsynced>,
    /// Transactions aborted on this partition, in marker order.
    pub(super) aborted: Vec<AbortedTxn>,
    pub(super) durable_offset: i64,
    pub(super) last_flush_ms: i64,
}

impl LogState {
    pub(super) fn active(&self) -> &Segment {
        // Invariant: a partition always has at least one segment.
        &self.segments[self.segments.len() - 1]
    }
    pub(super) fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }
    pub(super) fn log_end(&self) -> i64 {
        self.active().next_offset
    }
    pub(super) fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .unwrap_or_else(|| self.log_end())
    }
}

/// One partition of a topic, on disk in `<data>/<topic>-<partition>/`.
#[derive(Debug)]
pub struct Partition {
    pub(super) topic: String,
    pub(super) id: i32,
    pub(super) dir: PathBuf,
    pub(super) config: TopicConfig,
    pub(super) state: Mutex<LogState>,
    pub(super) signal: Arc<AppendSignal>,
    pub(super) deleted: AtomicBool,
    /// Held for a whole compaction, so two never run on one partition at once; remembers
    /// what the last pass left, so a pass with nothing new to do is skipped.
    pub(super) cleaner: Mutex<Option<super::compaction::Checkpoint>>,
    /// Lets concurrent acks=all appends share one fsync (group commit).
    pub(super) sync_gate: super::group_commit::SyncGate,
    /// Tests only: the next fsync fails as a disk error would.
    #[cfg(test)]
    pub(super) fail_next_fsync: AtomicBool,
}

impl Partition {
    /// The partition number.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn invalid(&self, offset: i64, source: BatchError) -> Error {
        Error::InvalidBatch {
            topic: self.topic.clone(),
            partition: self.id,
            offset,
            source,
        }
    }

    pub(super) fn io(&self, action: &'static str, source: std::io::Error) -> Error {
        Error::io(action, &self.dir, source)
    }

    /// Refuses a partition whose topic was deleted, or whose fsync failed.
    pub(super) fn check_alive(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(Error::UnknownTopic {
                topic: self.topic.clone(),
            });
        }
        self.fsync_failed()
    }

    /// fsyncs the given sealed segments and, if given, the active file; then records that
    /// everything below `up_to` is durable and moves the recovery point past the sealed ones.
    /// On a failure the sealed segments go back on the unsynced list and nothing is recorded
    /// as durable. Call only through the sync gate (`group_commit`), so fsyncs of one
    /// partition never overlap.
    pub(super) fn sync_files(
        &self,
        sealed: Vec<Unsynced>,
        active: Option<&File>,
        up_to: i64,
    ) -> Result<()> {
        let synced = self.fsync_all(&sealed, active);
        if synced.is_err() {
            let mut state = self.state.lock();
            let later = std::mem::take(&mut state.unsynced);
            state.unsynced = sealed;
            state.unsynced.extend(later);
            return synced;
        }
        if let Some(point) = sealed.last().map(|s| s.next)
            && !self.deleted.load(Ordering::Acquire)
        {
            super::partition_open::write_recovery_point(&self.dir, point)
                .map_err(|e| self.io("writing the recovery point in", e))?;
        }
        let mut state = self.state.lock();
        state.durable_offset = state.durable_offset.max(up_to);
        if active.is_some() {
            state.last_flush_ms = now_ms();
        }
        Ok(())
    }

    fn fsync_all(&self, sealed: &[Unsynced], active: Option<&File>) -> Result<()> {
        #[cfg(test)]
        if self.fail_next_fsync.swap(false, Ordering::AcqRel) {
            return Err(self.io(
                "fsyncing (injected failure)",
                std::io::Error::other("injected EIO"),
            ));
        }
        for segment in sealed {
            segment
                .file
                .sync_data()
                .and_then(|()| super::txn_index::sync(&self.dir, segment.base))
                .map_err(|e| self.io("fsyncing a sealed segment in", e))?;
        }
        if let Some(active) = active {
            active.sync_data().map_err(|e| self.io("fsyncing", e))?;
        }
        Ok(())
    }

    /// fsyncs everything written so far and returns the offset below which all is durable.
    pub fn flush(&self) -> Result<i64> {
        self.exclusive_sync(|| self.sync_written())
    }

    /// Called by the broker's maintenance thread: fsyncs sealed segments not yet synced
    /// (every policy), and under `fsync = interval:MS` the active segment once the interval
    /// has passed with data not yet durable. A partition whose fsync failed is left alone
    /// (it was logged once, and refuses writes).
    pub(crate) fn flush_if_due(&self, now: i64) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) || self.fsync_failed().is_err() {
            return Ok(());
        }
        let interval_due = {
            let state = self.state.lock();
            match self.config.fsync {
                FsyncPolicy::Interval(every) => {
                    state.durable_offset < state.log_end()
                        && now - state.last_flush_ms >= every.as_millis() as i64
                }
                _ => false,
            }
        };
        if interval_due {
            return self.flush().map(|_| ());
        }
        if self.state.lock().unsynced.is_empty() {
            return Ok(());
        }
        self.exclusive_sync(|| {
            let mut state = self.state.lock();
            let sealed = std::mem::take(&mut state.unsynced);
            let up_to = sealed.last().map_or(state.durable_offset, |s| s.next);
            drop(state);
            self.sync_files(sealed, None, up_to)
        })
    }

    /// Reads whole batches starting at the one holding `offset`, up to `max_bytes` (at least
    /// one batch), below the high watermark (read_uncommitted) or the last stable offset
    /// (read_committed). An offset equal to the log end gives no data; one outside
    /// `[log start, log end]` is `OffsetOutOfRange`. `max_bytes` 0 reads no data, only the
    /// offsets (a fetch whose response budget is spent).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: IsolationLevel,
    ) -> Result<PartitionData> {
        self.check_alive()?;
        let (views, high_watermark, last_stable_offset, log_start_offset, aborted) = {
            let state = self.state.lock();
            let log_end = state.log_end();
            if offset < state.log_start || offset > log_end {
                return Err(Error::OffsetOutOfRange {
                    topic: self.topic.clone(),
                    partition: self.id,
                    offset,
                    log_start: state.log_start,
                    log_end,
                });
            }
            let first = state
                .segments
                .partition_point(|s| s.base_offset <= offset)
                .saturating_sub(1);
            let views: Vec<ReadView> = state.segments[first..]
                .iter()
                .enumerate()
                .map(|(i, s)| ReadView {
                    file: Arc::clone(s.file()),
                    start: if i == 0 { s.position_hint(offset) } else { 0 },
                    limit: s.size,
                })
                .collect();
            let lso = state.last_stable_offset();
            // Aborted transactions that end at or after `offset` can cover returned records.
            let aborted = match isolation {
                IsolationLevel::ReadCommitted => {
                    let from = state.aborted.partition_point(|a| a.last_offset < offset);
                    state.aborted[from..]
                        .iter()
                        .filter(|a| a.first_offset < lso)
                        .copied()
                        .collect()
                }
                IsolationLevel::ReadUncommitted => Vec::new(),
            };
            (views, log_end, lso, state.log_start, aborted)
        };
        let upper = match isolation {
            IsolationLevel::ReadCommitted => last_stable_offset,
            IsolationLevel::ReadUncommitted => high_watermark,
        };
        let mut records = Bytes::new();
        if offset < upper && max_bytes > 0 {
            for view in &views {
                records = view
                    .read_from(offset, max_bytes)
                    .map_err(|e| self.io("reading from", e))?;
                if !records.is_empty() {
                    break;
                }
            }
            records = batches_below(records, upper);
        }
        let aborted_transactions = match records.is_empty() {
            true => Vec::new(),
            false => aborted,
        };
        Ok(PartitionData {
            records,
            high_watermark,
            last_stable_offset,
            log_start_offset,
            aborted_transactions,
        })
    }

    /// The offset and timestamp of the first record whose timestamp is at or after
    /// `timestamp`, or `None` when every record is older (Kafka's `offsetsForTimes`).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.check_alive()?;
        let candidates: Vec<(ReadView, i64)> = {
            let state = self.state.lock();
            state
                .segments
                .iter()
                .filter(|s| s.max_timestamp >= timestamp)
                .map(|s| {
                    let from = s.time_hint(timestamp);
                    (
                        ReadView {
                            file: Arc::clone(s.file()),
                            start: s.position_hint(from),
                            limit: s.size,
                        },
                        from,
                    )
                })
                .collect()
        };
        for (view, from) in candidates {
            let found = view
                .find(|h| h.last_offset() >= from && h.max_timestamp >= timestamp)
                .map_err(|e| self.io("searching by timestamp in", e))?;
            let Some((_, header)) = found else { continue };
            let bytes = view
                .read_from(header.base_offset, 0)
                .map_err(|e| self.io("reading from", e))?;
            let batch =
                RecordBatch::parse(bytes).map_err(|e| self.invalid(header.base_offset, e))?;
            for record in batch
                .records()
                .map_err(|e| self.invalid(header.base_offset, e))?
            {
                let record = record.map_err(|e| self.invalid(header.base_offset, e))?;
                if record.timestamp >= timestamp && record.offset >= from {
                    return Ok(Some((record.offset, record.timestamp)));
                }
            }
        }
        Ok(None)
    }

    /// The largest record timestamp in the log, or `None` when it holds no record.
    pub fn max_timestamp(&self) -> Option<i64> {
        let state = self.state.lock();
        state
            .segments
            .iter()
            .filter(|s| s.size > 0)
            .map(|s| s.max_timestamp)
            .max()
    }

    /// Offsets and size now.
    pub fn info(&self) -> PartitionInfo {
        let state = self.state.lock();
        PartitionInfo {
            partition: self.id,
            log_start_offset: state.log_start,
            log_end_offset: state.log_end(),
            high_watermark: state.log_end(),
            last_stable_offset: state.last_stable_offset(),
            durable_offset: state.durable_offset,
            size_bytes: state.segments.iter().map(|s| s.size).sum(),
            segments: state.segments.len(),
        }
    }
}
