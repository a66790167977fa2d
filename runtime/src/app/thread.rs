//! A stream thread (docs/architecture.md §3), as three parts and a loop:
//!
//! - a [`TaskManager`]: the lifecycle of the thread's tasks (open, keep, close, route);
//! - a [`Committer`]: its transactional producer (`<app>-<instance>-<thread>`) and the §3.1
//!   commit;
//! - a [`Membership`]: its member of the application's group.
//!
//! The group assigns the partitions of each sub-topology's lead topic; partition p of it
//! stands for task `sub_p`, which reads partition p of every (co-partitioned) source topic
//! of the sub-topology, through the thread's one read_committed consumer. The loop: poll,
//! process, punctuate, and every `commit_interval` commit and serve the membership.
//!
//! The thread's states are [`ThreadState`]'s: Created, Rebalancing (joining, opening or
//! restoring tasks, recovering), Running, PendingShutdown, Stopped. Every failure goes
//! through one typed recovery path, [`StreamThread::recover`], by its
//! [`ErrorClass`]: fenced (a new producer, and the tasks start again from what is
//! committed), migrated (abort, rejoin, and the tasks start again from what is committed),
//! fatal (the app goes to Error).

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use sluice_log::OffsetReset;
use sluice_log::cluster::{Assignment, Cluster, ClusterConsumer, ConsumerSpec};

use super::committer::Committer;
use super::membership::Membership;
use super::purge::RepartitionPurger;
use super::setup::TopicPlan;
use super::shared::{Shared, ThreadState};
use super::task_manager::TaskManager;
use crate::config::{AppConfig, CrashPoint};
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

impl<C: Cluster> ThreadContext<C> {
    /// Asks the crash hook about `point`; on yes the whole instance stops dead (`thread`
    /// names who hit it, in the log).
    pub fn crash_point(&self, point: CrashPoint, thread: &str) -> Result<()> {
        if self.crash_wanted(point) {
            tracing::warn!(?point, thread, "injected crash");
            self.shared.crash();
            return Err(Error::Crashed { at: Some(point) });
        }
        Ok(())
    }

    /// Whether the crash hook wants the instance dead at `point`.
    #[cfg(feature = "fault-injection")]
    pub fn crash_wanted(&self, point: CrashPoint) -> bool {
        self.config
            .crash_hook
            .as_ref()
            .is_some_and(|hook| hook(point))
    }

    /// Never, without the `fault-injection` feature.
    #[cfg(not(feature = "fault-injection"))]
    pub fn crash_wanted(&self, _point: CrashPoint) -> bool {
        false
    }
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

/// A panic payload as text.
pub(super) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into())
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

pub(super) struct StreamThread<C: Cluster> {
    pub ctx: Arc<ThreadContext<C>>,
    pub index: usize,
    /// Its transactional id, which also names it in logs.
    pub name: String,
    pub consumer: C::Consumer,
    pub tasks: TaskManager,
    pub committer: Committer<C>,
    pub member: Membership<C>,
    pub purger: RepartitionPurger,
}

impl<C: Cluster> StreamThread<C> {
    fn start(ctx: Arc<ThreadContext<C>>, index: usize) -> Result<Self> {
        let name = format!("{}-{}-{index}", ctx.application_id, ctx.instance_id);
        let committer = Committer::new(&ctx, &name)?;
        let consumer_spec = ConsumerSpec::read_committed(name.clone())
            .with_reset(OffsetReset::Earliest)
            .with_max_poll_records(ctx.config.max_poll_records);
        let consumer = ctx
            .cluster
            .consumer(&consumer_spec)
            .map_err(Error::cluster)?;
        let member = Membership::new(&ctx, &name)?;
        let mut thread = Self {
            tasks: TaskManager::new(index, &name),
            ctx,
            index,
            name,
            consumer,
            committer,
            member,
            purger: RepartitionPurger::new(),
        };
        thread.enter(ThreadState::Rebalancing);
        if let Some(assignment) = thread.member.first_assignment(&thread.ctx)? {
            thread.on_assignment(assignment)?;
        }
        Ok(thread)
    }

    /// Moves the thread to `state`.
    pub fn enter(&self, state: ThreadState) {
        tracing::debug!(thread = %self.name, ?state, "thread state");
        self.ctx.shared.set_thread(self.index, state);
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
            if let Err(error) = self.step(interval) {
                self.recover(error)?;
            }
        }
    }

    /// One round: open waiting tasks, poll, process, punctuate, and commit when due.
    fn step(&mut self, interval: Duration) -> Result<()> {
        if self.tasks.has_pending() {
            // Opening (and restoring) a task can take long: commit what is in flight
            // first, so no transaction stays open meanwhile.
            self.commit()?;
            self.tasks
                .open_pending(&self.ctx, &mut self.member, &mut self.consumer)?;
        }
        // Idle, wait for input, but never past the next commit.
        let timeout = if self.tasks.all_drained() {
            interval
                .saturating_sub(self.committer.since_commit())
                .min(Duration::from_millis(10))
        } else {
            Duration::ZERO
        };
        for record in self.consumer.poll(timeout).map_err(Error::cluster)? {
            self.tasks.route(record);
        }
        self.process()?;
        self.punctuate_wall_clock()?;
        if self.committer.since_commit() >= interval {
            self.skip_markers()?;
            self.commit()?;
            self.purger.after_commit(&self.ctx, &self.tasks);
            self.follow_group()?;
        } else if self.member.due(&self.ctx) && !self.committer.is_dirty() {
            self.follow_group()?;
        }
        Ok(())
    }

    /// Commits what was processed since the last commit, if anything.
    pub fn commit(&mut self) -> Result<()> {
        self.committer
            .commit(&self.ctx, &mut self.tasks, &mut self.member)
    }

    /// The one recovery path, by the failure's class:
    ///
    /// - fenced: the broker fenced this thread's producer (its transaction outlived the
    ///   transaction timeout, a stall, and was aborted). As Kafka Streams does: a new
    ///   producer epoch, then the tasks start again from what is committed.
    /// - migrated: the group moved on (a commit with an old generation, or a rebalance
    ///   under way); our uncommitted work cannot commit. Abort, follow the group, and the
    ///   tasks start again from what is committed.
    /// - fatal: returned; the app goes to Error.
    ///
    /// Either recoverable way, everything since the last commit is gone: a new assignment
    /// re-creates the tasks, and if the generation did not move (heartbeats paused: a
    /// zombie) the same tasks start again from what is committed.
    fn recover(&mut self, error: Error) -> Result<()> {
        match error.class() {
            ErrorClass::Fenced => {
                tracing::warn!(%error, thread = %self.name, "producer fenced (transaction timed out?); re-initialising and starting the tasks again from what is committed");
                self.enter(ThreadState::Rebalancing);
                self.committer.renew(&self.ctx)?;
                self.ctx.shared.metrics.aborted();
            }
            ErrorClass::Migrated => {
                tracing::info!(%error, thread = %self.name, "the group moved on; aborting and rejoining");
                self.enter(ThreadState::Rebalancing);
                self.abort_or_renew()?;
            }
            _ => return Err(error),
        }
        self.tasks.mark_stale();
        if self.ctx.shared.shutdown_requested() {
            return Ok(());
        }
        if !self.follow_group()? {
            // The same assignment (open and pending tasks), from what is committed.
            let wanted: BTreeSet<TaskId> = self.tasks.assigned().clone();
            self.tasks.set(
                &self.ctx,
                &mut self.member,
                &mut self.consumer,
                wanted,
                true,
            )?;
        }
        Ok(())
    }

    /// Aborts the open transaction; if the producer turns out fenced meanwhile (the
    /// transaction outlived its timeout), takes a new one instead.
    fn abort_or_renew(&mut self) -> Result<()> {
        match self.committer.abort(&self.ctx) {
            Err(e) if e.class() == ErrorClass::Fenced => {
                tracing::warn!(error = %e, thread = %self.name, "producer fenced while aborting; re-initialising");
                self.committer.renew(&self.ctx)
            }
            other => other,
        }
    }

    /// Serves the membership; follows the group to a new generation if it moved on.
    /// Whether it did.
    pub fn follow_group(&mut self) -> Result<bool> {
        match self.member.serve(&self.ctx)? {
            Some(assignment) => {
                self.enter(ThreadState::Rebalancing);
                self.on_assignment(assignment)?;
                Ok(true)
            }
            None => Ok(false),
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
        if self.committer.has_uncommitted() {
            // Our uncommitted work can no longer commit in the new generation.
            self.tasks.mark_stale();
            self.abort_or_renew()?;
        }
        let keep = assignment.continuous && !self.tasks.is_stale();
        let mut kept = Vec::new();
        if keep {
            for id in self.tasks.ids() {
                if !wanted.contains(&id) {
                    continue;
                }
                if self
                    .tasks
                    .still_committed(&self.ctx, &mut self.member, id)?
                {
                    kept.push(id);
                } else {
                    tracing::info!(task = %id, thread = %self.name, "a kept task's committed offsets moved on; starting it again from them");
                    self.tasks.close(&self.ctx, id);
                }
            }
        }
        // Counted before the tasks are published, so whoever sees them sees this too.
        self.ctx.shared.metrics.retained(kept.len() as u64);
        self.tasks.set(
            &self.ctx,
            &mut self.member,
            &mut self.consumer,
            wanted,
            !keep,
        )?;
        self.ctx.shared.metrics.assigned();
        tracing::info!(thread = %self.name, tasks = ?self.tasks.ids().iter().map(ToString::to_string).collect::<Vec<_>>(), kept = ?kept.iter().map(ToString::to_string).collect::<Vec<_>>(), continuous = assignment.continuous, "assignment");
        Ok(())
    }

    /// Ends the thread: a clean shutdown commits and closes; a failure aborts and closes;
    /// an injected crash abandons everything as a killed process would.
    fn stop(mut self, result: Result<()>) -> Result<()> {
        match result {
            Err(Error::Crashed { at }) => {
                self.committer.abandon();
                Err(Error::Crashed { at })
            }
            Ok(()) => {
                self.enter(ThreadState::PendingShutdown);
                let committed = match self.commit() {
                    // The group moved on: what was not committed is someone else's to redo.
                    Err(e) if e.class() == ErrorClass::Migrated => {
                        tracing::info!(error = %e, thread = %self.name, "final commit refused: the group moved on");
                        match self.committer.abort(&self.ctx) {
                            Err(e) if e.class() == ErrorClass::Fenced => Ok(()),
                            other => other,
                        }
                    }
                    // Fenced (a newer incarnation, or the transaction timed out and was
                    // aborted): nothing of it is committed, and whoever owns the tasks
                    // redoes it; there is nothing left to close cleanly.
                    Err(e) if e.class() == ErrorClass::Fenced => {
                        tracing::warn!(error = %e, thread = %self.name, "final commit fenced; its work is redone by the tasks' owner");
                        self.committer.abandon();
                        Ok(())
                    }
                    Err(e) => {
                        if self.committer.has_uncommitted() {
                            let _ = self.committer.abort(&self.ctx);
                        }
                        Err(e)
                    }
                    Ok(()) => Ok(()),
                };
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
                if self.committer.has_uncommitted() {
                    let _ = self.committer.abort(&self.ctx);
                }
                self.close_all();
                Err(e)
            }
        }
    }

    fn close_all(&mut self) {
        self.tasks.close_all(&self.ctx);
        self.member.leave();
        self.committer.close();
    }
}
