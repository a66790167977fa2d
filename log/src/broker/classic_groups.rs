//! Kafka's classic consumer-group RPCs on the broker (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), for remote Kafka clients that compute the assignment themselves, plus the
//! group administration both kinds of groups share (detailed listing, DeleteGroups).
//!
//! JoinGroup and SyncGroup block the calling thread until the group answers (the join
//! barrier, the leader's assignment); a server calls them from a blocking pool.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::Broker;
use crate::error::{Error, Result};
use crate::group::{ClassicJoinRequest, ClassicJoinResponse, ClassicSyncResponse, SyncArgs};

impl Broker {
    /// JoinGroup (classic protocol). Blocks until the join barrier completes: every known
    /// member rejoined, or the rebalance timeout passed (members that did not rejoin are
    /// removed); a group that was empty first waits `group_initial_rebalance_delay`.
    ///
    /// Errors as Kafka's: `InvalidGroupId`, `InvalidSessionTimeout`, `UnknownMemberId`,
    /// `FencedInstanceId`, `MemberIdRequired` (carrying the id to rejoin with),
    /// `InconsistentGroupProtocol` (another protocol type, no common protocol, or a group of
    /// embedded consumers with members).
    pub fn classic_join_group(&self, req: ClassicJoinRequest) -> Result<ClassicJoinResponse> {
        self.check_open()?;
        if req.group.is_empty() {
            return Err(Error::InvalidGroupId { group: req.group });
        }
        let config = &self.inner.config;
        let (min, max) = (
            config.group_min_session_timeout,
            config.group_max_session_timeout,
        );
        if req.session_timeout < min || req.session_timeout > max {
            return Err(Error::InvalidSessionTimeout {
                group: req.group,
                member_id: req.member_id,
                millis: req.session_timeout.as_millis() as u64,
                min: min.as_millis() as u64,
                max: max.as_millis() as u64,
            });
        }
        self.inner
            .groups
            .classic_join(&req, config.group_initial_rebalance_delay)
    }

    /// SyncGroup (classic protocol). The leader sends every member's assignment and is
    /// answered at once; a follower blocks until the leader's call arrives, or gets
    /// `RebalanceInProgress` when a rebalance starts first. Also `UnknownMemberId`,
    /// `FencedInstanceId`, `IllegalGeneration`, `InconsistentGroupProtocol` (a protocol type
    /// or name other than the group's).
    #[allow(clippy::too_many_arguments)]
    pub fn classic_sync_group(
        &self,
        group: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<ClassicSyncResponse> {
        self.check_open()?;
        self.inner.groups.classic_sync(
            group,
            SyncArgs {
                member_id,
                group_instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
            },
        )
    }

    /// Heartbeat (classic protocol): renews the member's session. `RebalanceInProgress` while
    /// the group prepares a rebalance (the member must rejoin), `IllegalGeneration`,
    /// `UnknownMemberId`, `FencedInstanceId`.
    pub fn classic_heartbeat(
        &self,
        group: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
    ) -> Result<()> {
        self.check_open()?;
        self.inner
            .groups
            .classic_heartbeat(group, member_id, group_instance_id, generation)
    }

    /// LeaveGroup (classic protocol, batched as KIP-345): each `(member id, instance id)`
    /// leaves (an empty member id with an instance id names the static member); the rest of
    /// the group rebalances. One result per member, in order.
    pub fn classic_leave_group(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<()>> {
        if let Err(e) = self.check_open() {
            let closed = e.to_string();
            return members
                .iter()
                .map(|_| Err(Error::IllegalState(closed.clone())))
                .collect();
        }
        self.inner.groups.classic_leave(group, members)
    }

    /// ListGroups with each group's state and protocol type, sorted by name: embedded
    /// groups with members, every classic group, and groups known only by their committed
    /// offsets (`Empty`, no protocol type).
    pub fn list_groups_detailed(&self) -> Vec<(String, String, String)> {
        let mut groups: BTreeMap<String, (String, String)> = self
            .inner
            .offsets
            .groups()
            .into_iter()
            .map(|g| (g, ("Empty".to_string(), String::new())))
            .collect();
        for (name, state, protocol_type) in self.inner.groups.names_detailed() {
            groups.insert(name, (state, protocol_type));
        }
        groups
            .into_iter()
            .map(|(name, (state, protocol_type))| (name, state, protocol_type))
            .collect()
    }

    /// DeleteGroups: forgets each group and its committed offsets (tombstones in
    /// `__consumer_offsets`, so a restart does not bring them back). `NonEmptyGroup` while it
    /// has members, `GroupIdNotFound` when the broker does not know it. One result per
    /// group, in order.
    pub fn delete_groups(&self, groups: &[&str]) -> Vec<(String, Result<()>)> {
        groups
            .iter()
            .map(|&group| {
                let result = self.check_open().and_then(|()| {
                    let offsets = &self.inner.offsets;
                    self.inner
                        .groups
                        .delete(group, offsets.has_group(group), || {
                            offsets.delete_group(group)
                        })
                });
                (group.to_string(), result)
            })
            .collect()
    }
}
