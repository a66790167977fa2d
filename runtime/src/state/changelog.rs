//! The write side of changelogs: each store of each task has a changelog partition,
//! `<application id>-<store>-changelog` (compacted, one partition per task), and every
//! committed overlay write goes there in the same transaction as the task's output and
//! input offsets. [`changelog_records`] turns a task's overlay into those records;
//! [`ensure_changelog_topic`] creates the topic.

use bytes::Bytes;
use sluice_log::ProducerRecord;
use sluice_log::cluster::{Cluster, InternalTopic, InternalTopicKind};

use super::{StoreName, WriteOverlay};
use crate::error::{Error, Result};

/// The changelog topic of `store` in application `application_id`.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// Creates the (compacted) changelog topic with `partitions` partitions unless it exists.
pub fn ensure_changelog_topic<C: Cluster>(cluster: &C, topic: &str, partitions: i32) -> Result<()> {
    let spec = InternalTopic {
        partitions: Some(partitions),
        kind: InternalTopicKind::Changelog,
    };
    cluster
        .create_internal_topic(topic, &spec)
        .map_err(Error::cluster)
}

/// The changelog records of `name`'s writes in `overlay`, in key order, for the task's
/// transactional producer: key = the store key bytes, value = the value bytes, a delete is a
/// tombstone. They go to partition `name.partition` of `topic`.
pub fn changelog_records(
    overlay: &WriteOverlay,
    name: &StoreName,
    topic: &str,
) -> Vec<ProducerRecord> {
    let family = name.column_family();
    overlay
        .range(
            &family,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
        )
        .map(|(key, value)| {
            let key = Bytes::copy_from_slice(key);
            let record = match value {
                Some(v) => ProducerRecord::new(topic, Bytes::copy_from_slice(v)).with_key(key),
                None => ProducerRecord::tombstone(topic, key),
            };
            record.with_partition(name.partition)
        })
        .collect()
}
