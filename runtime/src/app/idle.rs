//! When a task may process (Kafka's `max.task.idle.ms`, KIP-695): a task merges its input
//! partitions in timestamp order, which only holds if it does not run ahead while one of
//! its inputs is drained. A drained input with records on the broker not yet fetched
//! (`Consumer::current_lag`) makes the task wait for the next poll; a drained input that is
//! caught up makes it wait `max_task_idle` (zero by default), then process without it.

use std::time::{Duration, Instant};

use sluice_log::cluster::ClusterConsumer;

use super::task_manager::TaskManager;
use crate::task::TaskId;

impl TaskManager {
    /// Whether task `id` may process its next queued record now; `consumer` tells whether
    /// a drained input has records not yet fetched, `max_idle` is `max.task.idle`.
    pub(super) fn ready<Co: ClusterConsumer>(
        &mut self,
        id: TaskId,
        consumer: &mut Co,
        max_idle: Duration,
    ) -> bool {
        let Some(task) = self.get(id) else {
            return false;
        };
        if task.queued() == 0 {
            return false;
        }
        // The common case, every input with records queued, allocates nothing.
        if task.inputs().all(|tp| task.queued_of(tp) > 0) {
            self.idle_since.remove(&id);
            return true;
        }
        let drained: Vec<_> = task
            .inputs()
            .filter(|tp| task.queued_of(tp) == 0)
            .cloned()
            .collect();
        // A lag the consumer cannot tell (an error) does not hold the task back.
        let fetchable = drained
            .iter()
            .any(|tp| !matches!(consumer.current_lag(tp), Ok(Some(0)) | Err(_)));
        if fetchable {
            return false;
        }
        // Once the wait is over the task keeps processing until every input has records
        // again (then `idle_since` is cleared above), rather than waiting before each record.
        let since = *self.idle_since.entry(id).or_insert_with(Instant::now);
        since.elapsed() >= max_idle
    }
}
