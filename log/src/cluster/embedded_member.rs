//! The embedded group member: the broker's group RPCs as a stream thread uses them. The
//! broker assigns the lead topics' partitions (sticky); the others of each set follow.

use std::time::Duration;

use super::{Assignment, GroupEvent, GroupMember, GroupSpec};
use crate::broker::Broker;
use crate::client::GroupMetadata;
use crate::error::Error;
use crate::topic::TopicPartition;

/// A member of a group on the embedded broker.
#[derive(Debug)]
pub struct EmbeddedMember {
    broker: Broker,
    spec: GroupSpec,
    lead_topics: Vec<String>,
    /// Member id and generation, once joined.
    joined: Option<(String, i32)>,
}

impl EmbeddedMember {
    /// A member of `spec.group` that joins at its first `poll_group`.
    pub fn new(broker: &Broker, spec: &GroupSpec) -> Self {
        Self {
            broker: broker.clone(),
            lead_topics: spec
                .co_partitioned
                .iter()
                .filter_map(|set| set.first().cloned())
                .collect(),
            spec: spec.clone(),
            joined: None,
        }
    }

    /// The event of a new generation's assignment. It is continuous when this member kept
    /// its id and the generation is the next one: the embedded group rebalances every
    /// current member at once, so a member that kept its id was in every generation.
    fn assigned(&mut self, answer: crate::group::GroupAssignment) -> GroupEvent {
        let continuous = self.joined.as_ref().is_some_and(|(member_id, generation)| {
            *member_id == answer.member_id && answer.generation == generation + 1
        });
        let assignment = Assignment::from_lead_partitions(&self.spec, &answer.partitions)
            .with_continuous(continuous);
        self.joined = Some((answer.member_id, answer.generation));
        GroupEvent::Assigned(assignment)
    }

    fn join(&mut self) -> Result<GroupEvent, Error> {
        let answer = self.broker.join_group(
            &self.spec.group,
            None,
            &self.lead_topics,
            self.spec.session_timeout,
        )?;
        Ok(self.assigned(answer))
    }
}

impl GroupMember for EmbeddedMember {
    type Error = Error;
    type Metadata = GroupMetadata;

    fn poll_group(&mut self, _timeout: Duration) -> Result<GroupEvent, Error> {
        let Some((member_id, generation)) = self.joined.clone() else {
            return self.join();
        };
        match self
            .broker
            .heartbeat(&self.spec.group, &member_id, generation)
        {
            Ok(()) => Ok(GroupEvent::Unchanged),
            Err(Error::RebalanceInProgress { .. }) => {
                match self.broker.sync_group(&self.spec.group, &member_id) {
                    Ok(answer) => Ok(self.assigned(answer)),
                    // The session ran out between the heartbeat and the sync.
                    Err(Error::UnknownMemberId { .. }) => self.join(),
                    Err(e) => Err(e),
                }
            }
            Err(Error::UnknownMemberId { .. }) => {
                tracing::warn!(group = %self.spec.group, member = %member_id, "session expired; rejoining the group");
                self.join()
            }
            Err(e) => Err(e),
        }
    }

    fn metadata(&self) -> Result<GroupMetadata, Error> {
        let (member_id, generation) = self.joined.clone().ok_or_else(|| {
            Error::IllegalState(format!("not yet a member of group {}", self.spec.group))
        })?;
        Ok(GroupMetadata {
            group_id: self.spec.group.clone(),
            generation,
            member_id,
        })
    }

    fn committed(
        &mut self,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, Error> {
        self.broker.offset_fetch(&self.spec.group, tps, true)
    }

    fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), Error> {
        let metadata = self.metadata()?;
        self.broker.offset_commit(
            &self.spec.group,
            metadata.generation,
            &metadata.member_id,
            offsets,
        )
    }

    fn leave(self) -> Result<(), Error> {
        match self.joined {
            Some((member_id, _)) => self.broker.leave_group(&self.spec.group, &member_id),
            None => Ok(()),
        }
    }
}
