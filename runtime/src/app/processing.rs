//! The processing half of a stream thread's loop: each ready task processes its queued
//! records (user code under `catch_unwind`, so a panic names its processor and record),
//! wall-clock punctuators run, and their output goes to the committer's transaction.
//! Drained inputs move past what the consumer skipped (transaction markers, aborted
//! records), so a committed offset reaches the end of a transactional input.

use std::panic::AssertUnwindSafe;

use sluice_log::TopicPartition;
use sluice_log::cluster::{Cluster, ClusterConsumer};

use super::thread::{StreamThread, panicked};
use crate::error::{Error, Result};
use crate::task::TaskId;

impl<C: Cluster> StreamThread<C> {
    /// Processes every ready task's queued records.
    pub(super) fn process(&mut self) -> Result<()> {
        let handler = self.ctx.config.deserialization_handler.clone();
        let max_idle = self.ctx.config.max_task_idle;
        let mut count = 0;
        for id in self.tasks.ids() {
            while self.tasks.ready(id, &mut self.consumer, max_idle) {
                let Some(task) = self.tasks.get_mut(id) else {
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
                count += 1;
                if task.core.dropped > 0 {
                    self.ctx
                        .shared
                        .metrics
                        .dropped(std::mem::take(&mut task.core.dropped));
                }
                self.committer.mark_dirty();
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
    pub(super) fn skip_markers(&mut self) -> Result<()> {
        for task in self.tasks.iter_mut() {
            let drained: Vec<TopicPartition> = task
                .inputs()
                .filter(|tp| task.queued_of(tp) == 0)
                .cloned()
                .collect();
            for tp in drained {
                let position = self.consumer.position(&tp).map_err(Error::cluster)?;
                if task.positions.get(&tp).is_some_and(|&p| p < position) {
                    task.positions.insert(tp, position);
                    self.committer.mark_dirty();
                }
            }
        }
        Ok(())
    }

    /// Runs every task's due wall-clock punctuators.
    pub(super) fn punctuate_wall_clock(&mut self) -> Result<()> {
        for id in self.tasks.ids() {
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| task.core.punctuate_wall_clock()));
            match outcome {
                Ok(result) => result?,
                Err(panic) => return Err(panicked(task, panic)),
            }
            if !task.core.output.is_empty() || !task.core.overlay.is_empty() {
                self.committer.mark_dirty();
            }
            self.send_output(id)?;
        }
        Ok(())
    }

    /// Sends task `id`'s output in the transaction.
    fn send_output(&mut self, id: TaskId) -> Result<()> {
        let Some(task) = self.tasks.get_mut(id) else {
            return Ok(());
        };
        let output = task.take_output();
        self.committer.send(output)
    }
}
