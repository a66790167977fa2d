//! A stream thread (docs/architecture.md §3): one member of the application's group, one read_committed
//! consumer over its tasks' input partitions, one transactional producer
//! (`<app>-<instance>-<thread>`), and the tasks of its assignment. The group assigns the
//! partitions of each sub-topology's lead topic; partition p of it stands for task
//! `sub_p`, which reads partition p of every (co-partitioned) source topic of the
//! sub-topology. The loop: poll, process, punctuate, and every `commit_interval` commit
//! (commit.rs) and heartbeat. A new assignment closes revoked tasks, and creates new ones
//! once the offsets they start from are stable and their stores are restored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_log::cluster::{
    Cluster, ClusterConsumer, ConsumerSpec, GroupMember, GroupSpec, ProducerSpec, TxnProducer,
};
use sluice_log::{OffsetReset, TopicPartition};

use super::setup::TopicPlan;
use super::shared::{Shared, ThreadState};
use crate::config::{AppConfig, CrashPoint, ProcessingGuarantee};
use crate::error::{Error, ErrorClass, Result};
use crate::processor::processor_failed;
use crate::state::StateDb;
use crate::task::{Task, TaskId};
use crate::topology::Topology;

/// What every thread of an instance shares.
pub(crate) struct ThreadContext<C: Cluster> {
    pub application_id: Arc<str>,
    pub instance_id: String,
    pub topology: Arc<Topology>,
    pub config: AppConfig,
    pub db: StateDb,
    pub cluster: C,
    pub plan: TopicPlan,
    pub shared: Arc<Shared>,
    /// Which thread has each task open: a task moving between two threads of this
    /// instance opens only after the other thread has closed it (it may still be between
    /// a commit and its RocksDB apply).
    pub task_owners: parking_lot::Mutex<HashMap<TaskId, usize>>,
}

/// The thread's body: runs until shutdown, failure or an injected crash.
pub(crate) fn run<C: Cluster>(ctx: Arc<ThreadContext<C>>, index: usize) {
    ctx.shared.set_thread(index, ThreadState::Rebalancing);
    // User code runs in many places (factories, init, close, listeners); a panic anywhere
    // must stop the app in Error, never leave a thread silently gone.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        match StreamThread::start(ctx.clone(), index) {
            Ok(mut thread) => {
                let result = thread.run_loop();
                thread.stop(result)
            }
            Err(e) => Err(e),
        }
    }))
    .unwrap_or_else(|panic| {
        ctx.task_owners.lock().retain(|_, owner| *owner != index);
        Err(Error::IllegalState(format!(
            "stream thread {index} panicked outside a task: {}",
            panic_text(&panic)
        )))
    });
    match outcome {
        Ok(()) | Err(Error::Crashed { .. }) => {}
        Err(e) => ctx.shared.fail(e),
    }
    ctx.shared.shutdown_done(index);
    ctx.shared.set_thread(index, ThreadState::Stopped);
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

/// The group membership of a thread: the application id, one co-partitioned set per
/// sub-topology, its lead topic first.
fn group_spec<C: Cluster>(ctx: &ThreadContext<C>, transactional_id: &str) -> GroupSpec {
    let sets = ctx
        .topology
        .sub_topologies()
        .iter()
        .zip(&ctx.plan.lead_topics)
        .map(|(sub, lead)| {
            std::iter::once(lead.clone())
                .chain(sub.source_topics.iter().filter(|t| *t != lead).cloned())
                .collect()
        })
        .collect();
    let mut spec = GroupSpec::new(ctx.application_id.to_string(), sets)
        .with_session_timeout(ctx.config.session_timeout);
    spec.client_id = transactional_id.to_string();
    spec
}

/// A panic payload as text.
pub(super) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into())
}

pub(super) struct StreamThread<C: Cluster> {
    pub ctx: Arc<ThreadContext<C>>,
    pub index: usize,
    pub transactional_id: String,
    pub producer: Option<C::Producer>,
    pub consumer: C::Consumer,
    /// The group member; `None` once the group is left.
    pub member: Option<C::Member>,
    pub tasks: BTreeMap<TaskId, Task>,
    /// Assigned tasks still open in another thread of this instance.
    pub pending: BTreeSet<TaskId>,
    /// Input partition (topic, partition) -> its task.
    pub routes: HashMap<(Arc<str>, i32), TaskId>,
    /// A transaction is open on the producer (exactly-once).
    pub txn_open: bool,
    /// Something was processed or produced since the last commit.
    pub dirty: bool,
    /// The tasks hold work of an aborted or fenced transaction: they start again from what
    /// is committed at the next assignment (none of them is kept).
    pub stale: bool,
    pub last_commit: Instant,
    pub last_heartbeat: Instant,
    /// Since when each task has waited for a drained, caught-up input (`max_task_idle`).
    pub idle_since: HashMap<TaskId, Instant>,
}

impl<C: Cluster> StreamThread<C> {
    fn start(ctx: Arc<ThreadContext<C>>, index: usize) -> Result<Self> {
        let transactional_id = format!("{}-{}-{index}", ctx.application_id, ctx.instance_id);
        let eos = ctx.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        let mut producer = ctx
            .cluster
            .producer(&producer_spec(&ctx, &transactional_id))
            .map_err(Error::cluster)?;
        if eos {
            // Fences this thread's previous incarnation and ends its open transaction.
            producer.init_transactions().map_err(Error::cluster)?;
        }
        let consumer_spec = ConsumerSpec::read_committed(transactional_id.clone())
            .with_reset(OffsetReset::Earliest)
            .with_max_poll_records(ctx.config.max_poll_records);
        let consumer = ctx
            .cluster
            .consumer(&consumer_spec)
            .map_err(Error::cluster)?;
        let member = ctx
            .cluster
            .member(&group_spec(&ctx, &transactional_id))
            .map_err(Error::cluster)?;
        let mut thread = Self {
            ctx,
            index,
            transactional_id,
            producer: Some(producer),
            consumer,
            member: Some(member),
            tasks: BTreeMap::new(),
            pending: BTreeSet::new(),
            routes: HashMap::new(),
            txn_open: false,
            dirty: false,
            stale: false,
            last_commit: Instant::now(),
            last_heartbeat: Instant::now(),
            idle_since: HashMap::new(),
        };
        thread.join_group()?;
        Ok(thread)
    }

    fn producer_spec(&self) -> ProducerSpec {
        producer_spec(&self.ctx, &self.transactional_id)
    }

    pub fn eos(&self) -> bool {
        self.ctx.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }

    pub fn producer(&mut self) -> Result<&mut C::Producer> {
        self.producer
            .as_mut()
            .ok_or_else(|| Error::IllegalState("the producer is gone".into()))
    }

    pub fn member(&mut self) -> Result<&mut C::Member> {
        self.member
            .as_mut()
            .ok_or_else(|| Error::IllegalState("the thread has left its group".into()))
    }

    /// Asks the crash hook about `point`; on yes the whole instance stops dead.
    pub fn crash_point(&self, point: CrashPoint) -> Result<()> {
        if let Some(hook) = &self.ctx.config.crash_hook
            && hook(point)
        {
            tracing::warn!(?point, thread = %self.transactional_id, "injected crash");
            self.ctx.shared.crash();
            return Err(Error::Crashed { at: Some(point) });
        }
        Ok(())
    }

    fn run_loop(&mut self) -> Result<()> {
        let interval = self.ctx.config.effective_commit_interval();
        loop {
            if self.ctx.shared.crashed() {
                return Err(Error::Crashed { at: None });
            }
            if self.ctx.shared.shutdown_requested() {
                return Ok(());
            }
            match self.step(interval) {
                Err(e) if e.class() == ErrorClass::Fenced => self.recover_fenced(&e)?,
                other => other?,
            }
        }
    }

    /// One round: open waiting tasks, poll, process, punctuate, and commit when due.
    fn step(&mut self, interval: Duration) -> Result<()> {
        if !self.pending.is_empty() {
            // Opening (and restoring) a task can take long: commit what is in flight
            // first, so no transaction stays open meanwhile.
            self.commit()?;
            self.open_pending()?;
        }
        let idle = self.tasks.values().all(|t| t.queued() == 0);
        // Idle, wait for input, but never past the next commit.
        let timeout = if idle {
            interval
                .saturating_sub(self.last_commit.elapsed())
                .min(Duration::from_millis(10))
        } else {
            Duration::ZERO
        };
        for record in self.consumer.poll(timeout).map_err(Error::cluster)? {
            let route = self.routes.get(&(record.topic.clone(), record.partition));
            if let Some(task) = route.and_then(|id| self.tasks.get_mut(id)) {
                task.enqueue(record);
            }
        }
        self.process()?;
        self.punctuate_wall_clock()?;
        if self.last_commit.elapsed() >= interval {
            self.skip_markers()?;
            self.commit()?;
            self.heartbeat()?;
        } else if self.last_heartbeat.elapsed() >= self.ctx.config.heartbeat_interval && !self.dirty
        {
            self.heartbeat()?;
        }
        Ok(())
    }

    /// The broker fenced this thread's producer: its transaction outlived the transaction
    /// timeout (a stall), and the broker aborted it. Everything since the last commit is
    /// gone with it; as Kafka Streams does, take a new producer epoch, then start every
    /// task again from what is committed.
    fn recover_fenced(&mut self, error: &Error) -> Result<()> {
        tracing::warn!(%error, thread = %self.transactional_id, "producer fenced (transaction timed out?); re-initialising and starting the tasks again from what is committed");
        if let Some(old) = self.producer.take() {
            old.abandon();
        }
        let mut producer = self
            .ctx
            .cluster
            .producer(&self.producer_spec())
            .map_err(Error::cluster)?;
        producer.init_transactions().map_err(Error::cluster)?;
        self.producer = Some(producer);
        self.txn_open = false;
        self.dirty = false;
        self.stale = true;
        // The next commit is an interval away, as after any commit: nothing is processed
        // yet from the positions the tasks restart at.
        self.last_commit = Instant::now();
        self.ctx.shared.metrics.aborted();
        if !self.heartbeat()? {
            let wanted: BTreeSet<TaskId> = self.tasks.keys().copied().collect();
            self.set_tasks(wanted, true)?;
        }
        Ok(())
    }

    fn process(&mut self) -> Result<()> {
        let handler = self.ctx.config.deserialization_handler.clone();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        let mut count = 0;
        for id in ids {
            while self.ready(id) {
                let Some(task) = self.tasks.get_mut(&id) else {
                    break;
                };
                let outcome =
                    std::panic::catch_unwind(AssertUnwindSafe(|| task.process_next(&handler)));
                let processed = match outcome {
                    Ok(result) => result?,
                    Err(panic) => return Err(panicked(task, panic)),
                };
                if !processed {
                    break;
                }
                self.dirty = true;
                count += 1;
                if task.core.dropped > 0 {
                    self.ctx
                        .shared
                        .metrics
                        .dropped(std::mem::take(&mut task.core.dropped));
                }
                self.send_output(id)?;
            }
        }
        self.ctx.shared.metrics.processed(count);
        Ok(())
    }

    /// Moves each drained input partition's position past what the consumer skipped
    /// (transaction markers, aborted records), so the committed offset reaches the end of
    /// a transactional input instead of stopping one short of its last marker (as Kafka
    /// Streams' does). Commits such a move even if nothing else changed.
    fn skip_markers(&mut self) -> Result<()> {
        for task in self.tasks.values_mut() {
            let drained: Vec<TopicPartition> = task
                .inputs()
                .filter(|tp| task.queued_of(tp) == 0)
                .cloned()
                .collect();
            for tp in drained {
                let position = self.consumer.position(&tp).map_err(Error::cluster)?;
                if task.positions.get(&tp).is_some_and(|&p| p < position) {
                    task.positions.insert(tp, position);
                    self.dirty = true;
                }
            }
        }
        Ok(())
    }

    fn punctuate_wall_clock(&mut self) -> Result<()> {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| task.core.punctuate_wall_clock()));
            match outcome {
                Ok(result) => result?,
                Err(panic) => return Err(panicked(task, panic)),
            }
            if !task.core.output.is_empty() || !task.core.overlay.is_empty() {
                self.dirty = true;
            }
            self.send_output(id)?;
        }
        Ok(())
    }

    /// Opens the transaction if none is open (exactly-once).
    pub fn ensure_txn(&mut self) -> Result<()> {
        if self.eos() && !self.txn_open {
            self.producer()?
                .begin_transaction()
                .map_err(Error::cluster)?;
            self.txn_open = true;
        }
        Ok(())
    }

    fn send_output(&mut self, id: TaskId) -> Result<()> {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Ok(());
        };
        let output = task.take_output();
        if output.is_empty() {
            return Ok(());
        }
        self.ensure_txn()?;
        let producer = self.producer()?;
        for record in output {
            // Failures surface at the flush in the commit (the transaction then aborts).
            producer.send(record).map_err(Error::cluster)?;
        }
        Ok(())
    }

    /// Ends the thread: a clean shutdown commits and closes; a failure aborts and closes;
    /// an injected crash abandons everything as a killed process would.
    fn stop(mut self, result: Result<()>) -> Result<()> {
        match result {
            Err(Error::Crashed { at }) => {
                if let Some(producer) = self.producer.take() {
                    producer.abandon();
                }
                Err(Error::Crashed { at })
            }
            Ok(()) => {
                self.ctx
                    .shared
                    .set_thread(self.index, ThreadState::Rebalancing);
                let committed = self.commit();
                if committed.is_err() && self.txn_open {
                    let _ = self.abort();
                }
                // Leave the group only once every thread of the instance has made its
                // final commit: the first to leave moves the generation on and would
                // fence the others' last commits.
                self.ctx.shared.shutdown_done(self.index);
                self.ctx
                    .shared
                    .wait_for_final_commits(self.ctx.config.session_timeout);
                self.close_all();
                committed?;
                self.ctx.db.flush()
            }
            Err(e) => {
                if self.eos() && self.txn_open {
                    let _ = self.abort();
                }
                self.close_all();
                Err(e)
            }
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.close_task(id);
        }
        self.ctx.shared.set_tasks(self.index, Vec::new());
        if let Some(member) = self.member.take()
            && let Err(e) = member.leave()
        {
            tracing::debug!(error = %e, "leaving the group failed");
        }
        if let Some(producer) = self.producer.take()
            && let Err(e) = producer.close()
        {
            tracing::warn!(error = %e, "closing the producer failed");
        }
    }
}

/// A panic in a task as the error that names the processor and record.
pub(super) fn panicked(task: &Task, panic: Box<dyn std::any::Any + Send>) -> Error {
    let node = task.core.running.unwrap_or(0);
    processor_failed(
        &task.core,
        node,
        format!("panicked: {}", panic_text(&panic)),
    )
}
