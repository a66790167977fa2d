//! Global stores (Kafka Streams' global tables): every instance keeps every partition of
//! each global store's topic in one column family of its RocksDB. `GlobalUpdater` reads
//! the topics read_committed from the positions checkpointed with the data (so a restart
//! resumes where the last applied batch ended, and nothing is applied twice), applies each
//! poll in one `WriteBatch` with the new positions, and runs in two phases: `bootstrap`
//! (in `App::start`, before any stream thread) reads up to the end the topics had when it
//! began; then `run` keeps following them on a thread of its own until the app stops.
//!
//! A global store is not part of the tasks' transactions: a task sees what the updater has
//! applied so far (as in Kafka Streams).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_log::TopicPartition;
use sluice_log::cluster::{Cluster, ClusterConsumer, ConsumerSpec, OffsetAt};

use super::shared::Shared;
use crate::config::AppConfig;
use crate::error::{Error, Result};
use crate::state::{StateDb, StoreName};
use crate::topology::Topology;

/// One global store's partition: its column family and checkpoint name.
#[derive(Debug, Clone)]
struct Target {
    family: String,
    checkpoint: StoreName,
}

/// Keeps the instance's global stores up to date.
pub(crate) struct GlobalUpdater<C: Cluster> {
    db: StateDb,
    consumer: C::Consumer,
    targets: BTreeMap<TopicPartition, Vec<Target>>,
    positions: BTreeMap<TopicPartition, i64>,
}

impl<C: Cluster> std::fmt::Debug for GlobalUpdater<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalUpdater")
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl<C: Cluster> GlobalUpdater<C> {
    /// Fills the global stores of `topology` up to their topics' current ends; `None` when
    /// there are none.
    pub fn bootstrap(
        db: &StateDb,
        cluster: &C,
        topology: &Topology,
        config: &AppConfig,
    ) -> Result<Option<Self>> {
        let stores = topology.global_stores();
        if stores.is_empty() {
            return Ok(None);
        }
        let mut targets: BTreeMap<TopicPartition, Vec<Target>> = BTreeMap::new();
        for (store, topic) in &stores {
            let partitions = cluster
                .partition_count(topic)
                .map_err(Error::cluster)?
                .ok_or_else(|| Error::MissingTopic {
                    topic: topic.clone(),
                    role: "global store",
                })?;
            tracing::debug!(store, topic, partitions, "global store");
            let family = StoreName::global(store.as_str()).column_family();
            db.ensure_family(&family)?;
            for partition in 0..partitions {
                targets
                    .entry(TopicPartition::new(topic.clone(), partition))
                    .or_default()
                    .push(Target {
                        family: family.clone(),
                        checkpoint: StoreName::global_position(store, partition),
                    });
            }
        }
        let spec = ConsumerSpec::read_committed("global-stores")
            .with_max_poll_records(config.restore_batch);
        let mut consumer = cluster.consumer(&spec).map_err(Error::cluster)?;
        let mut positions = BTreeMap::new();
        let mut wiped = BTreeSet::new();
        for (tp, stores) in &targets {
            let log_start = cluster
                .list_offset(tp, OffsetAt::Earliest)
                .map_err(Error::cluster)?;
            // Stores sharing a topic were filled together; the least advanced one leads.
            let mut from = i64::MAX;
            for target in stores {
                from = from.min(db.checkpoint(&target.checkpoint)?.unwrap_or(0));
            }
            if from > 0 && from < log_start {
                // Records it never read are gone (retention, compaction): start over, as
                // Kafka Streams does, from what the topic still holds.
                for target in stores {
                    if wiped.insert(target.family.clone()) {
                        tracing::warn!(family = %target.family, topic = %tp.topic, partition = tp.partition, checkpoint = from, log_start, "a global store fell behind its topic's retention; rebuilding it");
                        wipe(db, &target.family)?;
                    }
                }
            }
            let from = from.max(log_start);
            positions.insert(tp.clone(), from);
        }
        let start: Vec<(TopicPartition, i64)> =
            positions.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        consumer.assign(&start).map_err(Error::cluster)?;
        let mut updater = Self {
            db: db.clone(),
            consumer,
            targets,
            positions,
        };
        updater.catch_up(cluster, config.transaction_timeout * 3)?;
        Ok(Some(updater))
    }

    /// Reads until every partition reaches the end it has now.
    fn catch_up(&mut self, cluster: &C, open_txn_wait: Duration) -> Result<()> {
        let mut ends = BTreeMap::new();
        for tp in self.targets.keys() {
            let end = cluster
                .list_offset(tp, OffsetAt::Latest)
                .map_err(Error::cluster)?;
            ends.insert(tp.clone(), end);
        }
        let mut progress_at = Instant::now();
        let behind = |positions: &BTreeMap<TopicPartition, i64>| {
            ends.iter()
                .any(|(tp, end)| positions.get(tp).copied().unwrap_or(0) < *end)
        };
        while behind(&self.positions) {
            if self.step(Duration::from_millis(50))? {
                progress_at = Instant::now();
            } else if progress_at.elapsed() >= open_txn_wait {
                let (tp, end) = ends
                    .iter()
                    .find(|(tp, end)| self.positions.get(*tp).copied().unwrap_or(0) < **end)
                    .map(|(tp, end)| (tp.clone(), *end))
                    .unwrap_or_else(|| (TopicPartition::new("", 0), 0));
                return Err(Error::RestoreStalled {
                    store: "(global stores)".into(),
                    changelog: tp.topic.clone(),
                    partition: tp.partition,
                    position: self.positions.get(&tp).copied().unwrap_or(0),
                    end,
                });
            }
        }
        tracing::info!(positions = ?self.positions, "global stores are up to date");
        Ok(())
    }

    /// Polls once and applies what came; true if any position moved.
    fn step(&mut self, timeout: Duration) -> Result<bool> {
        let records = self.consumer.poll(timeout).map_err(Error::cluster)?;
        let mut overlay = self.db.overlay();
        for record in &records {
            let tp = TopicPartition::new(record.topic.to_string(), record.partition);
            let Some(key) = record.key.as_deref() else {
                tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, "a record without a key cannot update a global store; skipped");
                continue;
            };
            for target in self.targets.get(&tp).into_iter().flatten() {
                match &record.value {
                    Some(value) => overlay.put(&target.family, key.to_vec(), value.to_vec()),
                    None => overlay.delete(&target.family, key.to_vec()),
                }
            }
        }
        let mut checkpoints = Vec::new();
        let mut moved = false;
        for (tp, stores) in &self.targets {
            // Markers and aborted records move the position without being returned.
            let position = self.consumer.position(tp).map_err(Error::cluster)?;
            if self.positions.get(tp) != Some(&position) {
                moved = true;
                self.positions.insert(tp.clone(), position);
            }
            checkpoints.extend(stores.iter().map(|t| (t.checkpoint.clone(), position)));
        }
        if moved || !records.is_empty() {
            self.db.apply(overlay, &checkpoints)?;
        }
        Ok(moved)
    }

    /// Follows the topics until the app stops (a failure stops the app).
    pub fn run(mut self, shared: Arc<Shared>) {
        while !shared.shutdown_requested() && !shared.crashed() {
            if let Err(e) = self.step(Duration::from_millis(100)) {
                shared.fail(e);
                return;
            }
        }
    }
}

/// Deletes every entry of the column family `family` (a global store being rebuilt).
fn wipe(db: &StateDb, family: &str) -> Result<()> {
    let mut overlay = db.overlay();
    let all = db.scan_raw(
        family,
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
    )?;
    for entry in all {
        overlay.delete(family, entry?.0.into_vec());
    }
    db.apply(overlay, &[])
}
