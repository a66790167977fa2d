//! Kafka's classic consumer-group RPCs on the broker (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), for remote Kafka clients that compute the assignment themselves, plus the
//! group administration both kinds of groups share (detailed listing, DeleteGroups).
//!
//! JoinGroup and SyncGroup may have to wait (the join barrier, the leader's assignment):
//! [`Broker::begin_classic_join_group`] and [`Broker::begin_classic_sync_group`] return at
//! once with a [`ClassicReply`], a future a server awaits without holding a thread (or
//! blocks on with `wait`); [`Broker::classic_join_group`] and
//! [`Broker::classic_sync_group`] block the calling thread. The groups' timers (join
//! barriers, pending syncs, sessions, forgetting idle groups) run on one timer thread per
//! broker, started with the first JoinGroup and ended by [`Broker::close`], which also
//! answers every parked call `Closed`.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Broker, Inner};
use crate::error::{Error, Result};
use crate::group::{
    ClassicJoinRequest, ClassicJoinResponse, ClassicReply, ClassicSyncResponse, ClassicTimer,
    SyncArgs,
};

/// The longest the timer thread sleeps without a deadline (it then looks again).
const TIMER_IDLE: Duration = Duration::from_secs(1);

impl Broker {
    /// JoinGroup (classic protocol). Blocks until the join barrier completes; see
    /// [`begin_classic_join_group`](Self::begin_classic_join_group).
    pub fn classic_join_group(&self, req: ClassicJoinRequest) -> Result<ClassicJoinResponse> {
        self.begin_classic_join_group(req).wait()
    }

    /// JoinGroup (classic protocol), answered when the join barrier completes: every known
    /// member rejoined, or the rebalance timeout passed (members that did not rejoin are
    /// removed); a group that was empty first waits `group_initial_rebalance_delay`.
    ///
    /// Errors as Kafka's: `InvalidGroupId`, `InvalidSessionTimeout`, `UnknownMemberId`,
    /// `FencedInstanceId`, `MemberIdRequired` (carrying the id to rejoin with),
    /// `InconsistentGroupProtocol` (another protocol type, no common protocol, more than
    /// [`MAX_CLASSIC_PROTOCOLS`](crate::group::MAX_CLASSIC_PROTOCOLS) protocols or
    /// [`MAX_CLASSIC_PROTOCOL_BYTES`](crate::group::MAX_CLASSIC_PROTOCOL_BYTES) of them,
    /// or a group of embedded consumers with members); `Closed` once the broker closes,
    /// parked calls included.
    pub fn begin_classic_join_group(
        &self,
        req: ClassicJoinRequest,
    ) -> ClassicReply<ClassicJoinResponse> {
        match self.check_join(&req) {
            Ok(()) => {
                self.start_group_timer();
                self.inner
                    .groups
                    .classic_join(&req, self.inner.config.group_initial_rebalance_delay)
            }
            Err(e) => ClassicReply::ready(Err(e)),
        }
    }

    fn check_join(&self, req: &ClassicJoinRequest) -> Result<()> {
        self.check_open()?;
        if req.group.is_empty() {
            return Err(Error::InvalidGroupId {
                group: req.group.clone(),
            });
        }
        let config = &self.inner.config;
        let (min, max) = (
            config.group_min_session_timeout,
            config.group_max_session_timeout,
        );
        if req.session_timeout < min || req.session_timeout > max {
            return Err(Error::InvalidSessionTimeout {
                group: req.group.clone(),
                member_id: req.member_id.clone(),
                millis: req.session_timeout.as_millis() as u64,
                min: min.as_millis() as u64,
                max: max.as_millis() as u64,
            });
        }
        req.check_protocols()
    }

    /// SyncGroup (classic protocol). Blocks until answered; see
    /// [`begin_classic_sync_group`](Self::begin_classic_sync_group).
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
        self.begin_classic_sync_group(
            group,
            member_id,
            group_instance_id,
            generation,
            protocol_type,
            protocol_name,
            assignments,
        )
        .wait()
    }

    /// SyncGroup (classic protocol). The leader sends every member's assignment and is
    /// answered at once; a follower's answer comes when the leader's call arrives, or is
    /// `RebalanceInProgress` when a rebalance starts first. Also `UnknownMemberId`,
    /// `FencedInstanceId`, `IllegalGeneration`, `InconsistentGroupProtocol` (a protocol type
    /// or name other than the group's), `Closed` once the broker closes.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_classic_sync_group(
        &self,
        group: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> ClassicReply<ClassicSyncResponse> {
        if let Err(e) = self.check_open() {
            return ClassicReply::ready(Err(e));
        }
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

    /// Answers every parked classic JoinGroup and SyncGroup `Closed` (NOT_COORDINATOR on the
    /// wire, as Kafka answers them when it gives up a group) and refuses the classic group
    /// calls from then on, while the rest of the broker stays open: a server shutting down
    /// calls this first, so the requests in flight it waits for are not parked joins.
    /// [`close`](Self::close) does it too.
    pub fn close_classic_groups(&self) {
        self.inner.groups.close_classic();
    }

    /// Starts the classic groups' timer thread, once per broker.
    fn start_group_timer(&self) {
        let timer = &self.inner.groups.timer;
        if !timer.claim_start() {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        let thread_timer = Arc::clone(timer);
        if let Err(e) = std::thread::Builder::new()
            .name("sluice-group-timer".into())
            .spawn(move || run_group_timer(inner, thread_timer))
        {
            // The maintenance thread still runs the timers, at its own pace.
            tracing::error!(error = %e, "could not start the group timer thread");
        }
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

/// The timer thread: runs the classic groups' timers when the earliest of them is due (or a
/// transition scheduled an earlier one), until the broker closes or is dropped. It holds the
/// broker only while it runs them.
fn run_group_timer(inner: Weak<Inner>, timer: Arc<ClassicTimer>) {
    loop {
        if !timer.begin_run() {
            return;
        }
        let next = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner
                .groups
                .run_classic_timers(Instant::now(), |group| inner.offsets.has_group(group))
        };
        if !timer.sleep(next, TIMER_IDLE) {
            return;
        }
    }
}
