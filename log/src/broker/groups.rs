//! Consumer-group RPCs on the broker: join, sync, heartbeat, leave, offset commit and fetch,
//! and the listing and description of groups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Broker;
use crate::error::{Error, Result};
use crate::group::{CommittedOffset, GroupAssignment, GroupDescription};
use crate::topic::TopicPartition;

impl Broker {
    /// Partition counts of `topics`; a topic that does not exist (yet) counts 0.
    fn partition_counts(&self, topics: &BTreeSet<String>) -> Result<BTreeMap<String, i32>> {
        Ok(topics
            .iter()
            .map(|t| (t.clone(), self.partition_count(t).unwrap_or(0)))
            .collect())
    }

    /// JoinGroup: adds a member (a new one when `member_id` is `None`) subscribed to `topics`
    /// and rebalances; returns the member's id, the new generation and its partitions.
    pub fn join_group(
        &self,
        group: &str,
        member_id: Option<&str>,
        topics: &[String],
        session_timeout: Duration,
    ) -> Result<GroupAssignment> {
        self.check_open()?;
        if group.is_empty() {
            return Err(Error::InvalidConfig {
                key: "group.id",
                value: String::new(),
                reason: "a group id must not be empty".into(),
            });
        }
        let timeout = session_timeout.as_millis() as i64;
        self.inner
            .groups
            .join(group, member_id, topics, timeout, |t| {
                self.partition_counts(t)
            })
    }

    /// SyncGroup: the member's partitions in the group's current generation.
    pub fn sync_group(&self, group: &str, member_id: &str) -> Result<GroupAssignment> {
        self.check_open()?;
        self.inner.groups.sync(group, member_id)
    }

    /// Heartbeat: keeps the member's session alive; `RebalanceInProgress` when the group has
    /// moved past `generation` (the member then calls `sync_group`).
    pub fn heartbeat(&self, group: &str, member_id: &str, generation: i32) -> Result<()> {
        self.check_open()?;
        self.inner
            .groups
            .heartbeat(group, member_id, generation, |t| self.partition_counts(t))
    }

    /// LeaveGroup: removes the member and rebalances the others.
    pub fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        self.check_open()?;
        self.inner
            .groups
            .leave(group, member_id, |t| self.partition_counts(t))
    }

    /// Removes members whose session timed out (the maintenance thread calls this).
    pub(crate) fn expire_group_members(&self) -> usize {
        self.inner
            .groups
            .expire(crate::util::now_ms(), |t| self.partition_counts(t))
    }

    /// OffsetCommit: commits offsets for `group` outside any transaction. A member of a stale
    /// generation is refused; generation -1 with an empty member id is a standalone consumer.
    pub fn offset_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let offsets: Vec<CommittedOffset> = offsets
            .iter()
            .map(|(tp, offset)| (tp.clone(), *offset, String::new()))
            .collect();
        self.offset_commit_with_metadata(group, generation, member_id, &offsets)
    }

    /// [`offset_commit`](Self::offset_commit) with each offset's metadata string (Kafka's
    /// `committed_metadata`), returned by [`committed_metadata`](Self::committed_metadata).
    pub fn offset_commit_with_metadata(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &[CommittedOffset],
    ) -> Result<()> {
        self.offset_commit_with_instance(group, generation, member_id, None, offsets)
    }

    /// [`offset_commit_with_metadata`](Self::offset_commit_with_metadata) from a member
    /// that names its `group.instance.id` (OffsetCommit v7+): a classic static member that
    /// was replaced gets `FencedInstanceId`, as in Kafka.
    pub fn offset_commit_with_instance(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        offsets: &[CommittedOffset],
    ) -> Result<()> {
        self.check_open()?;
        self.inner
            .groups
            .with_generation(group, generation, member_id, group_instance_id, || {
                self.inner.offsets.commit(group, offsets)
            })
    }

    /// The metadata string committed with `group`'s offset of `partition` (empty when none
    /// was given, or nothing is committed).
    pub fn committed_metadata(&self, group: &str, partition: &TopicPartition) -> String {
        self.inner.offsets.metadata(group, partition)
    }

    /// OffsetFetch: `group`'s committed offsets for `partitions` (all when empty).
    /// `require_stable` makes a pending transactional commit `UnstableOffsetCommit`.
    pub fn offset_fetch(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        require_stable: bool,
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        self.check_open()?;
        self.inner.offsets.fetch(group, partitions, require_stable)
    }

    /// Groups with members or committed offsets, sorted.
    pub fn list_groups(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.inner.offsets.groups().into_iter().collect();
        names.extend(self.inner.groups.names());
        names.into_iter().collect()
    }

    /// A group's state, protocol, members and assignment (DescribeGroups), for embedded and
    /// classic groups alike. A group without members is `Empty` when it has committed
    /// offsets and `Dead` when the broker does not know it.
    pub fn describe_group(&self, group: &str) -> GroupDescription {
        self.inner
            .groups
            .describe(group)
            .unwrap_or_else(|| GroupDescription {
                group: group.to_string(),
                generation: 0,
                state: if self.inner.offsets.has_group(group) {
                    "Empty"
                } else {
                    "Dead"
                }
                .to_string(),
                protocol_type: String::new(),
                protocol: String::new(),
                leader: None,
                members: Vec::new(),
            })
    }
}
