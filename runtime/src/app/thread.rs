//! A stream thread (DESIGN §3): one member of the application's group, one read_committed
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

use sluice_log::group::GroupAssignment;
use sluice_log::{
    Broker, Consumer, ConsumerConfig, Error as LogError, GroupMetadata, IsolationLevel,
    OffsetReset, OffsetSpec, Producer, ProducerConfig, TopicPartition,
};

use super::setup::TopicPlan;
use super::shared::{Shared, ThreadState};
use crate::config::{AppConfig, CrashPoint, ProcessingGuarantee};
use crate::error::{Error, Result};
use crate::processor::processor_failed;
use crate::state::{StateDb, restore_with};
use crate::task::core::Clock;
use crate::task::{Task, TaskId};
use crate::topology::Topology;

/// What every thread of an instance shares.
pub(crate) struct ThreadContext {
    pub application_id: Arc<str>,
    pub instance_id: String,
    pub topology: Arc<Topology>,
    pub config: AppConfig,
    pub db: StateDb,
    pub broker: Broker,
    pub plan: TopicPlan,
    pub shared: Arc<Shared>,
}

/// The thread's body: runs until shutdown, failure or an injected crash.
pub(crate) fn run(ctx: Arc<ThreadContext>, index: usize) {
    ctx.shared.set_thread(index, ThreadState::Rebalancing);
    let outcome = match StreamThread::start(ctx.clone(), index) {
        Ok(mut thread) => {
            let result = thread.run_loop();
            thread.stop(result)
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) | Err(Error::Crashed { .. }) => {}
        Err(e) => ctx.shared.fail(e),
    }
    ctx.shared.set_thread(index, ThreadState::Stopped);
}

pub(super) struct Member {
    pub member_id: String,
    pub generation: i32,
}

pub(super) struct StreamThread {
    pub ctx: Arc<ThreadContext>,
    index: usize,
    pub transactional_id: String,
    pub producer: Option<Producer>,
    consumer: Consumer,
    pub member: Option<Member>,
    pub tasks: BTreeMap<TaskId, Task>,
    routes: HashMap<TopicPartition, TaskId>,
    /// A transaction is open on the producer (exactly-once).
    pub txn_open: bool,
    /// Something was processed or produced since the last commit.
    pub dirty: bool,
    pub last_commit: Instant,
    last_heartbeat: Instant,
}

impl StreamThread {
    fn start(ctx: Arc<ThreadContext>, index: usize) -> Result<Self> {
        let transactional_id = format!("{}-{}-{index}", ctx.application_id, ctx.instance_id);
        let eos = ctx.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        let mut producer_config = ProducerConfig::default()
            .with_linger_ms(5)
            .with_transaction_timeout(ctx.config.transaction_timeout);
        if eos {
            producer_config = producer_config.with_transactional_id(transactional_id.clone());
        }
        let producer = Producer::new(&ctx.broker, producer_config)?;
        if eos {
            // Fences this thread's previous incarnation and ends its open transaction.
            producer.init_transactions()?;
        }
        let consumer = Consumer::new(
            &ctx.broker,
            ConsumerConfig::default()
                .with_isolation(IsolationLevel::ReadCommitted)
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_max_poll_records(ctx.config.max_poll_records),
        );
        let mut thread = Self {
            ctx,
            index,
            transactional_id,
            producer: Some(producer),
            consumer,
            member: None,
            tasks: BTreeMap::new(),
            routes: HashMap::new(),
            txn_open: false,
            dirty: false,
            last_commit: Instant::now(),
            last_heartbeat: Instant::now(),
        };
        thread.join_group()?;
        Ok(thread)
    }

    pub fn eos(&self) -> bool {
        self.ctx.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }

    pub fn producer(&self) -> Result<&Producer> {
        self.producer
            .as_ref()
            .ok_or_else(|| Error::IllegalState("the producer is gone".into()))
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

    pub fn group_metadata(&self) -> GroupMetadata {
        GroupMetadata {
            group_id: self.ctx.application_id.to_string(),
            generation: self.member.as_ref().map_or(-1, |m| m.generation),
            member_id: self
                .member
                .as_ref()
                .map(|m| m.member_id.clone())
                .unwrap_or_default(),
        }
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
            let idle = self.tasks.values().all(|t| t.queued() == 0);
            let timeout = if idle {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            for record in self.consumer.poll(timeout)? {
                let tp = TopicPartition::new(record.topic.to_string(), record.partition);
                if let Some(task) = self.routes.get(&tp).and_then(|id| self.tasks.get_mut(id)) {
                    task.enqueue(record);
                }
            }
            self.process()?;
            self.punctuate_wall_clock()?;
            if self.last_commit.elapsed() >= interval {
                self.skip_markers()?;
                self.commit()?;
                self.heartbeat()?;
            } else if self.last_heartbeat.elapsed() >= self.ctx.config.heartbeat_interval
                && !self.dirty
            {
                self.heartbeat()?;
            }
        }
    }

    fn process(&mut self) -> Result<()> {
        let handler = self.ctx.config.deserialization_handler.clone();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            loop {
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
                self.ctx.shared.metrics.processed(1);
                self.send_output(id)?;
            }
        }
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
                let position = self.consumer.position(&tp)?;
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
            self.producer()?.begin_transaction()?;
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
            drop(producer.send(record)?);
        }
        Ok(())
    }

    fn join_group(&mut self) -> Result<()> {
        self.ctx
            .shared
            .set_thread(self.index, ThreadState::Rebalancing);
        let joined = self.ctx.broker.join_group(
            &self.ctx.application_id,
            None,
            &self.ctx.plan.lead_topics,
            self.ctx.config.session_timeout,
        )?;
        self.on_assignment(joined)
    }

    /// Heartbeats; follows the group to a new generation if it moved.
    pub fn heartbeat(&mut self) -> Result<()> {
        self.last_heartbeat = Instant::now();
        if self.ctx.shared.heartbeats_paused() {
            return Ok(());
        }
        let Some(member) = &self.member else {
            return self.join_group();
        };
        let (id, generation) = (member.member_id.clone(), member.generation);
        match self
            .ctx
            .broker
            .heartbeat(&self.ctx.application_id, &id, generation)
        {
            Ok(()) => Ok(()),
            Err(LogError::RebalanceInProgress { .. }) => {
                self.ctx
                    .shared
                    .set_thread(self.index, ThreadState::Rebalancing);
                let synced = self.ctx.broker.sync_group(&self.ctx.application_id, &id)?;
                self.on_assignment(synced)
            }
            Err(LogError::UnknownMemberId { .. }) => {
                tracing::warn!(thread = %self.transactional_id, "session expired; rejoining the group");
                self.member = None;
                self.join_group()
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Moves to a new generation's assignment.
    fn on_assignment(&mut self, assignment: GroupAssignment) -> Result<()> {
        let generation_moved = self
            .member
            .as_ref()
            .is_none_or(|m| m.generation != assignment.generation);
        self.member = Some(Member {
            member_id: assignment.member_id,
            generation: assignment.generation,
        });
        let wanted: BTreeSet<TaskId> = assignment
            .partitions
            .iter()
            .filter_map(|tp| {
                let sub = self
                    .ctx
                    .plan
                    .lead_topics
                    .iter()
                    .position(|t| *t == tp.topic)?;
                Some(TaskId {
                    sub_topology: sub,
                    partition: tp.partition,
                })
            })
            .collect();
        // After a generation change a task we keep may have been someone else's in between
        // (a generation we missed, or while we were a zombie): its committed offsets and
        // changelog may have moved on. So every task starts again from what is committed,
        // as after Kafka's eager rebalance; our uncommitted work can no longer commit.
        if generation_moved && (self.dirty || self.txn_open) {
            self.abort()?;
        }
        self.set_tasks(wanted, generation_moved)?;
        self.ctx.shared.set_thread(self.index, ThreadState::Running);
        tracing::info!(thread = %self.transactional_id, generation = ?self.member.as_ref().map(|m| m.generation), tasks = ?self.tasks.keys().map(ToString::to_string).collect::<Vec<_>>(), "assignment");
        Ok(())
    }

    /// Aborts the open transaction and drops every task's uncommitted work.
    pub fn abort(&mut self) -> Result<()> {
        if self.txn_open {
            self.txn_open = false;
            if let Err(e) = self.producer()?.abort_transaction() {
                if e.txn_kind() == sluice_log::TxnErrorKind::Fatal {
                    return Err(e.into());
                }
                tracing::warn!(error = %e, "aborting the transaction failed; it times out instead");
            }
        }
        self.dirty = false;
        self.ctx.shared.metrics.aborted();
        Ok(())
    }

    /// Closes tasks not in `wanted` (all when `recreate`) and opens the missing ones; then
    /// points the consumer at every task's position.
    pub fn set_tasks(&mut self, wanted: BTreeSet<TaskId>, recreate: bool) -> Result<()> {
        let current: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in current {
            if recreate || !wanted.contains(&id) {
                if let Some(mut task) = self.tasks.remove(&id) {
                    task.core.close();
                }
            }
        }
        for id in wanted {
            if !self.tasks.contains_key(&id) {
                let task = self.open_task(id)?;
                self.tasks.insert(id, task);
            }
        }
        self.routes.clear();
        let mut inputs = Vec::new();
        for (id, task) in &mut self.tasks {
            task.clear_queues();
            for tp in task.inputs() {
                self.routes.insert(tp.clone(), *id);
                inputs.push(tp.clone());
            }
        }
        self.ctx
            .shared
            .set_tasks(self.index, self.tasks.keys().copied().collect());
        self.consumer.assign(inputs)?;
        for task in self.tasks.values() {
            for (tp, offset) in &task.positions {
                self.consumer.seek(tp, *offset)?;
            }
        }
        Ok(())
    }

    /// A task for `id`: its start offsets (once no transaction is committing them), its
    /// stores restored from the changelogs, fresh processors, `init` called.
    fn open_task(&mut self, id: TaskId) -> Result<Task> {
        let sub = self
            .ctx
            .topology
            .sub_topologies()
            .get(id.sub_topology)
            .ok_or_else(|| Error::IllegalState(format!("no sub-topology for task {id}")))?;
        let inputs: Vec<TopicPartition> = sub
            .source_topics
            .iter()
            .map(|t| TopicPartition::new(t.clone(), id.partition))
            .collect();
        let committed = self.stable_offsets(&inputs)?;
        let mut positions = BTreeMap::new();
        for (tp, offset) in committed {
            let offset = match offset {
                Some(o) => o,
                None => self
                    .ctx
                    .broker
                    .list_offsets(&tp.topic, tp.partition, OffsetSpec::Earliest)?
                    .map_or(0, |l| l.offset),
            };
            positions.insert(tp, offset);
        }
        for spec in &sub.store_specs {
            let name = crate::state::StoreName::new(spec.name(), id.partition);
            let changelog = crate::state::changelog_topic(&self.ctx.application_id, spec.name());
            let started = Instant::now();
            let applied = restore_with(
                &self.ctx.db,
                &name,
                &self.ctx.broker,
                &changelog,
                self.ctx.config.restore_batch,
                |progress| {
                    self.ctx.shared.metrics.restored(0);
                    if progress.position < progress.end {
                        self.crash_point(CrashPoint::MidRestore)?;
                    }
                    Ok(())
                },
            )?;
            self.ctx.shared.metrics.restored(applied);
            if applied > 0 {
                tracing::info!(task = %id, store = %spec.name(), applied, took_ms = started.elapsed().as_millis() as u64, "store restored");
            }
        }
        let mut task = Task::open(
            sub,
            id,
            self.ctx.application_id.clone(),
            &self.ctx.db,
            Clock::System,
            self.ctx.plan.sink_partitions.clone(),
        )?;
        task.positions = positions;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| task.core.init()));
        match outcome {
            Ok(result) => result?,
            Err(panic) => return Err(panicked(&task, panic)),
        }
        Ok(task)
    }

    /// The group's committed offsets of `inputs`, waiting while a transaction that
    /// commits some of them is still open (Kafka's stable offset fetch).
    fn stable_offsets(
        &self,
        inputs: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let deadline = Instant::now() + self.ctx.config.transaction_timeout * 2;
        loop {
            match self
                .ctx
                .broker
                .offset_fetch(&self.ctx.application_id, inputs, true)
            {
                Err(LogError::UnstableOffsetCommit { .. })
                    if Instant::now() < deadline && !self.ctx.shared.crashed() =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other.map_err(Error::from),
            }
        }
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
                self.close_all();
                committed
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
        for (_, mut task) in std::mem::take(&mut self.tasks) {
            task.core.close();
        }
        self.ctx.shared.set_tasks(self.index, Vec::new());
        if let Some(member) = self.member.take() {
            let _ = self
                .ctx
                .broker
                .leave_group(&self.ctx.application_id, &member.member_id);
        }
        if let Some(producer) = self.producer.take()
            && let Err(e) = producer.close()
        {
            tracing::warn!(error = %e, "closing the producer failed");
        }
    }
}

/// A panic in a task as the error that names the processor and record.
fn panicked(task: &Task, panic: Box<dyn std::any::Any + Send>) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into());
    let node = task.core.running.unwrap_or(0);
    processor_failed(&task.core, node, format!("panicked: {message}"))
}
