//! What an instance does before its threads start: its id (kept in the state directory, so
//! a restarted instance keeps its transactional ids and fences its own zombie), and the
//! topics: source topics must exist, repartition topics are created with their writer's
//! partition count, co-partitioned sources must agree on theirs, changelog topics are
//! created compacted with one partition per task, and sink topics must exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Arc;

use sluice_log::cluster::{Cluster, InternalTopic, InternalTopicKind};

use crate::config::{AppConfig, DeserializationHandler};
use crate::error::{Error, Result};
use crate::state::{changelog_topic, ensure_changelog_topic};
use crate::topology::{Topology, TopologyError};

/// What the threads need to know about the topics.
#[derive(Debug, Clone)]
pub(crate) struct TopicPlan {
    /// Partition count of every topic a sink writes.
    pub sink_partitions: Arc<HashMap<String, i32>>,
    /// Per sub-topology: the topic whose partitions stand for its tasks in the group.
    pub lead_topics: Vec<String>,
    /// The repartition topics the app owns and purges (declared internal, app-named).
    pub repartition_topics: Arc<BTreeSet<String>>,
}

const INSTANCE_FILE: &str = "instance.id";

/// The instance id stored in `dir`, created on first use.
pub(crate) fn instance_id(dir: &Path) -> Result<String> {
    let path = dir.join(INSTANCE_FILE);
    let io = |what: &str, e: std::io::Error| Error::Config {
        key: "state.dir",
        reason: format!("cannot {what} {}: {e}", path.display()),
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", e)),
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    let id = format!("{:016x}", hasher.finish());
    let tmp = dir.join("instance.id.tmp");
    std::fs::write(&tmp, &id).map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename into", e))?;
    Ok(id)
}

fn count<C: Cluster>(cluster: &C, topic: &str) -> Result<Option<i32>> {
    cluster.partition_count(topic).map_err(Error::cluster)
}

/// Creates the repartition topic `topic` (if nobody did meanwhile); its partition count.
fn create_internal<C: Cluster>(cluster: &C, topic: &str, partitions: i32) -> Result<i32> {
    let spec = InternalTopic {
        partitions: Some(partitions),
        kind: InternalTopicKind::Repartition,
    };
    cluster
        .create_internal_topic(topic, &spec)
        .map_err(Error::cluster)?;
    count(cluster, topic)?.ok_or_else(|| Error::MissingTopic {
        topic: topic.to_string(),
        role: "repartition (just created)",
    })
}

/// Checks and creates the topics of `topology` for app `application_id`.
pub(crate) fn prepare_topics<C: Cluster>(
    cluster: &C,
    application_id: &str,
    topology: &Topology,
    config: &AppConfig,
) -> Result<TopicPlan> {
    let subs = topology.sub_topologies();
    let internal = topology.internal_topics();
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    for topic in topology.external_source_topics() {
        match count(cluster, &topic)? {
            Some(n) => {
                counts.insert(topic, n);
            }
            None => {
                return Err(Error::MissingTopic {
                    topic,
                    role: "source",
                });
            }
        }
    }
    // A repartition topic read beside external topics takes their partition count (the
    // subscriptions of a foreign-key join go to the right table's partitions).
    for topic in &internal {
        let beside = subs
            .iter()
            .filter(|s| s.source_topics.contains(topic))
            .flat_map(|s| &s.source_topics)
            .filter(|t| !internal.contains(*t))
            .filter_map(|t| counts.get(t).copied())
            .max();
        if let Some(partitions) = beside {
            let n = match count(cluster, topic)? {
                Some(n) => n,
                None => create_internal(cluster, topic, partitions)?,
            };
            counts.insert(topic.clone(), n);
        }
    }
    // Other repartition topics take their writer's partition count; writers may come later
    // in the topology, so resolve until nothing changes.
    let mut task_counts: Vec<Option<i32>> = vec![None; subs.len()];
    for _ in 0..=subs.len() {
        for (i, sub) in subs.iter().enumerate() {
            if task_counts[i].is_some() {
                continue;
            }
            let known: Option<Vec<(String, i32)>> = sub
                .source_topics
                .iter()
                .map(|t| counts.get(t).map(|&n| (t.clone(), n)))
                .collect();
            let Some(known) = known else { continue };
            let first = known.first().map_or(1, |(_, n)| *n);
            if known.iter().any(|(_, n)| *n != first) {
                let listed: Vec<String> = known.iter().map(|(t, n)| format!("{t}={n}")).collect();
                return Err(TopologyError::CoPartitioning {
                    sub_topology: i,
                    counts: listed.join(", "),
                }
                .into());
            }
            task_counts[i] = Some(first);
            for topic in sub.sink_topics.iter().filter(|t| internal.contains(*t)) {
                let n = match count(cluster, topic)? {
                    Some(n) => n,
                    None => create_internal(cluster, topic, first)?,
                };
                counts.insert(topic.clone(), n);
            }
        }
    }
    let mut lead_topics = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        let tasks = task_counts[i].ok_or_else(|| {
            Error::IllegalState(format!(
                "cannot tell how many partitions the repartition topics of sub-topology {i} need"
            ))
        })?;
        for store in &sub.stores {
            ensure_changelog_topic(cluster, &changelog_topic(application_id, store), tasks)?;
        }
        let lead = sub
            .source_topics
            .iter()
            .next()
            .cloned()
            .ok_or_else(|| Error::IllegalState(format!("sub-topology {i} has no source")))?;
        lead_topics.push(lead);
    }
    let mut sink_partitions = HashMap::new();
    for topic in subs.iter().flat_map(|s| &s.sink_topics) {
        match count(cluster, topic)? {
            Some(n) => {
                sink_partitions.insert(topic.clone(), n);
            }
            None => {
                return Err(Error::MissingTopic {
                    topic: topic.clone(),
                    role: "sink",
                });
            }
        }
    }
    if let DeserializationHandler::DeadLetter { topic } = &config.deserialization_handler {
        let spec = InternalTopic {
            partitions: None,
            kind: InternalTopicKind::DeadLetter,
        };
        cluster
            .create_internal_topic(topic, &spec)
            .map_err(Error::cluster)?;
    }
    Ok(TopicPlan {
        sink_partitions: Arc::new(sink_partitions),
        lead_topics,
        repartition_topics: Arc::new(
            internal
                .into_iter()
                .filter(|t| topology.owned_internal_topics().contains(t))
                .collect(),
        ),
    })
}
