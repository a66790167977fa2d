//! One partition's log: an ordered run of segments, the last one active. It assigns offsets,
//! enforces idempotence, rolls segments, serves reads and applies retention. All mutation is
//! under one lock; reads take a [`ReadView`] under the lock and do their I/O without it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use super::producer_state::{ProducerStates, SequenceCheck, SequenceError};
use super::segment::{ReadView, Segment};
use crate::batch::{self, BatchError, RecordBatch};
use crate::error::{Error, Result};
use crate::topic::{FsyncPolicy, TopicConfig};
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
    /// Consecutive v2 batches; the first holds the offset asked for. May be empty.
    pub records: Bytes,
    /// The high watermark: offsets below it are readable.
    pub high_watermark: i64,
    /// The first offset still in the log.
    pub log_start_offset: i64,
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
    /// Offsets below this are known to be fsynced.
    pub durable_offset: i64,
    /// Bytes in all segments.
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: usize,
}

#[derive(Debug)]
pub(super) struct LogState {
    pub(super) segments: Vec<Segment>,
    pub(super) log_start: i64,
    pub(super) producers: ProducerStates,
    /// Sealed segments written since their last fsync.
    pub(super) unsynced: Vec<(Arc<File>, i64)>,
    pub(super) durable_offset: i64,
    pub(super) last_flush_ms: i64,
}

impl LogState {
    pub(super) fn active(&self) -> &Segment {
        // Invariant: a partition always has at least one segment.
        &self.segments[self.segments.len() - 1]
    }
    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }
    pub(super) fn log_end(&self) -> i64 {
        self.active().next_offset
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

    fn invalid(&self, offset: i64, source: BatchError) -> Error {
        Error::InvalidBatch {
            topic: self.topic.clone(),
            partition: self.id,
            offset,
            source,
        }
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> Error {
        Error::io(action, &self.dir, source)
    }

    fn check_alive(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(Error::UnknownTopic {
                topic: self.topic.clone(),
            });
        }
        Ok(())
    }

    /// Appends one produced batch: checks its CRC, its records and its producer sequence,
    /// assigns offsets, writes it and, under `fsync = always`, syncs it before returning.
    pub fn append(&self, batch: Bytes) -> Result<AppendOutcome> {
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
        if header.is_transactional() {
            return Err(Error::UnsupportedBatch {
                topic: self.topic.clone(),
                partition: self.id,
                reason: "transactional batches need the transaction coordinator, which this broker does not have yet",
            });
        }
        checked
            .validate_records()
            .map_err(|e| self.invalid(-1, e))?;
        let mut bytes = match checked.as_bytes().clone().try_into_mut() {
            Ok(unique) => unique,
            Err(shared) => BytesMut::from(&shared[..]),
        };

        let mut state = self.state.lock();
        self.check_alive()?;
        if header.has_producer_id() {
            match state.producers.check(&header) {
                Ok(SequenceCheck::Append) => {}
                Ok(SequenceCheck::Duplicate(meta)) => {
                    tracing::debug!(topic = %self.topic, partition = self.id, producer_id = header.producer_id,
                        base_sequence = header.base_sequence, offset = meta.first_offset, "duplicate batch acknowledged again");
                    return Ok(AppendOutcome {
                        base_offset: meta.first_offset,
                        last_offset: meta.last_offset,
                        duplicate: true,
                        log_start_offset: state.log_start,
                    });
                }
                Err(SequenceError::OutOfOrder { expected, received }) => {
                    return Err(Error::OutOfOrderSequence {
                        topic: self.topic.clone(),
                        partition: self.id,
                        producer_id: header.producer_id,
                        expected,
                        received,
                    });
                }
                Err(SequenceError::Fenced {
                    epoch,
                    current_epoch,
                }) => {
                    return Err(Error::ProducerFenced {
                        topic: self.topic.clone(),
                        partition: self.id,
                        producer_id: header.producer_id,
                        epoch,
                        current_epoch,
                    });
                }
            }
        }
        let base_offset = state.log_end();
        batch::set_base_offset(&mut bytes, base_offset);
        bytes[12..16].copy_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        let mut header = header;
        header.base_offset = base_offset;
        let now = now_ms();
        let active = state.active();
        if active.is_full_for(size as u64, header.last_offset(), self.config.segment_bytes)
            || (active.size > 0 && now - active.created_ms >= self.config.segment_ms)
        {
            self.roll(&mut state, base_offset)?;
        }
        let active = state.active_mut();
        active
            .append(&bytes, &header)
            .map_err(|e| Error::io("appending to", active.log_path().to_path_buf(), e))?;
        state.producers.update(&header);
        let outcome = AppendOutcome {
            base_offset,
            last_offset: header.last_offset(),
            duplicate: false,
            log_start_offset: state.log_start,
        };
        if self.config.fsync == FsyncPolicy::Always {
            let file = Arc::clone(state.active().file());
            let unsynced = std::mem::take(&mut state.unsynced);
            drop(state);
            self.sync_files(unsynced, Some(&file), outcome.last_offset + 1)?;
        } else {
            drop(state);
        }
        self.signal.bump();
        Ok(outcome)
    }

    /// Seals the active segment and starts a new one at `next_offset`, writing the sealed
    /// segment's indexes and a producer-state snapshot at `next_offset`. The sealed segment is
    /// fsynced later (by the maintenance thread or the next flush).
    fn roll(&self, state: &mut LogState, next_offset: i64) -> Result<()> {
        let sealed = state.active();
        sealed
            .write_indexes()
            .map_err(|e| Error::io("writing indexes of", sealed.log_path().to_path_buf(), e))?;
        state
            .unsynced
            .push((Arc::clone(sealed.file()), next_offset));
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

    /// fsyncs the given sealed segments and, if given, the active file; then records that
    /// everything below `up_to` is durable and moves the recovery point past the sealed ones.
    fn sync_files(
        &self,
        sealed: Vec<(Arc<File>, i64)>,
        active: Option<&File>,
        up_to: i64,
    ) -> Result<()> {
        let mut recovery_point = None;
        for (file, next) in &sealed {
            file.sync_data()
                .map_err(|e| self.io("fsyncing a sealed segment in", e))?;
            recovery_point = Some(*next);
        }
        if let Some(active) = active {
            active.sync_data().map_err(|e| self.io("fsyncing", e))?;
        }
        if let Some(point) = recovery_point {
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

    /// fsyncs everything written so far and returns the offset below which all is durable.
    pub fn flush(&self) -> Result<i64> {
        let mut state = self.state.lock();
        let up_to = state.log_end();
        let file = Arc::clone(state.active().file());
        let unsynced = std::mem::take(&mut state.unsynced);
        drop(state);
        self.sync_files(unsynced, Some(&file), up_to)?;
        Ok(up_to)
    }

    /// Called by the broker's maintenance thread: fsyncs sealed segments not yet synced
    /// (every policy), and under `fsync = interval:MS` the active segment once the interval
    /// has passed with data not yet durable.
    pub(crate) fn flush_if_due(&self, now: i64) -> Result<()> {
        let mut state = self.state.lock();
        let interval_due = match self.config.fsync {
            FsyncPolicy::Interval(every) => {
                state.durable_offset < state.log_end()
                    && now - state.last_flush_ms >= every.as_millis() as i64
            }
            _ => false,
        };
        if interval_due {
            drop(state);
            return self.flush().map(|_| ());
        }
        if state.unsynced.is_empty() {
            return Ok(());
        }
        let sealed = std::mem::take(&mut state.unsynced);
        let up_to = sealed
            .last()
            .map_or(state.durable_offset, |(_, next)| *next);
        drop(state);
        self.sync_files(sealed, None, up_to)
    }

    /// Reads whole batches starting at the one holding `offset`, up to `max_bytes` (at least
    /// one batch). An offset equal to the log end gives no data; one outside
    /// `[log start, log end]` is `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<PartitionData> {
        self.check_alive()?;
        let (views, high_watermark, log_start_offset) = {
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
            (views, log_end, state.log_start)
        };
        let mut records = Bytes::new();
        if offset < high_watermark {
            for view in &views {
                records = view
                    .read_from(offset, max_bytes)
                    .map_err(|e| self.io("reading from", e))?;
                if !records.is_empty() {
                    break;
                }
            }
        }
        Ok(PartitionData {
            records,
            high_watermark,
            log_start_offset,
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

    /// Offsets and size now.
    pub fn info(&self) -> PartitionInfo {
        let state = self.state.lock();
        PartitionInfo {
            partition: self.id,
            log_start_offset: state.log_start,
            log_end_offset: state.log_end(),
            high_watermark: state.log_end(),
            durable_offset: state.durable_offset,
            size_bytes: state.segments.iter().map(|s| s.size).sum(),
            segments: state.segments.len(),
        }
    }
}
