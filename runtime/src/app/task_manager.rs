//! The task manager of a stream thread: the lifecycle of its tasks (docs/architecture.md §3).
//! It opens a task (the group's stable committed offsets, its stores restored from their
//! changelogs, fresh processors, `init`), keeps it across generations or closes it, routes
//! fetched records to it, and points the consumer at every open task's position. A task
//! moving between two threads of one instance opens only once the other thread has closed
//! it (it may still be between a commit and its RocksDB apply).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use sluice_log::cluster::{Cluster, ClusterConsumer, OffsetAt};
use sluice_log::{ConsumerRecord, TopicPartition};

use super::membership::Membership;
use super::shared::ThreadState;
use super::thread::{ThreadContext, panic_text, panicked};
use crate::config::CrashPoint;
use crate::error::{Error, Result};
use crate::state::{StoreName, changelog_topic, restore_with};
use crate::task::core::Clock;
use crate::task::{Task, TaskId};

/// The tasks of one stream thread.
pub(super) struct TaskManager {
    /// The thread's index in its instance.
    index: usize,
    /// The thread's name in logs (its transactional id).
    name: String,
    tasks: BTreeMap<TaskId, Task>,
    /// The tasks of the thread's current assignment (open or pending).
    assigned: BTreeSet<TaskId>,
    /// Assigned tasks still open in another thread of this instance.
    pending: BTreeSet<TaskId>,
    /// Input partition (topic, partition) -> its task.
    routes: HashMap<(Arc<str>, i32), TaskId>,
    /// Since when each task has waited for a drained, caught-up input (`max_task_idle`).
    pub(super) idle_since: HashMap<TaskId, Instant>,
    /// The tasks hold work of an aborted or fenced transaction: they must start again from
    /// what is committed before they process more, and none of them may be kept across a
    /// generation change.
    stale: bool,
}

impl TaskManager {
    /// No tasks yet, for thread `index` named `name`.
    pub fn new(index: usize, name: &str) -> Self {
        Self {
            index,
            name: name.to_string(),
            tasks: BTreeMap::new(),
            assigned: BTreeSet::new(),
            pending: BTreeSet::new(),
            routes: HashMap::new(),
            idle_since: HashMap::new(),
            stale: false,
        }
    }

    /// The open tasks' ids, in order.
    pub fn ids(&self) -> Vec<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// The open tasks.
    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    /// The open tasks, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Task> {
        self.tasks.values_mut()
    }

    /// Task `id`, if open here.
    pub fn get(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// Task `id`, if open here, to change.
    pub fn get_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        self.tasks.get_mut(&id)
    }

    /// The tasks of the current assignment, open or still pending.
    pub fn assigned(&self) -> &BTreeSet<TaskId> {
        &self.assigned
    }

    /// Whether assigned tasks wait for another thread of the instance to close them.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether no task has a record queued.
    pub fn all_drained(&self) -> bool {
        self.tasks.values().all(|t| t.queued() == 0)
    }

    /// Marks the tasks as holding aborted work (see [`stale`](Self::is_stale)).
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Whether the tasks hold work of an aborted or fenced transaction.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Every open task's input positions: the offsets a commit records.
    pub fn positions(&self) -> Vec<(TopicPartition, i64)> {
        self.tasks
            .values()
            .flat_map(|t| t.positions.iter().map(|(tp, o)| (tp.clone(), *o)))
            .collect()
    }

    /// Queues a fetched record on the task that reads its partition (none: dropped, the
    /// partition was just unassigned).
    pub fn route(&mut self, record: ConsumerRecord) {
        let route = self.routes.get(&(record.topic.clone(), record.partition));
        if let Some(task) = route.and_then(|id| self.tasks.get_mut(id)) {
            task.enqueue(record);
        }
    }

    /// Closes tasks not in `wanted` (all when `recreate`) and opens the missing ones; then
    /// points the consumer at every open task's position.
    pub fn set<C: Cluster>(
        &mut self,
        ctx: &ThreadContext<C>,
        member: &mut Membership<C>,
        consumer: &mut C::Consumer,
        wanted: BTreeSet<TaskId>,
        recreate: bool,
    ) -> Result<()> {
        for id in self.ids() {
            if recreate || !wanted.contains(&id) {
                self.close(ctx, id);
            }
        }
        if recreate {
            self.stale = false;
        }
        self.assigned = wanted.clone();
        self.pending = wanted
            .into_iter()
            .filter(|id| !self.tasks.contains_key(id))
            .collect();
        // Opening a task re-assigns the consumer already; otherwise (tasks only closed) do it.
        if !self.open_pending(ctx, member, consumer)? {
            self.reassign(ctx, consumer)?;
        }
        Ok(())
    }

    /// Closes task `id` (its processors' `close`), giving it up to the other threads.
    pub fn close<C: Cluster>(&mut self, ctx: &ThreadContext<C>, id: TaskId) {
        if let Some(mut task) = self.tasks.remove(&id) {
            let closed = std::panic::catch_unwind(AssertUnwindSafe(|| task.core.close()));
            if let Err(panic) = closed {
                tracing::error!(task = %id, panic = %panic_text(&panic), "a processor panicked in close");
            }
        }
        self.idle_since.remove(&id);
        let mut owners = ctx.task_owners.lock();
        if owners.get(&id) == Some(&self.index) {
            owners.remove(&id);
        }
    }

    /// Closes every task and publishes that the thread has none.
    pub fn close_all<C: Cluster>(&mut self, ctx: &ThreadContext<C>) {
        for id in self.ids() {
            self.close(ctx, id);
        }
        self.pending.clear();
        ctx.shared.set_tasks(self.index, Vec::new());
    }

    /// Opens the pending tasks no other thread of the instance has open; the thread is
    /// Running once none is left pending. Whether any opened (the consumer is then
    /// re-assigned).
    pub fn open_pending<C: Cluster>(
        &mut self,
        ctx: &ThreadContext<C>,
        member: &mut Membership<C>,
        consumer: &mut C::Consumer,
    ) -> Result<bool> {
        let mut opened = false;
        let mut waiting: Vec<TaskId> = std::mem::take(&mut self.pending).into_iter().collect();
        waiting.reverse();
        while let Some(id) = waiting.pop() {
            let free = {
                let mut owners = ctx.task_owners.lock();
                match owners.get(&id) {
                    Some(&owner) if owner != self.index => false,
                    _ => {
                        owners.insert(id, self.index);
                        true
                    }
                }
            };
            if free {
                match self.open(ctx, member, id) {
                    Ok(task) => {
                        self.tasks.insert(id, task);
                        opened = true;
                    }
                    Err(e) => {
                        // Give the task up to the other threads, and keep it and those not
                        // tried yet pending.
                        let mut owners = ctx.task_owners.lock();
                        if owners.get(&id) == Some(&self.index) {
                            owners.remove(&id);
                        }
                        self.pending.insert(id);
                        self.pending.extend(waiting);
                        return Err(e);
                    }
                }
            } else {
                self.pending.insert(id);
            }
        }
        if opened {
            self.reassign(ctx, consumer)?;
        }
        let state = if self.pending.is_empty() {
            ThreadState::Running
        } else {
            ThreadState::Rebalancing
        };
        ctx.shared.set_thread(self.index, state);
        Ok(opened)
    }

    /// Assigns the consumer the open tasks' inputs at the tasks' positions (queued records
    /// are dropped and fetched again).
    pub fn reassign<C: Cluster>(
        &mut self,
        ctx: &ThreadContext<C>,
        consumer: &mut C::Consumer,
    ) -> Result<()> {
        self.routes.clear();
        let mut at = Vec::new();
        for (id, task) in &mut self.tasks {
            task.clear_queues();
            for tp in task.inputs() {
                self.routes
                    .insert((Arc::from(tp.topic.as_str()), tp.partition), *id);
                // Every input's position is known once its task is open; a missing one
                // would start from the log start (the consumer's reset policy).
                let offset = task.positions.get(tp).copied().unwrap_or(0);
                at.push((tp.clone(), offset));
            }
        }
        ctx.shared.set_tasks(self.index, self.ids());
        consumer.assign(&at).map_err(Error::cluster)?;
        Ok(())
    }

    /// Whether nothing can have moved task `id` on since this thread last committed it:
    /// the group's committed offsets of its inputs are the task's positions (nobody
    /// committed input for it), and each store's changelog ends where this thread left it
    /// (its checkpoint, plus the one commit marker after it; nobody wrote to it, not even
    /// a punctuator that consumed no input).
    pub fn still_committed<C: Cluster>(
        &self,
        ctx: &ThreadContext<C>,
        member: &mut Membership<C>,
        id: TaskId,
    ) -> Result<bool> {
        let Some(task) = self.tasks.get(&id) else {
            return Ok(false);
        };
        let inputs: Vec<TopicPartition> = task.inputs().cloned().collect();
        let committed = member.stable_offsets(ctx, &inputs)?;
        let offsets_kept = committed.iter().all(|(tp, offset)| match offset {
            Some(o) => task.positions.get(tp) == Some(o),
            // Nothing committed: start it again (it cannot have done much).
            None => false,
        });
        if !offsets_kept {
            return Ok(false);
        }
        for (store, topic) in &task.changelogs {
            let checkpoint = ctx.db.checkpoint(store)?.unwrap_or(0);
            let tp = TopicPartition::new(topic.clone(), id.partition);
            let end = ctx
                .cluster
                .list_offset(&tp, OffsetAt::Latest)
                .map_err(Error::cluster)?;
            if end > checkpoint + 1 {
                tracing::info!(task = %id, changelog = %topic, checkpoint, end, "a kept task's changelog moved on");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A task for `id`: its start offsets (once no transaction is committing them), its
    /// stores restored from the changelogs, fresh processors, `init` called.
    fn open<C: Cluster>(
        &mut self,
        ctx: &ThreadContext<C>,
        member: &mut Membership<C>,
        id: TaskId,
    ) -> Result<Task> {
        let sub = ctx
            .topology
            .sub_topologies()
            .get(id.sub_topology)
            .ok_or_else(|| Error::IllegalState(format!("no sub-topology for task {id}")))?;
        let inputs: Vec<TopicPartition> = sub
            .source_topics
            .iter()
            .map(|t| TopicPartition::new(t.clone(), id.partition))
            .collect();
        let committed = member.stable_offsets(ctx, &inputs)?;
        let mut positions = BTreeMap::new();
        for (tp, offset) in committed {
            let offset = match offset {
                Some(o) => o,
                None => ctx
                    .cluster
                    .list_offset(&tp, OffsetAt::Earliest)
                    .map_err(Error::cluster)?,
            };
            positions.insert(tp, offset);
        }
        for spec in &sub.store_specs {
            let name = StoreName::new(spec.name(), id.partition);
            let changelog = changelog_topic(&ctx.application_id, spec.name());
            let started = Instant::now();
            let applied = restore_with(
                &ctx.db,
                &name,
                &ctx.cluster,
                &changelog,
                ctx.config.restore_batch,
                ctx.config.transaction_timeout * 3,
                |progress| {
                    if let Some(listener) = &ctx.config.restore_listener {
                        listener(progress);
                    }
                    if progress.position < progress.end {
                        ctx.crash_point(CrashPoint::MidRestore, &self.name)?;
                    }
                    Ok(())
                },
            )?;
            ctx.shared.metrics.restored(applied);
            if applied > 0 {
                tracing::info!(task = %id, store = %spec.name(), applied, took_ms = started.elapsed().as_millis() as u64, "store restored");
            }
        }
        ctx.shared.metrics.opened();
        let mut task = Task::open(
            sub,
            id,
            ctx.application_id.clone(),
            &ctx.db,
            Clock::System,
            ctx.plan.sink_partitions.clone(),
        )?;
        task.positions = positions;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| task.core.init()));
        match outcome {
            Ok(result) => result?,
            Err(panic) => return Err(panicked(&task, panic)),
        }
        Ok(task)
    }
}
