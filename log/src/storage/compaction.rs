//! Log compaction for `cleanup = compact` topics (docs/architecture.md §2.7): the newest record of every key
//! is kept, tombstones go once `delete_retention_ms` has passed, and the data and abort
//! markers of aborted transactions are removed.
//!
//! What may be cleaned: the sealed segments from the log start up to the first one that
//! reaches the last stable offset (so every transaction there is decided) or the recovery
//! point (so it is fsynced and recovery trusts it, gaps included). The active segment never.
//!
//! A pass first maps every key to its newest offset over the whole cleanable range, skipping
//! aborted transactions and control batches; then rewrites each segment, oldest first.
//! A record stays iff it has no key, or it is its key's newest and not an expired
//! tombstone. A transactional batch in an aborted transaction loses all its records. An
//! abort marker goes too once its whole transaction lies in the log (none of it was before
//! the log start), since its data is gone; commit markers stay (a
//! transactional batch whose marker vanished would read as an open transaction on replay).
//! Rebuilt batches keep their base offset, last offset delta, producer fields and
//! attributes, and each record keeps its offset, so offsets inside a batch may have gaps. A
//! batch left empty is dropped, except that the last batch of a segment stays as an empty
//! batch (so the segment still ends where the next begins) and so does each producer's last
//! surviving batch (so a replay of the log rebuilds its sequence state, as Kafka does).
//!
//! A pass remembers (in memory) where its range ended and when the first tombstone it kept
//! expires; the next pass is skipped until the range grows or that time comes, since it
//! would find nothing to remove.
//!
//! Deciding and writing each segment's new version is in `compaction_rewrite.rs`.
//!
//! The swap: the new segment is written to `<base>.cleaned` and fsynced; then, under the
//! partition lock, producer snapshots below the cleaned range (which could describe an
//! aborted transaction as open after its marker is gone) and the segment's index files are
//! removed, the directory fsynced, the file renamed over `<base>.log`, the directory fsynced
//! again and the in-memory segment replaced. A crash leaves the old or the new file whole
//! (open deletes leftover `.cleaned` files and rebuilds missing indexes); readers holding the
//! old file keep reading it.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustc_hash::FxHashMap;

use super::partition::Partition;
use super::partition_open::{offsets_with_extension, read_recovery_point};
use super::producer_state::ProducerStates;
use super::segment::Segment;
use crate::batch::BatchHeader;
use crate::error::{Error, Result};
use crate::txn::AbortedTxn;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments replaced by a cleaned version.
    pub segments_rewritten: usize,
    /// Records (transaction markers included) removed.
    pub records_removed: u64,
    /// Bytes of the rewritten segments before the pass.
    pub bytes_before: u64,
    /// Bytes of the same segments after it.
    pub bytes_after: u64,
}

/// What the last successful pass over a partition left: nothing changes until the cleanable
/// range grows past `end` or the clock reaches `next_expiry`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checkpoint {
    end: i64,
    next_expiry: i64,
}

/// The running totals of a pass.
pub(super) struct Pass {
    pub(super) stats: CompactionStats,
    /// When the first tombstone kept by this pass expires.
    pub(super) next_expiry: i64,
}

/// A sealed segment of the cleanable range, as taken under the partition lock.
pub(super) struct Cleanable {
    pub(super) base: i64,
    pub(super) next: i64,
    pub(super) size: u64,
    pub(super) file: Arc<File>,
}

/// What a pass works from, taken under the partition lock.
pub(super) struct Plan {
    pub(super) segments: Vec<Cleanable>,
    pub(super) log_start: i64,
    /// The offset after the cleanable range.
    pub(super) end: i64,
    /// Aborted transactions by producer id.
    pub(super) aborted: FxHashMap<i64, Vec<AbortedTxn>>,
}

impl Plan {
    pub(super) fn is_aborted(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && self.aborted.get(&header.producer_id).is_some_and(|txns| {
                txns.iter().any(|a| {
                    a.first_offset <= header.base_offset && header.base_offset <= a.last_offset
                })
            })
    }
}

/// Newest offset per key, and last batch (its last offset) per producer, over the range.
#[derive(Default)]
pub(super) struct OffsetMap {
    pub(super) newest: FxHashMap<Box<[u8]>, i64>,
    pub(super) producer_last: FxHashMap<i64, i64>,
}

impl Partition {
    /// Compacts the cleanable range (see the module doc) as of `now_ms`, which decides
    /// which tombstones have expired. Runs on any topic when called; the broker calls it for
    /// `cleanup = compact` topics only. Two calls on one partition do not overlap.
    pub fn compact(&self, now_ms: i64) -> Result<CompactionStats> {
        let mut checkpoint = self.cleaner.lock();
        let Some(plan) = self.plan() else {
            return Ok(CompactionStats::default());
        };
        if checkpoint.is_some_and(|c| c.end == plan.end && now_ms < c.next_expiry) {
            return Ok(CompactionStats::default());
        }
        match self.compact_range(&plan, now_ms) {
            Ok(pass) => {
                *checkpoint = Some(Checkpoint {
                    end: plan.end,
                    next_expiry: pass.next_expiry,
                });
                Ok(pass.stats)
            }
            // The partition was deleted under the pass (its directory is gone).
            Err(_) if self.deleted.load(Ordering::Acquire) => Ok(CompactionStats::default()),
            Err(e) => {
                *checkpoint = None;
                Err(e)
            }
        }
    }

    fn compact_range(&self, plan: &Plan, now_ms: i64) -> Result<Pass> {
        let mut pass = Pass {
            stats: CompactionStats::default(),
            next_expiry: i64::MAX,
        };
        let map = self.build_offset_map(plan)?;
        let mut snapshots_pruned = false;
        for seg in &plan.segments {
            let Some(cleaned) = self.clean_segment(plan, seg, &map, now_ms, &mut pass)? else {
                continue;
            };
            let after = cleaned.size;
            if !self.install(plan, seg, cleaned, &mut snapshots_pruned)? {
                if self.deleted.load(Ordering::Acquire) {
                    break;
                }
                continue;
            }
            pass.stats.segments_rewritten += 1;
            pass.stats.bytes_before += seg.size;
            pass.stats.bytes_after += after;
        }
        let stats = pass.stats;
        if stats.segments_rewritten > 0 {
            tracing::info!(topic = %self.topic, partition = self.id, segments = stats.segments_rewritten,
                records_removed = stats.records_removed, bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after, cleaned_up_to = plan.end, "compacted");
        }
        Ok(pass)
    }

    /// The cleanable segments, or `None` when there are none (or the partition is deleted).
    fn plan(&self) -> Option<Plan> {
        // Read before the lock: the recovery point only grows, so this is a safe bound.
        let recovery_point = read_recovery_point(&self.dir);
        let state = self.state.lock();
        if self.deleted.load(Ordering::Acquire) {
            return None;
        }
        let limit = state.last_stable_offset().min(recovery_point);
        let sealed = &state.segments[..state.segments.len() - 1];
        let segments: Vec<Cleanable> = sealed
            .iter()
            .take_while(|s| s.next_offset <= limit)
            .map(|s| Cleanable {
                base: s.base_offset,
                next: s.next_offset,
                size: s.size,
                file: Arc::clone(s.file()),
            })
            .collect();
        let end = segments.last()?.next;
        let mut aborted: FxHashMap<i64, Vec<AbortedTxn>> = FxHashMap::default();
        for a in state.aborted.iter().filter(|a| a.first_offset < end) {
            aborted.entry(a.producer_id).or_default().push(*a);
        }
        Some(Plan {
            segments,
            log_start: state.log_start,
            end,
            aborted,
        })
    }

    /// Maps every key of the range to its newest committed offset, and every producer to
    /// the last offset of its last batch that is not aborted.
    fn build_offset_map(&self, plan: &Plan) -> Result<OffsetMap> {
        let mut map = OffsetMap::default();
        for seg in &plan.segments {
            self.for_each_batch(seg, |_, batch, _| {
                let header = *batch.header();
                if header.is_control() || plan.is_aborted(&header) {
                    return Ok(());
                }
                if header.has_producer_id() {
                    map.producer_last
                        .insert(header.producer_id, header.last_offset());
                }
                let records = batch
                    .records()
                    .map_err(|e| self.invalid(header.base_offset, e))?;
                for record in records {
                    let record = record.map_err(|e| self.invalid(header.base_offset, e))?;
                    let Some(key) = record.key else { continue };
                    match map.newest.get_mut(&key[..]) {
                        Some(offset) => *offset = record.offset,
                        None => {
                            map.newest.insert(Box::from(&key[..]), record.offset);
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(map)
    }

    /// Swaps the cleaned segment in (module doc). Returns false, installing nothing, when
    /// the partition has been deleted or the segment is no longer there.
    fn install(
        &self,
        plan: &Plan,
        seg: &Cleanable,
        mut cleaned: Segment,
        snapshots_pruned: &mut bool,
    ) -> Result<bool> {
        let io = |action| move |e| Error::io(action, &self.dir, e);
        // Under the lock: a concurrent delete (and re-create) of the topic must not see its
        // files touched by this pass.
        let mut state = self.state.lock();
        if self.deleted.load(Ordering::Acquire) {
            return Ok(false);
        }
        let Some(index) = state
            .segments
            .iter()
            .position(|s| s.base_offset == seg.base && s.next_offset == seg.next)
        else {
            let _ = std::fs::remove_file(cleaned.log_path());
            return Ok(false);
        };
        if !*snapshots_pruned {
            let snapshots = offsets_with_extension(&self.dir, "snapshot").map_err(io("listing"))?;
            for offset in snapshots.into_iter().filter(|&o| o < plan.end) {
                let path = ProducerStates::snapshot_path(&self.dir, offset);
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::io("removing", path, e));
                    }
                    _ => {}
                }
            }
            *snapshots_pruned = true;
        }
        Segment::remove_index_files(&self.dir, seg.base).map_err(io("removing indexes in"))?;
        sync_dir(&self.dir).map_err(io("fsyncing"))?;
        cleaned
            .install_cleaned()
            .map_err(io("renaming a cleaned segment in"))?;
        // The new file is in place: the in-memory segment must follow whatever comes next.
        state.segments[index] = cleaned;
        sync_dir(&self.dir).map_err(io("fsyncing"))?;
        let installed = &state.segments[index];
        installed
            .write_indexes()
            .map_err(|e| Error::io("writing indexes of", installed.log_path().to_path_buf(), e))?;
        Ok(true)
    }
}

fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
