//! Group commit, and the one door every fsync of a partition goes through.
//!
//! An acknowledgement that needs its data on disk (acks=all under the `commit` policy) waits
//! for an fsync that covers it, and every append waiting on a partition shares one. The first
//! waiter to find no fsync running becomes the syncer: it fsyncs everything written so far
//! (the log end at that moment) and wakes the rest. A waiter whose data was written after
//! that fsync began waits for the next one, which covers all who arrived meanwhile. So under
//! load a partition pays one fsync per round, not one per batch.
//!
//! Every other fsync of the partition (an explicit flush, the maintenance thread's sync of
//! sealed segments, `fsync = interval`) runs through the same gate, one at a time. So no
//! fsync can still be running on a sealed segment while another one declares the log
//! durable up to the log end.
//!
//! A failed fsync is final for the partition until the broker restarts (Kafka takes the log
//! directory offline). On Linux the error is reported once and the dirty pages are dropped,
//! so a second fsync would "succeed" over lost data: after a failure the durable offset never
//! moves again, every waiter not already covered gets [`Error::StorageFailed`], and reads
//! and appends are refused with it. The sealed segments of the failed fsync are put back on the unsynced
//! list, so nothing is ever counted as synced that was not.
//!
//! Crash semantics are unchanged: an append is acknowledged only once an fsync that started
//! after it was written has completed.

use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::partition::Partition;
use crate::error::{Error, Result};

/// Whether an fsync of the partition is running, whether one has failed, and the wake-up for
/// those waiting.
#[derive(Debug, Default)]
pub(crate) struct SyncGate {
    state: Mutex<GateState>,
    done: Condvar,
    /// Why the first failed fsync failed; set once, never cleared. Read without a lock, so
    /// any path may check it whatever locks it holds.
    failed: OnceLock<String>,
}

#[derive(Debug, Default)]
struct GateState {
    syncing: bool,
}

impl Partition {
    /// Returns once every offset below `up_to` is durable, fsyncing (or waiting for the
    /// fsync in progress and then, if it did not cover `up_to`, the next one).
    pub fn sync_up_to(&self, up_to: i64) -> Result<()> {
        let mut gate = self.sync_gate.state.lock();
        loop {
            if self.durable_through(up_to) {
                return Ok(());
            }
            self.fsync_failed()?;
            if !gate.syncing {
                break;
            }
            self.sync_gate.done.wait(&mut gate);
        }
        self.run_sync(gate, || self.sync_written()).map(|_| ())
    }

    /// Whether every offset below `up_to` is durable now.
    pub(crate) fn durable_through(&self, up_to: i64) -> bool {
        self.state.lock().durable_offset >= up_to
    }

    /// Runs `sync` as the partition's only fsync at that moment: waits for one in progress
    /// to end first. Refused once an fsync has failed.
    pub(super) fn exclusive_sync<T>(&self, sync: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut gate = self.sync_gate.state.lock();
        while gate.syncing {
            self.sync_gate.done.wait(&mut gate);
        }
        self.fsync_failed()?;
        self.run_sync(gate, sync)
    }

    /// [`Error::StorageFailed`] once an fsync of this partition has failed (it then refuses
    /// writes, reads and syncs). Takes no lock.
    pub(super) fn fsync_failed(&self) -> Result<()> {
        match self.sync_gate.failed.get() {
            Some(reason) => Err(Error::StorageFailed {
                topic: self.topic.clone(),
                partition: self.id,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks the gate busy, runs `sync` without holding the gate's lock, then frees it,
    /// recording a failure for good, and wakes everyone waiting.
    fn run_sync<T>(
        &self,
        mut gate: MutexGuard<'_, GateState>,
        sync: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        gate.syncing = true;
        drop(gate);
        let result = sync();
        if let Err(e) = &result
            && self.sync_gate.failed.set(e.to_string()).is_ok()
        {
            tracing::error!(
                topic = %self.topic,
                partition = self.id,
                error = %e,
                "fsync failed: the partition refuses writes until the broker restarts"
            );
        }
        self.sync_gate.state.lock().syncing = false;
        self.sync_gate.done.notify_all();
        result
    }

    /// fsyncs everything written so far (sealed segments and the active one); returns the
    /// offset below which all is now durable. Call only through the gate.
    pub(super) fn sync_written(&self) -> Result<i64> {
        let mut state = self.state.lock();
        let target = state.log_end();
        let file = Arc::clone(state.active().file());
        let unsynced = std::mem::take(&mut state.unsynced);
        drop(state);
        self.sync_files(unsynced, Some(&file), target)?;
        Ok(target)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on what it did not expect
mod tests {
    use std::sync::atomic::Ordering;

    use crate::broker::Acks;
    use crate::error::Error;
    use crate::storage::test_support::{batch, commit_partition as partition};

    #[test]
    fn a_failed_fsync_is_final_and_nothing_after_it_counts_as_durable() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), 1 << 20);
        let (first, wait) = p.append_deferred(batch(b"a"), Acks::All).unwrap();
        p.sync_up_to(wait.unwrap()).unwrap();
        assert_eq!(p.info().durable_offset, first.last_offset + 1);

        let (_, wait) = p.append_deferred(batch(b"b"), Acks::All).unwrap();
        p.fail_next_fsync.store(true, Ordering::Release);
        let failed = p.sync_up_to(wait.unwrap());
        assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
        // Linux reports an fsync error once: a retry would succeed over lost pages. It must
        // not be tried, and the durable offset must stay where the last good fsync left it.
        let retried = p.sync_up_to(wait.unwrap());
        assert!(
            matches!(retried, Err(Error::StorageFailed { .. })),
            "{retried:?}"
        );
        assert!(matches!(p.flush(), Err(Error::StorageFailed { .. })));
        assert_eq!(p.info().durable_offset, first.last_offset + 1);
        // What the good fsync covered is still acknowledged; new writes and reads are refused.
        p.sync_up_to(first.last_offset + 1).unwrap();
        let append = p.append(batch(b"c"), Acks::Leader);
        assert!(
            matches!(append, Err(Error::StorageFailed { .. })),
            "{append:?}"
        );
        assert!(p.read(0, 1 << 20, Default::default()).is_err());
        // The maintenance thread leaves the failed partition alone rather than failing again.
        p.flush_if_due(i64::MAX).unwrap();
    }

    #[test]
    fn waiters_sharing_a_failed_fsync_all_get_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), 1 << 20);
        let mut waits = Vec::new();
        for i in 0..8u8 {
            waits.push(
                p.append_deferred(batch(&[i]), Acks::All)
                    .unwrap()
                    .1
                    .unwrap(),
            );
        }
        p.fail_next_fsync.store(true, Ordering::Release);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = waits
                .iter()
                .map(|&up_to| {
                    let p = &p;
                    s.spawn(move || p.sync_up_to(up_to))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(|r| r.is_err()), "{results:?}");
        assert_eq!(p.info().durable_offset, 0);
    }

    #[test]
    fn sealed_segments_of_a_failed_fsync_stay_unsynced() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: every append rolls, so the fsync covers sealed segments too.
        let p = partition(dir.path(), 1);
        for i in 0..4u8 {
            p.append_deferred(batch(&[i; 64]), Acks::Leader).unwrap();
        }
        let sealed = p.state.lock().unsynced.len();
        assert!(sealed > 0);
        p.fail_next_fsync.store(true, Ordering::Release);
        assert!(p.flush().is_err());
        assert_eq!(p.state.lock().unsynced.len(), sealed);
    }
}
