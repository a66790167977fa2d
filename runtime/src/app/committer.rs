//! The committer of a stream thread: its producer (transactional id
//! `<app>-<instance>-<thread>`) and the commit of docs/architecture.md §3.1, top to bottom.
//! Exactly-once: add the input positions to the transaction, send every task's changelog
//! records, flush, commit (the commit point), then apply every overlay to RocksDB in one
//! `WriteBatch` with the changelog checkpoints. At-least-once: flush, apply, then commit the
//! offsets. A failure is returned as it is: the stream thread's one recovery path decides by
//! its class (fenced, migrated, fatal) what happens next.

use std::time::{Duration, Instant};

use sluice_log::ProducerRecord;
use sluice_log::TopicPartition;
use sluice_log::cluster::{Cluster, Delivery, ProducerSpec, TxnProducer};

use super::membership::Membership;
use super::task_manager::TaskManager;
use super::thread::ThreadContext;
use crate::config::{CrashPoint, ProcessingGuarantee};
use crate::error::{Error, Result};
use crate::state::{StoreName, WriteOverlay, changelog_records};

/// A stream thread's producer and what it has not committed yet.
pub(super) struct Committer<C: Cluster> {
    transactional_id: String,
    /// `None` once closed or abandoned.
    producer: Option<C::Producer>,
    eos: bool,
    /// A transaction is open on the producer (exactly-once).
    txn_open: bool,
    /// Something was processed or produced since the last commit.
    dirty: bool,
    /// When the last commit began (or the tasks last started from what is committed).
    last_commit: Instant,
}

/// The producer of a thread: transactional under exactly-once.
fn producer_spec<C: Cluster>(ctx: &ThreadContext<C>, transactional_id: &str) -> ProducerSpec {
    let spec = match ctx.config.processing_guarantee {
        ProcessingGuarantee::ExactlyOnce => ProducerSpec::new(transactional_id),
        ProcessingGuarantee::AtLeastOnce => ProducerSpec::idempotent(transactional_id),
    };
    spec.with_linger(Duration::from_millis(5))
        .with_transaction_timeout(ctx.config.transaction_timeout)
}

impl<C: Cluster> Committer<C> {
    /// A committer with a new producer for `transactional_id`; under exactly-once its
    /// `init_transactions` fences the thread's previous incarnation and ends its open
    /// transaction.
    pub fn new(ctx: &ThreadContext<C>, transactional_id: &str) -> Result<Self> {
        let mut committer = Self {
            transactional_id: transactional_id.to_string(),
            producer: None,
            eos: ctx.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce,
            txn_open: false,
            dirty: false,
            last_commit: Instant::now(),
        };
        committer.renew(ctx)?;
        Ok(committer)
    }

    /// A new producer in place of the current one (abandoned: a fenced producer can do
    /// nothing more): a new epoch, no transaction open, nothing uncommitted, and the next
    /// commit an interval away.
    pub fn renew(&mut self, ctx: &ThreadContext<C>) -> Result<()> {
        if let Some(old) = self.producer.take() {
            old.abandon();
        }
        let mut producer = ctx
            .cluster
            .producer(&producer_spec(ctx, &self.transactional_id))
            .map_err(Error::cluster)?;
        if self.eos {
            producer.init_transactions().map_err(Error::cluster)?;
        }
        self.producer = Some(producer);
        self.txn_open = false;
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    fn producer(&mut self) -> Result<&mut C::Producer> {
        self.producer
            .as_mut()
            .ok_or_else(|| Error::IllegalState("the producer is gone".into()))
    }

    /// Notes that something was processed or produced since the last commit.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether anything is uncommitted: processed work or an open transaction.
    pub fn has_uncommitted(&self) -> bool {
        self.dirty || self.txn_open
    }

    /// Whether something was processed or produced since the last commit.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// How long since the last commit began.
    pub fn since_commit(&self) -> Duration {
        self.last_commit.elapsed()
    }

    /// Sends a task's output, in the transaction (opened first if none is). Failures
    /// surface at the flush in the commit, which then fails.
    pub fn send(&mut self, records: Vec<ProducerRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.ensure_txn()?;
        let producer = self.producer()?;
        for record in records {
            producer.send(record).map_err(Error::cluster)?;
        }
        Ok(())
    }

    /// Opens the transaction if none is open (exactly-once).
    fn ensure_txn(&mut self) -> Result<()> {
        if self.eos && !self.txn_open {
            self.producer()?
                .begin_transaction()
                .map_err(Error::cluster)?;
            self.txn_open = true;
        }
        Ok(())
    }

    /// Commits what was processed since the last commit, if anything. On a fixed cadence:
    /// the next commit is due an interval after this one began, so a record waits at most
    /// one interval plus one commit to become visible.
    pub fn commit(
        &mut self,
        ctx: &ThreadContext<C>,
        tasks: &mut TaskManager,
        member: &mut Membership<C>,
    ) -> Result<()> {
        let started = Instant::now();
        if self.has_uncommitted() {
            self.try_commit(ctx, tasks, member)?;
            ctx.shared.metrics.committed(started.elapsed());
        }
        self.last_commit = started;
        Ok(())
    }

    fn try_commit(
        &mut self,
        ctx: &ThreadContext<C>,
        tasks: &mut TaskManager,
        member: &mut Membership<C>,
    ) -> Result<()> {
        self.ensure_txn()?;
        let phase = Instant::now();
        let name = self.transactional_id.clone();
        let offsets: Vec<(TopicPartition, i64)> = tasks.positions();
        if self.eos {
            // The offsets join the transaction first, while the output records are still in
            // flight, and before the changelog records: their partitions join the
            // transaction only now, and a Kafka coordinator answers CONCURRENT_TRANSACTIONS
            // to an AddOffsetsToTxn that arrives while an AddPartitionsToTxn of the same
            // transaction is being written (librdkafka sends both without waiting for each
            // other, then retries the loser after its backoff, again and again while the
            // other is written). Nothing of the transaction is visible before its commit,
            // whatever the order inside it.
            if !offsets.is_empty() {
                let group = member.metadata()?;
                self.producer()?
                    .send_offsets_to_transaction(&offsets, &group)
                    .map_err(Error::cluster)?;
            }
            ctx.crash_point(CrashPoint::AfterSendOffsets, &name)?;
        }
        let offsets_sent = phase.elapsed();
        let mut last_changelog: Vec<(StoreName, <C::Producer as TxnProducer>::Delivery)> =
            Vec::new();
        {
            let producer = self.producer()?;
            for task in tasks.iter() {
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
        ctx.crash_point(CrashPoint::BeforeFlush, &name)?;
        self.producer()?.flush().map_err(Error::cluster)?;
        let flushed = phase.elapsed();
        ctx.crash_point(CrashPoint::AfterFlush, &name)?;
        if self.eos {
            self.commit_transaction(ctx)?;
            ctx.crash_point(CrashPoint::AfterCommitBeforeApply, &name)?;
        }
        let committed = phase.elapsed();
        let mut checkpoints = Vec::with_capacity(last_changelog.len());
        for (name, delivery) in last_changelog {
            checkpoints.push((name, delivery.offset().map_err(Error::cluster)? + 1));
        }
        let mut overlay = WriteOverlay::default();
        for task in tasks.iter_mut() {
            overlay.merge(task.take_overlay());
        }
        let writes = overlay.len();
        ctx.db.apply(overlay, &checkpoints)?;
        tracing::debug!(
            thread = %self.transactional_id,
            offsets_us = offsets_sent.as_micros() as u64,
            flush_us = (flushed - offsets_sent).as_micros() as u64,
            commit_us = (committed - flushed).as_micros() as u64,
            apply_us = (phase.elapsed() - committed).as_micros() as u64,
            writes,
            "committed"
        );
        if !self.eos && !offsets.is_empty() {
            member.commit_offsets(&offsets)?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Commits the open transaction; with the `AfterPrepareCommit` crash point armed, the
    /// broker stops this EndTxn after PrepareCommit and the instance dies there (on a
    /// cluster that cannot stop it there, the commit completes and the instance dies just
    /// after).
    fn commit_transaction(&mut self, ctx: &ThreadContext<C>) -> Result<()> {
        self.txn_open = false;
        #[cfg(not(feature = "fault-injection"))]
        let _ = ctx;
        #[cfg(feature = "fault-injection")]
        if ctx.crash_wanted(CrashPoint::AfterPrepareCommit) {
            ctx.cluster.arm_txn_fault(Some(&self.transactional_id));
            let result = self.producer()?.commit_transaction();
            ctx.cluster.arm_txn_fault(None);
            tracing::warn!(?result, "injected crash after PrepareCommit");
            ctx.shared.crash();
            return Err(Error::Crashed {
                at: Some(CrashPoint::AfterPrepareCommit),
            });
        }
        self.producer()?
            .commit_transaction()
            .map_err(Error::cluster)?;
        Ok(())
    }

    /// Aborts the open transaction and forgets what was processed since the last commit
    /// (the tasks still hold it: the caller starts them again). A failed abort leaves the
    /// producer's transaction in an unknown state: the error stops the thread, and the
    /// broker times the transaction out.
    pub fn abort(&mut self, ctx: &ThreadContext<C>) -> Result<()> {
        self.dirty = false;
        ctx.shared.metrics.aborted();
        if self.txn_open {
            self.txn_open = false;
            self.producer()?
                .abort_transaction()
                .map_err(Error::cluster)?;
        }
        Ok(())
    }

    /// Drops the producer as a killed process would: nothing flushed, aborted or closed.
    pub fn abandon(&mut self) {
        if let Some(producer) = self.producer.take() {
            producer.abandon();
        }
    }

    /// Closes the producer cleanly.
    pub fn close(&mut self) {
        if let Some(producer) = self.producer.take()
            && let Err(e) = producer.close()
        {
            tracing::warn!(error = %e, "closing the producer failed");
        }
    }
}
