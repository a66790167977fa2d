//! The group member of a stream thread (docs/architecture.md §3): joining the
//! application's group with one co-partitioned set of topics per sub-topology, serving the
//! membership (heartbeats), learning a new generation's assignment, the group metadata a
//! transaction commits offsets with, and the group's stable committed offsets.

use std::time::{Duration, Instant};

use sluice_log::TopicPartition;
use sluice_log::cluster::{Assignment, Cluster, GroupEvent, GroupMember, GroupSpec};

use super::thread::ThreadContext;
use crate::error::{Error, Result};

/// How long one wait of the first join lasts before the thread looks at shutdown and crash.
const JOIN_WAIT: Duration = Duration::from_millis(500);

/// A stream thread's membership of the application's group.
pub(super) struct Membership<C: Cluster> {
    /// `None` once the group is left.
    member: Option<C::Member>,
    /// When the membership was last served.
    last_served: Instant,
}

/// The group membership of a thread: the application id, one co-partitioned set per
/// sub-topology, its lead topic first.
fn group_spec<C: Cluster>(ctx: &ThreadContext<C>, client_id: &str) -> GroupSpec {
    let sets = ctx
        .topology
        .sub_topologies()
        .iter()
        .zip(&ctx.plan.lead_topics)
        .map(|(sub, lead)| {
            std::iter::once(lead.clone())
                .chain(sub.source_topics.iter().filter(|t| *t != lead).cloned())
                .collect()
        })
        .collect();
    let mut spec = GroupSpec::new(ctx.application_id.to_string(), sets)
        .with_session_timeout(ctx.config.session_timeout)
        .with_poll_interval(ctx.config.max_poll_interval);
    spec.client_id = client_id.to_string();
    spec
}

impl<C: Cluster> Membership<C> {
    /// A member of the application's group named `client_id`; it joins at
    /// [`first_assignment`](Self::first_assignment).
    pub fn new(ctx: &ThreadContext<C>, client_id: &str) -> Result<Self> {
        let member = ctx
            .cluster
            .member(&group_spec(ctx, client_id))
            .map_err(Error::cluster)?;
        Ok(Self {
            member: Some(member),
            last_served: Instant::now(),
        })
    }

    fn member(&mut self) -> Result<&mut C::Member> {
        self.member
            .as_mut()
            .ok_or_else(|| Error::IllegalState("the thread has left its group".into()))
    }

    /// Joins the group and waits for the first assignment; `None` if shutdown is requested
    /// first.
    pub fn first_assignment(&mut self, ctx: &ThreadContext<C>) -> Result<Option<Assignment>> {
        loop {
            if ctx.shared.crashed() {
                return Err(Error::Crashed { at: None });
            }
            if ctx.shared.shutdown_requested() {
                return Ok(None);
            }
            self.last_served = Instant::now();
            match self
                .member()?
                .poll_group(JOIN_WAIT)
                .map_err(Error::cluster)?
            {
                GroupEvent::Assigned(assignment) => return Ok(Some(assignment)),
                GroupEvent::Unchanged => {}
            }
        }
    }

    /// Serves the membership (a heartbeat on the embedded broker); the new generation's
    /// assignment if the group moved on. Nothing while heartbeats are paused (the testkit's
    /// zombie).
    pub fn serve(&mut self, ctx: &ThreadContext<C>) -> Result<Option<Assignment>> {
        self.last_served = Instant::now();
        if ctx.shared.heartbeats_paused() {
            return Ok(None);
        }
        let wait = ctx.config.session_timeout;
        match self.member()?.poll_group(wait).map_err(Error::cluster)? {
            GroupEvent::Assigned(assignment) => Ok(Some(assignment)),
            GroupEvent::Unchanged => Ok(None),
        }
    }

    /// Whether the membership is due to be served (`heartbeat_interval` since last time).
    pub fn due(&self, ctx: &ThreadContext<C>) -> bool {
        self.last_served.elapsed() >= ctx.config.heartbeat_interval
    }

    /// Who this member is now, for `send_offsets_to_transaction`.
    pub fn metadata(&mut self) -> Result<<C::Member as GroupMember>::Metadata> {
        self.member()?.metadata().map_err(Error::cluster)
    }

    /// Commits offsets outside a transaction (at-least-once).
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.member()?
            .commit_offsets(offsets)
            .map_err(Error::cluster)
    }

    /// The group's committed offsets of `inputs`, waiting while a transaction that
    /// commits some of them is still open (Kafka's stable offset fetch).
    pub fn stable_offsets(
        &mut self,
        ctx: &ThreadContext<C>,
        inputs: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let deadline = Instant::now() + ctx.config.transaction_timeout * 2;
        loop {
            let crashed = ctx.shared.crashed();
            match self.member()?.committed(inputs).map_err(Error::cluster) {
                Err(e) if e.is_retriable() && Instant::now() < deadline && !crashed => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    /// Leaves the group, so the others rebalance now rather than after a session timeout.
    pub fn leave(&mut self) {
        if let Some(member) = self.member.take()
            && let Err(e) = member.leave()
        {
            tracing::debug!(error = %e, "leaving the group failed");
        }
    }
}
