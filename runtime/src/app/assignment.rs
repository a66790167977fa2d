//! How a stream thread follows its group: joining, heartbeats, a new generation's
//! assignment (partitions of each sub-topology's lead topic -> tasks), and opening a task:
//! its stable committed offsets, its stores restored from the changelogs, fresh processors.
//! A task moving between two threads of one instance opens only once the other thread has
//! closed it.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_log::TopicPartition;
use sluice_log::cluster::{
    Assignment, Cluster, ClusterConsumer, GroupEvent, GroupMember, OffsetAt, TxnProducer,
};

use super::shared::ThreadState;
use super::thread::{StreamThread, panicked};
use crate::config::CrashPoint;
use crate::error::{Error, Result};
use crate::state::restore_with;
use crate::task::core::Clock;
use crate::task::{Task, TaskId};

/// How long one wait of the first join lasts before the thread looks at shutdown and crash.
const JOIN_WAIT: Duration = Duration::from_millis(500);

impl<C: Cluster> StreamThread<C> {
    /// Joins the group and takes the first assignment.
    pub fn join_group(&mut self) -> Result<()> {
        self.ctx
            .shared
            .set_thread(self.index, ThreadState::Rebalancing);
        loop {
            if self.ctx.shared.crashed() {
                return Err(Error::Crashed { at: None });
            }
            if self.ctx.shared.shutdown_requested() {
                return Ok(());
            }
            match self
                .member()?
                .poll_group(JOIN_WAIT)
                .map_err(Error::cluster)?
            {
                GroupEvent::Assigned(assignment) => return self.on_assignment(assignment),
                GroupEvent::Unchanged => {}
            }
        }
    }

    /// Serves the group membership (a heartbeat on the embedded broker); follows the group
    /// to a new generation if it moved. Whether it did.
    pub fn heartbeat(&mut self) -> Result<bool> {
        self.last_heartbeat = Instant::now();
        if self.ctx.shared.heartbeats_paused() {
            return Ok(false);
        }
        let wait = self.ctx.config.session_timeout;
        match self.member()?.poll_group(wait).map_err(Error::cluster)? {
            GroupEvent::Assigned(assignment) => {
                self.ctx
                    .shared
                    .set_thread(self.index, ThreadState::Rebalancing);
                self.on_assignment(assignment)?;
                Ok(true)
            }
            GroupEvent::Unchanged => Ok(false),
        }
    }

    /// Moves to a new generation's assignment. Tasks kept from the previous generation
    /// keep their processors, stores and positions (no re-initialisation, no restore) when
    /// nothing can have moved them on meanwhile: the generation is
    /// [continuous](Assignment::continuous) for this member, the thread holds no uncommitted
    /// or aborted work, and the group's committed offsets of the task's inputs are still
    /// the task's positions. Otherwise every task starts again from what is committed, as
    /// after Kafka's eager rebalance: a generation we missed (a zombie) may have given it
    /// to someone else in between.
    fn on_assignment(&mut self, assignment: Assignment) -> Result<()> {
        let wanted: BTreeSet<TaskId> = assignment
            .partitions
            .iter()
            .map(|&(sub_topology, partition)| TaskId {
                sub_topology,
                partition,
            })
            .collect();
        if self.dirty || self.txn_open {
            // Our uncommitted work can no longer commit in the new generation.
            self.abort()?;
        }
        let keep = assignment.continuous && !self.stale;
        let mut kept = Vec::new();
        if keep {
            let candidates: Vec<TaskId> = self
                .tasks
                .keys()
                .filter(|id| wanted.contains(id))
                .copied()
                .collect();
            for id in candidates {
                if self.positions_still_committed(id)? {
                    kept.push(id);
                } else {
                    tracing::info!(task = %id, thread = %self.transactional_id, "a kept task's committed offsets moved on; starting it again from them");
                    self.close_task(id);
                }
            }
        }
        // Counted before the tasks are published, so whoever sees them sees this too.
        self.ctx.shared.metrics.retained(kept.len() as u64);
        self.set_tasks(wanted, !keep)?;
        tracing::info!(thread = %self.transactional_id, tasks = ?self.tasks.keys().map(ToString::to_string).collect::<Vec<_>>(), kept = ?kept.iter().map(ToString::to_string).collect::<Vec<_>>(), continuous = assignment.continuous, "assignment");
        Ok(())
    }

    /// Whether the group's committed offsets of task `id`'s inputs are the task's positions:
    /// nobody committed for it since this thread did.
    fn positions_still_committed(&mut self, id: TaskId) -> Result<bool> {
        let Some(task) = self.tasks.get(&id) else {
            return Ok(false);
        };
        let inputs: Vec<TopicPartition> = task.inputs().cloned().collect();
        let positions = task.positions.clone();
        let committed = self.stable_offsets(&inputs)?;
        Ok(committed.iter().all(|(tp, offset)| match offset {
            Some(o) => positions.get(tp) == Some(o),
            // Nothing committed: start it again (it cannot have done much).
            None => false,
        }))
    }

    /// Aborts the open transaction and drops every task's uncommitted work.
    pub fn abort(&mut self) -> Result<()> {
        if self.txn_open {
            self.txn_open = false;
            // A failed abort leaves the producer's transaction in an unknown state: the
            // thread stops (the app reports it), and the broker times the transaction out.
            self.producer()?
                .abort_transaction()
                .map_err(Error::cluster)?;
        }
        self.dirty = false;
        // The tasks still hold what the transaction had: they must start again from what
        // is committed before they process anything more.
        self.stale = true;
        self.ctx.shared.metrics.aborted();
        Ok(())
    }

    /// Closes tasks not in `wanted` (all when `recreate`) and opens the missing ones; then
    /// points the consumer at every task's position.
    pub fn set_tasks(&mut self, wanted: BTreeSet<TaskId>, recreate: bool) -> Result<()> {
        let current: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in current {
            if recreate || !wanted.contains(&id) {
                self.close_task(id);
            }
        }
        if recreate {
            self.stale = false;
        }
        self.pending = wanted
            .into_iter()
            .filter(|id| !self.tasks.contains_key(id))
            .collect();
        // Opening a task re-assigns the consumer already; otherwise (tasks only closed) do it.
        if !self.open_pending()? {
            self.reassign()?;
        }
        Ok(())
    }

    pub fn close_task(&mut self, id: TaskId) {
        if let Some(mut task) = self.tasks.remove(&id) {
            let closed = std::panic::catch_unwind(AssertUnwindSafe(|| task.core.close()));
            if let Err(panic) = closed {
                tracing::error!(task = %id, panic = %super::thread::panic_text(&panic), "a processor panicked in close");
            }
        }
        let mut owners = self.ctx.task_owners.lock();
        if owners.get(&id) == Some(&self.index) {
            owners.remove(&id);
        }
    }

    /// Opens the pending tasks no other thread of the instance has open.
    /// Whether any opened (the consumer is then re-assigned).
    pub fn open_pending(&mut self) -> Result<bool> {
        let mut opened = false;
        for id in std::mem::take(&mut self.pending) {
            let free = {
                let mut owners = self.ctx.task_owners.lock();
                match owners.get(&id) {
                    Some(&owner) if owner != self.index => false,
                    _ => {
                        owners.insert(id, self.index);
                        true
                    }
                }
            };
            if free {
                let task = self.open_task(id)?;
                self.tasks.insert(id, task);
                opened = true;
            } else {
                self.pending.insert(id);
            }
        }
        if opened {
            self.reassign()?;
        }
        let state = if self.pending.is_empty() {
            ThreadState::Running
        } else {
            ThreadState::Rebalancing
        };
        self.ctx.shared.set_thread(self.index, state);
        Ok(opened)
    }

    /// Assigns the consumer the open tasks' inputs at the tasks' positions (queued records
    /// are dropped and fetched again).
    fn reassign(&mut self) -> Result<()> {
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
        self.ctx
            .shared
            .set_tasks(self.index, self.tasks.keys().copied().collect());
        self.consumer.assign(&at).map_err(Error::cluster)?;
        Ok(())
    }

    /// A task for `id`: its start offsets (once no transaction is committing them), its
    /// stores restored from the changelogs, fresh processors, `init` called.
    fn open_task(&mut self, id: TaskId) -> Result<Task> {
        let ctx = self.ctx.clone();
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
        let committed = self.stable_offsets(&inputs)?;
        let mut positions = BTreeMap::new();
        for (tp, offset) in committed {
            let offset = match offset {
                Some(o) => o,
                None => self
                    .ctx
                    .cluster
                    .list_offset(&tp, OffsetAt::Earliest)
                    .map_err(Error::cluster)?,
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
                &self.ctx.cluster,
                &changelog,
                self.ctx.config.restore_batch,
                self.ctx.config.transaction_timeout * 3,
                |progress| {
                    if let Some(listener) = &self.ctx.config.restore_listener {
                        listener(progress);
                    }
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
        self.ctx.shared.metrics.opened();
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
        &mut self,
        inputs: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let deadline = Instant::now() + self.ctx.config.transaction_timeout * 2;
        loop {
            let crashed = self.ctx.shared.crashed();
            match self.member()?.committed(inputs).map_err(Error::cluster) {
                Err(e) if e.is_retriable() && Instant::now() < deadline && !crashed => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }
}
