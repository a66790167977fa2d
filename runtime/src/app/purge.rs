//! Purging repartition topics (Kafka Streams' KIP-204): the ones the app owns (declared
//! internal, named after the app; never a topic the user named) have no time retention (a
//! record with an old timestamp must not be deleted unread), so after a commit, every
//! `repartition_purge_interval`, a stream thread deletes (DeleteRecords) what its tasks
//! have committed of them. The committed offset is where any owner resumes, so nothing
//! below it is read again. A failed delete is logged and tried again next time.

use std::collections::HashMap;
use std::time::Instant;

use sluice_log::TopicPartition;
use sluice_log::cluster::Cluster;

use super::task_manager::TaskManager;
use super::thread::ThreadContext;

/// When a thread last purged, and up to where, per repartition partition.
#[derive(Debug)]
pub(super) struct RepartitionPurger {
    last: Instant,
    purged: HashMap<TopicPartition, i64>,
}

impl RepartitionPurger {
    pub fn new() -> Self {
        Self {
            last: Instant::now(),
            purged: HashMap::new(),
        }
    }

    /// Right after a commit: if the interval has passed, deletes every repartition input
    /// partition of `tasks` up to its position (what was just committed).
    pub fn after_commit<C: Cluster>(&mut self, ctx: &ThreadContext<C>, tasks: &TaskManager) {
        if ctx.plan.repartition_topics.is_empty()
            || self.last.elapsed() < ctx.config.repartition_purge_interval
        {
            return;
        }
        self.last = Instant::now();
        for task in tasks.iter() {
            for (tp, &position) in &task.positions {
                if !ctx.plan.repartition_topics.contains(&tp.topic)
                    || self.purged.get(tp).is_some_and(|&done| done >= position)
                {
                    continue;
                }
                match ctx.cluster.delete_records(tp, position) {
                    Ok(()) => {
                        tracing::debug!(topic = %tp.topic, partition = tp.partition, before = position, "purged repartition records");
                        self.purged.insert(tp.clone(), position);
                    }
                    Err(e) => {
                        tracing::warn!(topic = %tp.topic, partition = tp.partition, before = position, error = %e, "purging repartition records failed; trying again later");
                    }
                }
            }
        }
    }
}
