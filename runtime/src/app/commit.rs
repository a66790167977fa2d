//! The commit of a stream thread, docs/architecture.md §3.1 step by step. Exactly-once: send every
//! task's changelog records, flush, add the input positions to the transaction, commit
//! (the commit point), then apply every overlay to RocksDB in one `WriteBatch` with the
//! changelog checkpoints. At-least-once: flush, apply, then commit the offsets. A commit the
//! group refuses (the generation moved on: these tasks may belong to another member now)
//! is aborted, and the thread rejoins and starts again from what is committed.

use std::collections::BTreeSet;
use std::time::Instant;

use sluice_log::TopicPartition;
use sluice_log::cluster::{Cluster, Delivery, GroupMember, TxnProducer};

use super::thread::StreamThread;
use crate::config::CrashPoint;
use crate::error::{Error, ErrorClass, Result};
use crate::state::{StoreName, WriteOverlay, changelog_records};
use crate::task::TaskId;

impl<C: Cluster> StreamThread<C> {
    /// Commits what was processed since the last commit, if anything.
    pub fn commit(&mut self) -> Result<()> {
        if !self.dirty && !self.txn_open {
            self.last_commit = Instant::now();
            return Ok(());
        }
        let started = Instant::now();
        match self.try_commit() {
            Ok(()) => {
                self.ctx.shared.metrics.committed(started.elapsed());
            }
            Err(e) if e.class() == ErrorClass::Migrated => {
                tracing::info!(error = %e, thread = %self.transactional_id, "commit refused: the group moved on; aborting and rejoining");
                self.abort()?;
                if !self.ctx.shared.shutdown_requested() {
                    // Follow the group first: a new assignment re-creates every task. If
                    // the generation did not move (heartbeats paused: a zombie), start the
                    // tasks again from what is committed.
                    if !self.heartbeat()? {
                        let wanted: BTreeSet<TaskId> = self.tasks.keys().copied().collect();
                        self.set_tasks(wanted, true)?;
                    }
                }
            }
            Err(e) => return Err(e),
        }
        // A fixed cadence: the next commit is due an interval after this one began, so a
        // record waits at most one interval plus one commit to become visible.
        self.last_commit = started;
        Ok(())
    }

    fn try_commit(&mut self) -> Result<()> {
        let eos = self.eos();
        if eos {
            self.ensure_txn()?;
        }
        let mut last_changelog: Vec<(StoreName, <C::Producer as TxnProducer>::Delivery)> =
            Vec::new();
        {
            let producer = self
                .producer
                .as_mut()
                .ok_or_else(|| Error::IllegalState("the producer is gone".into()))?;
            for task in self.tasks.values() {
                for (name, topic) in &task.changelogs {
                    let mut records = changelog_records(&task.core.overlay, name, topic);
                    // Only the last record's offset is needed: it becomes the checkpoint.
                    let Some(last) = records.pop() else { continue };
                    for record in records {
                        producer.send(record).map_err(Error::cluster)?;
                    }
                    let delivery = producer.send_tracked(last).map_err(Error::cluster)?;
                    last_changelog.push((name.clone(), delivery));
                }
            }
        }
        let phase = Instant::now();
        self.crash_point(CrashPoint::BeforeFlush)?;
        self.producer()?.flush().map_err(Error::cluster)?;
        let flushed = phase.elapsed();
        self.crash_point(CrashPoint::AfterFlush)?;
        let offsets: Vec<(TopicPartition, i64)> = self
            .tasks
            .values()
            .flat_map(|t| t.positions.iter().map(|(tp, o)| (tp.clone(), *o)))
            .collect();
        if eos {
            if !offsets.is_empty() {
                let group = self.member()?.metadata().map_err(Error::cluster)?;
                self.producer()?
                    .send_offsets_to_transaction(&offsets, &group)
                    .map_err(Error::cluster)?;
            }
            self.crash_point(CrashPoint::AfterSendOffsets)?;
            self.commit_transaction()?;
            self.crash_point(CrashPoint::AfterCommitBeforeApply)?;
        }
        let committed = phase.elapsed();
        let mut checkpoints = Vec::with_capacity(last_changelog.len());
        for (name, delivery) in last_changelog {
            checkpoints.push((name, delivery.offset().map_err(Error::cluster)? + 1));
        }
        let mut overlay = WriteOverlay::default();
        for task in self.tasks.values_mut() {
            overlay.merge(task.take_overlay());
        }
        let writes = overlay.len();
        self.ctx.db.apply(overlay, &checkpoints)?;
        tracing::debug!(
            thread = %self.transactional_id,
            flush_us = flushed.as_micros() as u64,
            commit_us = (committed - flushed).as_micros() as u64,
            apply_us = (phase.elapsed() - committed).as_micros() as u64,
            writes,
            "committed"
        );
        if !eos && !offsets.is_empty() {
            self.member()?
                .commit_offsets(&offsets)
                .map_err(Error::cluster)?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Commits the open transaction; with the `AfterPrepareCommit` crash point armed, the
    /// broker stops this EndTxn after PrepareCommit and the instance dies there (on a
    /// cluster that cannot stop it there, the commit completes and the instance dies just
    /// after).
    fn commit_transaction(&mut self) -> Result<()> {
        self.txn_open = false;
        let crash_here = self
            .ctx
            .config
            .crash_hook
            .as_ref()
            .is_some_and(|hook| hook(CrashPoint::AfterPrepareCommit));
        if crash_here {
            self.ctx.cluster.arm_txn_fault(Some(&self.transactional_id));
            let result = self.producer()?.commit_transaction();
            self.ctx.cluster.arm_txn_fault(None);
            tracing::warn!(?result, "injected crash after PrepareCommit");
            self.ctx.shared.crash();
            return Err(Error::Crashed {
                at: Some(CrashPoint::AfterPrepareCommit),
            });
        }
        self.producer()?
            .commit_transaction()
            .map_err(Error::cluster)?;
        Ok(())
    }
}
