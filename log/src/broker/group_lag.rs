//! A consumer group's lag: per partition, how far its committed offset is behind the log end
//! (what `kafka-consumer-groups.sh --describe` shows as LAG). "Has this app or group caught
//! up with its input?" is a question every test, example and operator asks; these answer it
//! in one call.

use std::collections::{BTreeMap, BTreeSet};

use super::Broker;
use crate::error::{Error, Result};
use crate::topic::TopicPartition;

/// One partition's position for a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset, if it has one.
    pub committed: Option<i64>,
    /// The partition's first offset still in the log.
    pub log_start: i64,
    /// The partition's next offset to be written.
    pub log_end: i64,
}

impl PartitionLag {
    /// Records the group has yet to commit past: the log end minus the committed offset, or
    /// minus the log start when nothing is committed. Never negative.
    pub fn lag(&self) -> i64 {
        (self.log_end - self.committed.unwrap_or(self.log_start)).max(0)
    }
}

impl Broker {
    /// The lag of `group` on every partition of every topic it has committed offsets on,
    /// sorted by topic and partition. A group that never committed has none; a topic deleted
    /// since the group committed is left out.
    pub fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        let topics: BTreeSet<String> = self
            .offset_fetch(group, &[], false)?
            .into_iter()
            .map(|(tp, _)| tp.topic)
            .collect();
        let mut lags = Vec::new();
        for topic in &topics {
            match self.topic_lag(group, topic) {
                Ok(topic_lags) => lags.extend(topic_lags),
                Err(Error::UnknownTopic { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(lags)
    }

    /// The lag of `group` on every partition of `topics`, committed or not, in the order
    /// given. An unknown topic is an error.
    pub fn group_lag_on(&self, group: &str, topics: &[&str]) -> Result<Vec<PartitionLag>> {
        let mut lags = Vec::new();
        for topic in topics {
            lags.extend(self.topic_lag(group, topic)?);
        }
        Ok(lags)
    }

    /// The lag of `group` on each partition of one topic.
    fn topic_lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>> {
        let metadata = self.topic_metadata(topic)?;
        let partitions: Vec<TopicPartition> = metadata
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition))
            .collect();
        let committed: BTreeMap<i32, Option<i64>> = self
            .offset_fetch(group, &partitions, false)?
            .into_iter()
            .map(|(tp, offset)| (tp.partition, offset))
            .collect();
        Ok(metadata
            .partitions
            .iter()
            .zip(partitions)
            .map(|(info, partition)| PartitionLag {
                committed: committed.get(&info.partition).copied().flatten(),
                partition,
                log_start: info.log_start_offset,
                log_end: info.log_end_offset,
            })
            .collect())
    }

    /// Whether `group` has committed every partition of `topics` to its end.
    pub fn group_caught_up(&self, group: &str, topics: &[&str]) -> Result<bool> {
        Ok(self
            .group_lag_on(group, topics)?
            .iter()
            .all(|l| l.lag() == 0))
    }
}
