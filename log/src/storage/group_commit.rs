//! Group commit: an acknowledgement that needs its data on disk (acks=all under the `commit`
//! policy) waits for an fsync that covers it, and every append waiting on a partition shares
//! one. The first waiter to find no fsync running becomes the syncer: it fsyncs everything
//! written so far (the log end at that moment) and wakes the rest. A waiter whose data was
//! written after that fsync began waits for the next one, which covers all who arrived
//! meanwhile. So under load a partition pays one fsync per round, not one per batch.
//!
//! Crash semantics are unchanged: an append is acknowledged only once an fsync that started
//! after it was written has completed.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::partition::Partition;
use crate::error::Result;

/// Whether an fsync of the partition is running, and the wake-up for its waiters.
#[derive(Debug, Default)]
pub(crate) struct SyncGate {
    syncing: Mutex<bool>,
    done: Condvar,
}

impl Partition {
    /// Returns once every offset below `up_to` is durable, fsyncing (or waiting for the
    /// fsync in progress and then, if it did not cover `up_to`, the next one).
    pub fn sync_up_to(&self, up_to: i64) -> Result<()> {
        let mut syncing = self.sync_gate.syncing.lock();
        loop {
            if self.state.lock().durable_offset >= up_to {
                return Ok(());
            }
            if !*syncing {
                break;
            }
            self.sync_gate.done.wait(&mut syncing);
        }
        *syncing = true;
        drop(syncing);
        let result = self.sync_written();
        *self.sync_gate.syncing.lock() = false;
        self.sync_gate.done.notify_all();
        result
    }

    /// fsyncs everything written so far (sealed segments and the active one).
    fn sync_written(&self) -> Result<()> {
        let mut state = self.state.lock();
        let target = state.log_end();
        let file = Arc::clone(state.active().file());
        let unsynced = std::mem::take(&mut state.unsynced);
        drop(state);
        self.sync_files(unsynced, Some(&file), target)
    }
}
