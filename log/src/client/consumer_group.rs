//! The consumer's group mode: `subscribe` joins a consumer group, the broker assigns
//! partitions (sticky), `poll` heartbeats and follows rebalances, calling the
//! [`RebalanceListener`] with the partitions revoked and assigned; positions of newly
//! assigned partitions start from the group's committed offsets. Offsets are committed with
//! `commit_sync`, or inside a producer's transaction with [`GroupMetadata`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::consumer::Consumer;
use crate::error::{Error, Result};
use crate::topic::TopicPartition;
use crate::txn::IsolationLevel;

/// Called when the group's assignment changes. Both hooks default to doing nothing.
pub trait RebalanceListener: Send {
    /// Partitions taken away: commit what was processed of them now.
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions given: their positions are the group's committed offsets.
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
}

impl RebalanceListener for () {}

/// Who the consumer is in its group, for `send_offsets_to_transaction` (Kafka's
/// `ConsumerGroupMetadata`): the broker refuses offsets from an older generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// The group.
    pub group_id: String,
    /// The generation the member is in (-1 for a consumer using `assign`).
    pub generation: i32,
    /// The member id (empty for a consumer using `assign`).
    pub member_id: String,
}

/// The consumer's membership while subscribed.
pub(super) struct Membership {
    group_id: String,
    member_id: String,
    generation: i32,
    topics: Vec<String>,
    listener: Box<dyn RebalanceListener>,
    last_heartbeat: Instant,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group_id", &self.group_id)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// How long a newly assigned partition waits for a pending transactional offset commit.
const STABLE_OFFSET_WAIT: Duration = Duration::from_secs(60);

impl Consumer {
    fn group_id(&self) -> Result<String> {
        self.config.group_id.clone().ok_or_else(|| {
            Error::IllegalState("set group_id in the consumer config to use a group".into())
        })
    }

    /// Joins the group as a member subscribed to `topics`; the broker assigns the
    /// partitions. `listener` hears of every later change.
    pub fn subscribe<L: RebalanceListener + 'static>(
        &mut self,
        topics: &[&str],
        listener: L,
    ) -> Result<()> {
        let group_id = self.group_id()?;
        if self.membership.is_some() {
            self.unsubscribe()?;
        }
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let joined =
            self.broker
                .join_group(&group_id, None, &topics, self.config.session_timeout)?;
        self.set_assignment(Vec::new())?;
        self.membership = Some(Membership {
            group_id,
            member_id: joined.member_id,
            generation: joined.generation,
            topics,
            listener: Box::new(listener),
            last_heartbeat: Instant::now(),
        });
        self.apply(joined.partitions)
    }

    /// Leaves the group (revoking every partition).
    pub fn unsubscribe(&mut self) -> Result<()> {
        let Some(mut m) = self.membership.take() else {
            return Ok(());
        };
        let revoked = self.assignment();
        m.listener.on_partitions_revoked(&revoked);
        self.set_assignment(Vec::new())?;
        match self.broker.leave_group(&m.group_id, &m.member_id) {
            Ok(()) | Err(Error::UnknownMemberId { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves to a new assignment: revoked partitions first, then positions of the new ones
    /// from the committed offsets, then the listener.
    fn apply(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        let old: BTreeSet<TopicPartition> = self.assignment().into_iter().collect();
        let new: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        let revoked: Vec<TopicPartition> = old.difference(&new).cloned().collect();
        let added: Vec<TopicPartition> = new.difference(&old).cloned().collect();
        if let Some(m) = self.membership.as_mut()
            && !revoked.is_empty()
        {
            m.listener.on_partitions_revoked(&revoked);
        }
        self.set_assignment(partitions)?;
        for tp in &revoked {
            self.positions.remove(tp);
        }
        if !added.is_empty() {
            let committed = self.fetch_stable(&added)?;
            for (tp, offset) in committed {
                match offset {
                    Some(offset) => {
                        self.positions.insert(tp, offset);
                    }
                    None => {
                        self.positions.remove(&tp);
                    }
                }
            }
        }
        if let Some(m) = self.membership.as_mut()
            && !added.is_empty()
        {
            m.listener.on_partitions_assigned(&added);
        }
        Ok(())
    }

    /// The group's committed offsets for `partitions`; under read_committed it waits while a
    /// transactional commit for them is pending, as Kafka's consumer does.
    fn fetch_stable(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let group = self.group_id()?;
        let stable = self.config.isolation == IsolationLevel::ReadCommitted;
        let deadline = Instant::now() + STABLE_OFFSET_WAIT;
        loop {
            match self.broker.offset_fetch(&group, partitions, stable) {
                Err(Error::UnstableOffsetCommit { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    /// Sends a heartbeat when one is due and follows a rebalance if the group moved on.
    pub(super) fn maybe_heartbeat(&mut self) -> Result<()> {
        let Some(m) = self.membership.as_mut() else {
            return Ok(());
        };
        if m.last_heartbeat.elapsed() < self.config.heartbeat_interval {
            return Ok(());
        }
        m.last_heartbeat = Instant::now();
        let (group, member, generation) = (m.group_id.clone(), m.member_id.clone(), m.generation);
        match self.broker.heartbeat(&group, &member, generation) {
            Ok(()) => Ok(()),
            Err(Error::RebalanceInProgress { .. }) => {
                let synced = self.broker.sync_group(&group, &member)?;
                if let Some(m) = self.membership.as_mut() {
                    m.generation = synced.generation;
                }
                self.apply(synced.partitions)
            }
            Err(Error::UnknownMemberId { .. }) => {
                tracing::warn!(group, member, "session expired; rejoining the group");
                let topics = self
                    .membership
                    .as_ref()
                    .map(|m| m.topics.clone())
                    .unwrap_or_default();
                let joined =
                    self.broker
                        .join_group(&group, None, &topics, self.config.session_timeout)?;
                if let Some(m) = self.membership.as_mut() {
                    m.member_id = joined.member_id;
                    m.generation = joined.generation;
                }
                self.apply(joined.partitions)
            }
            Err(e) => Err(e),
        }
    }

    /// Commits the current positions of every assigned partition for the group.
    pub fn commit_sync(&mut self) -> Result<()> {
        let mut offsets = Vec::new();
        for tp in self.assignment() {
            offsets.push((tp.clone(), self.position(&tp)?));
        }
        self.commit_offsets(&offsets)
    }

    /// Commits the given offsets (the next offset to read, per partition) for the group.
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let meta = self.group_metadata()?;
        self.broker
            .offset_commit(&meta.group_id, meta.generation, &meta.member_id, offsets)
    }

    /// The group's committed offsets for `partitions`.
    pub fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let group = self.group_id()?;
        self.broker.offset_fetch(&group, partitions, false)
    }

    /// Who this consumer is in its group, for `Producer::send_offsets_to_transaction`.
    pub fn group_metadata(&self) -> Result<GroupMetadata> {
        let group_id = self.group_id()?;
        Ok(match &self.membership {
            Some(m) => GroupMetadata {
                group_id,
                generation: m.generation,
                member_id: m.member_id.clone(),
            },
            None => GroupMetadata {
                group_id,
                generation: -1,
                member_id: String::new(),
            },
        })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(m) = self.membership.take() {
            let _ = self.broker.leave_group(&m.group_id, &m.member_id);
        }
    }
}
