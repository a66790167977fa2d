//! Opening a partition from its directory (recovery), and the partition's housekeeping:
//! retention, snapshots and the recovery-point file.
//!
//! Recovery: segments are listed by base offset. Sealed segments below the recovery point
//! (everything fsynced when they were sealed) are trusted and keep their index files when those
//! fit; every later segment, the active one always included, is scanned batch by batch and
//! truncated at the first torn or corrupt batch, and any segment after a truncation is removed.
//! Producer state is then loaded from the newest snapshot at or below the log end and brought
//! up to date by re-reading the batch headers after it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;

use super::partition::{LogState, Partition};
use super::producer_state::ProducerStates;
use super::segment::{ReadView, Segment};
use crate::batch::RecordBatch;
use crate::error::{Error, Result};
use crate::topic::TopicConfig;
use crate::txn::{AbortedTxn, ControlType};
use crate::util::{AppendSignal, now_ms, write_atomically};

const RECOVERY_POINT_FILE: &str = "recovery-point";

/// Persists the offset below which every sealed segment has been fsynced.
pub(super) fn write_recovery_point(dir: &Path, offset: i64) -> std::io::Result<()> {
    write_atomically(
        &dir.join(RECOVERY_POINT_FILE),
        offset.to_string().as_bytes(),
    )
}

pub(super) fn read_recovery_point(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join(RECOVERY_POINT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Offsets of the files in `dir` with the given extension, sorted.
pub(super) fn offsets_with_extension(dir: &Path, ext: &str) -> std::io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(ext)
            && let Some(offset) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
        {
            out.push(offset);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Deletes all but the `keep` newest producer-state snapshots.
pub(super) fn prune_snapshots(dir: &Path, keep: usize) {
    if let Ok(offsets) = offsets_with_extension(dir, "snapshot") {
        for offset in offsets.iter().rev().skip(keep) {
            let _ = std::fs::remove_file(ProducerStates::snapshot_path(dir, *offset));
        }
    }
}

impl Partition {
    /// Opens (or creates, when `dir` does not exist) the partition stored in `dir`,
    /// recovering it as described in the module doc.
    pub(crate) fn open(
        dir: &Path,
        topic: &str,
        id: i32,
        config: TopicConfig,
        signal: Arc<AppendSignal>,
    ) -> Result<Self> {
        let io = |action: &'static str| move |e| Error::io(action, dir, e);
        std::fs::create_dir_all(dir).map_err(io("creating"))?;
        // A compaction interrupted before its rename: the `.log` beside it is intact.
        for base in offsets_with_extension(dir, "cleaned").map_err(io("listing"))? {
            tracing::warn!(
                topic,
                partition = id,
                base,
                "removing an unfinished compaction output"
            );
            std::fs::remove_file(Segment::cleaned_path(dir, base))
                .map_err(io("removing a compaction leftover in"))?;
        }
        let bases = offsets_with_extension(dir, "log").map_err(io("listing"))?;
        let recovery_point = read_recovery_point(dir);
        let interval = config.index_interval_bytes;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let recovered = match next_base {
                Some(next) if next <= recovery_point => {
                    Segment::open_sealed(dir, base, next, interval)
                }
                // A segment below the recovery point may have been compacted (gaps).
                _ => Segment::recover(dir, base, interval, base < recovery_point, |_| {}),
            }
            .map_err(io("recovering a segment in"))?;
            let seg = recovered.segment;
            if let Some(prev) = segments.last()
                && seg.base_offset < prev.next_offset
            {
                // Overlapping segments: keep the earlier data, drop this file.
                tracing::warn!(dir = %dir.display(), base, "segment overlaps its predecessor; removing it");
                seg.delete_files().map_err(io("removing a segment in"))?;
                continue;
            }
            if let Some(prev) = segments.last()
                && seg.base_offset > prev.next_offset
            {
                // A hole (the predecessor lost its tail): nothing after it can be trusted.
                tracing::warn!(dir = %dir.display(), base, after = prev.next_offset,
                    "segment does not follow its predecessor; removing it and all later ones");
                for &later in &bases[i..] {
                    Segment::remove_files(dir, later).map_err(io("removing a segment in"))?;
                }
                break;
            }
            let cut = recovered.truncated.is_some();
            if let Some((bytes, reason)) = recovered.truncated {
                tracing::warn!(topic, partition = id, segment = %seg.log_path().display(), bytes, %reason,
                    "truncated a torn or corrupt tail");
            }
            // A cut that still ends where the next segment starts only removed stray bytes.
            let joins_next = next_base.is_some_and(|next| seg.next_offset == next);
            segments.push(seg);
            if cut && !joins_next {
                for &later in &bases[i + 1..] {
                    tracing::warn!(
                        topic,
                        partition = id,
                        base = later,
                        "removing segment after a truncation"
                    );
                    Segment::remove_files(dir, later).map_err(io("removing a segment in"))?;
                }
                break;
            }
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, 0, interval).map_err(io("creating a segment in"))?);
        }
        let log_end = segments[segments.len() - 1].next_offset;
        // DeleteRecords may have moved the start past the first segment's base.
        let log_start = super::delete_records::read_log_start(dir)
            .map_or(segments[0].base_offset, |moved| {
                moved.max(segments[0].base_offset)
            })
            .min(log_end);

        // What recovery kept is on disk now; make it durable so the durable offset can
        // start at the log end (one fsync per scanned segment, on open only).
        for seg in segments
            .iter()
            .filter(|s| s.base_offset >= recovery_point || s.next_offset == log_end)
        {
            seg.file()
                .sync_data()
                .map_err(io("fsyncing a recovered segment in"))?;
        }
        let (producers, aborted) =
            restore_state(dir, &segments, log_start, log_end, recovery_point)?;
        let state = LogState {
            segments,
            log_start,
            producers,
            unsynced: Vec::new(),
            aborted,
            durable_offset: log_end,
            last_flush_ms: now_ms(),
        };
        tracing::debug!(
            topic,
            partition = id,
            log_start,
            log_end,
            "opened partition"
        );
        Ok(Self {
            topic: topic.to_string(),
            id,
            dir: dir.to_path_buf(),
            config,
            state: Mutex::new(state),
            signal,
            deleted: AtomicBool::new(false),
            cleaner: Mutex::new(None),
            sync_gate: Default::default(),
            #[cfg(test)]
            fail_next_fsync: AtomicBool::new(false),
        })
    }

    /// Deletes sealed segments past `retention_ms` (by their newest record) or beyond
    /// `retention_bytes`, oldest first, and moves the log start offset to the first segment
    /// kept. The active segment is never deleted. Returns how many segments went. Does
    /// nothing on a `cleanup = compact` topic, which is compacted instead.
    pub fn apply_retention(&self, now: i64) -> Result<usize> {
        if self.config.cleanup == crate::topic::CleanupPolicy::Compact {
            return Ok(0);
        }
        let mut state = self.state.lock();
        if self.deleted.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(0);
        }
        let mut total: u64 = state.segments.iter().map(|s| s.size).sum();
        let mut doomed = 0;
        for seg in &state.segments[..state.segments.len() - 1] {
            let too_old = self
                .config
                .retention_ms
                .is_some_and(|ms| seg.max_timestamp >= 0 && now - seg.max_timestamp > ms);
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| total.saturating_sub(seg.size) >= limit);
            if !(too_old || too_big) {
                break;
            }
            total -= seg.size;
            doomed += 1;
        }
        if doomed == 0 {
            return Ok(0);
        }
        let gone: Vec<Segment> = state.segments.drain(..doomed).collect();
        state.log_start = state.log_start.max(state.segments[0].base_offset);
        let log_start = state.log_start;
        // Under the lock, so a concurrent delete and re-create of the topic cannot lose
        // files of the new partition to this one's retention.
        for seg in &gone {
            seg.delete_files()
                .map_err(|e| Error::io("deleting", seg.log_path().to_path_buf(), e))?;
        }
        drop(state);
        tracing::info!(topic = %self.topic, partition = self.id, segments = doomed, log_start, "retention deleted segments");
        Ok(doomed)
    }

    /// Writes what a clean restart can reuse: the active segment's indexes and a producer
    /// snapshot at the log end; then fsyncs everything.
    pub(crate) fn close(&self) -> Result<()> {
        {
            let state = self.state.lock();
            let active = state.active();
            active
                .write_indexes()
                .map_err(|e| Error::io("writing indexes of", active.log_path().to_path_buf(), e))?;
            let end = state.log_end();
            let path = ProducerStates::snapshot_path(&self.dir, end);
            std::fs::write(&path, state.producers.encode_snapshot(end))
                .map_err(|e| Error::io("writing snapshot", path, e))?;
        }
        prune_snapshots(&self.dir, 3);
        self.flush().map(|_| ())
    }

    /// Marks the partition deleted (later calls fail with `UnknownTopic`) and removes its
    /// directory.
    pub(crate) fn delete(&self) -> Result<()> {
        let _state = self.state.lock();
        self.deleted
            .store(true, std::sync::atomic::Ordering::Release);
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("deleting", &self.dir, e)),
        }
    }
}

/// Producer and transaction state at `log_end`: the newest readable snapshot at or below the
/// recovery point (everything before it is fsynced, transaction indexes included), then every
/// batch after the snapshot, markers included. Aborted transactions whose marker precedes the
/// snapshot come from the `.txnindex` files; the others from the replay, which also rewrites
/// the indexes of the segments it read. Snapshots past the log end are removed.
fn restore_state(
    dir: &Path,
    segments: &[Segment],
    log_start: i64,
    log_end: i64,
    recovery_point: i64,
) -> Result<(ProducerStates, Vec<AbortedTxn>)> {
    let snapshots =
        offsets_with_extension(dir, "snapshot").map_err(|e| Error::io("listing", dir, e))?;
    let mut restored: Option<(i64, ProducerStates)> = None;
    for &offset in snapshots.iter().rev() {
        let path = ProducerStates::snapshot_path(dir, offset);
        if offset > log_end {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if restored.is_none()
            && offset <= recovery_point.max(log_start)
            && let Some(state) = std::fs::read(&path)
                .ok()
                .and_then(|b| ProducerStates::decode_snapshot(&b, offset))
        {
            restored = Some((offset, state));
        }
    }
    let (from, mut producers) = restored.unwrap_or((log_start, ProducerStates::default()));
    let mut aborted: Vec<AbortedTxn> = segments
        .iter()
        .flat_map(|s| super::txn_index::load(dir, s.base_offset))
        .filter(|a| a.last_offset < from)
        .collect();
    for seg in segments.iter().filter(|s| s.next_offset > from) {
        let replayed = replay_segment(seg, from, &mut producers)?;
        let mut index: Vec<AbortedTxn> = super::txn_index::load(dir, seg.base_offset)
            .into_iter()
            .filter(|a| a.last_offset < from)
            .collect();
        index.extend(replayed.iter().copied());
        super::txn_index::rewrite(dir, seg.base_offset, &index)
            .map_err(|e| Error::io("rewriting the transaction index in", dir, e))?;
        aborted.extend(replayed);
    }
    aborted.sort_by_key(|a| a.last_offset);
    aborted.dedup();
    Ok((producers, aborted))
}

/// Re-applies every batch of `seg` at or after `from` to `producers`; returns the
/// transactions aborted by markers in it.
fn replay_segment(
    seg: &Segment,
    from: i64,
    producers: &mut ProducerStates,
) -> Result<Vec<AbortedTxn>> {
    let view = ReadView {
        file: Arc::clone(seg.file()),
        start: seg.position_hint(from),
        limit: seg.size,
    };
    let io = |e| {
        Error::io(
            "replaying producer state from",
            seg.log_path().to_path_buf(),
            e,
        )
    };
    let mut headers = Vec::new();
    view.find(|h| {
        if h.base_offset >= from {
            headers.push(*h);
        }
        false
    })
    .map_err(io)?;
    let mut aborted = Vec::new();
    for header in headers {
        if !header.is_control() {
            producers.update(&header);
            continue;
        }
        let bytes = view.read_from(header.base_offset, 0).map_err(io)?;
        let kind = RecordBatch::parse(bytes)
            .and_then(|b| crate::txn::control_type(&b))
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let first = producers.complete_txn(header.producer_id, header.producer_epoch);
        if let (ControlType::Abort, Some(first_offset)) = (kind, first) {
            aborted.push(AbortedTxn {
                producer_id: header.producer_id,
                first_offset,
                last_offset: header.base_offset,
            });
        }
    }
    Ok(aborted)
}
