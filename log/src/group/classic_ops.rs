//! The transitions of a classic group (Kafka's classic `GroupMetadataManager`): join, sync,
//! heartbeat, leave and the timers (join barrier, initial rebalance delay, pending syncs,
//! sessions). Each takes the caller's clock; a call that must wait gets a [`ClassicReply`]
//! whose [`Waiter`](super::classic_wait::Waiter) the member keeps, and the transition that answers it posts into it.
//!
//! As Kafka's `completeAndScheduleNextHeartbeatExpiration`, answering a parked call restarts
//! the member's session (a parked member cannot expire; without the restart, a follower
//! that waited longer than its session timeout for the leader's assignment would expire as
//! soon as it got it, while it starts using its partitions). Ids handed out with
//! `MemberIdRequired` stay pending until their holder joins with them or its session
//! timeout passes, whatever rebalances happen in between (as Kafka's pending members).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::classic::{
    ClassicGroup, ClassicGroupState as State, ClassicJoinRequest, ClassicJoinResponse,
    ClassicMember, ClassicSyncResponse,
};
use super::classic_wait::{ClassicReply, park};
use crate::error::{Error, Result};

type JoinReply = ClassicReply<ClassicJoinResponse>;

impl ClassicGroup {
    /// JoinGroup. `new_id` is the id a member without one gets.
    pub(crate) fn join(
        &mut self,
        req: &ClassicJoinRequest,
        new_id: String,
        now: Instant,
        initial_delay: Duration,
    ) -> Result<JoinReply> {
        if self.state == State::Dead {
            return Err(self.unknown(&req.member_id));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Err(self.inconsistent());
        }
        if req.member_id.is_empty() {
            if let Some(instance) = &req.group_instance_id
                && let Some(old) = self.static_members.get(instance).cloned()
            {
                return Ok(self.replace_static(&old, new_id, req, now, initial_delay));
            }
            if req.group_instance_id.is_none() && req.require_known_member_id {
                self.grace = self.grace.max(req.session_timeout);
                self.pending
                    .insert(new_id.clone(), now + req.session_timeout);
                return Err(Error::MemberIdRequired {
                    group: self.name.clone(),
                    member_id: new_id,
                });
            }
            return Ok(self.add_member(new_id, req, now, initial_delay));
        }
        let id = req.member_id.clone();
        if self.pending.remove(&id).is_some() {
            return Ok(self.add_member(id, req, now, initial_delay));
        }
        self.validate_member(&id, req.group_instance_id.as_deref())?;
        let leader = self.leader.as_deref() == Some(id.as_str());
        let same = self
            .members
            .get(&id)
            .is_some_and(|m| m.same_protocols(&req.protocols));
        match self.state {
            State::PreparingRebalance => Ok(self.rejoin(&id, req, now, initial_delay)),
            State::CompletingRebalance if same => {
                self.touch(&id, now);
                Ok(ClassicReply::ready(Ok(self.join_response(&id))))
            }
            State::Stable if same && !leader => {
                self.touch(&id, now);
                Ok(ClassicReply::ready(Ok(self.join_response(&id))))
            }
            State::CompletingRebalance | State::Stable => {
                Ok(self.rejoin(&id, req, now, initial_delay))
            }
            State::Empty | State::Dead => Err(self.unknown(&id)),
        }
    }

    fn touch(&mut self, id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(id) {
            m.last_seen = now;
        }
    }

    /// Parks the member's join (failing an older one of it still parked).
    fn park_join(&mut self, id: &str) -> JoinReply {
        let (waiter, reply) = park();
        let rebalancing = self.rebalancing();
        if let Some(m) = self.members.get_mut(id) {
            if let Some(old) = m.join_waiter.replace(waiter) {
                old.post(Err(rebalancing));
            }
        } else {
            waiter.post(Err(self.unknown(id)));
        }
        reply
    }

    fn add_member(
        &mut self,
        id: String,
        req: &ClassicJoinRequest,
        now: Instant,
        initial_delay: Duration,
    ) -> JoinReply {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.grace = self.grace.max(req.session_timeout);
        self.insert_member(id.clone(), ClassicMember::new(req, now));
        let reply = self.park_join(&id);
        tracing::info!(group = %self.name, member = %id, "classic member joined");
        if self.state == State::PreparingRebalance {
            if let Some((step, last)) = self.initial {
                let extended = (now + step).min(last);
                self.join_deadline = self.join_deadline.max(Some(extended));
            }
        } else {
            self.prepare_rebalance(now, initial_delay, "new member joined");
        }
        self.try_complete_join(now);
        reply
    }

    /// A known member's join that waits for the barrier (starting a rebalance if needed).
    fn rejoin(
        &mut self,
        id: &str,
        req: &ClassicJoinRequest,
        now: Instant,
        initial_delay: Duration,
    ) -> JoinReply {
        self.update_member(id, req, now);
        let reply = self.park_join(id);
        if self.state != State::PreparingRebalance {
            self.prepare_rebalance(now, initial_delay, "member rejoined with new metadata");
        }
        self.try_complete_join(now);
        reply
    }

    /// KIP-345: a known instance id joins without a member id: the new id takes the old
    /// member's place and the old one is fenced.
    fn replace_static(
        &mut self,
        old: &str,
        new_id: String,
        req: &ClassicJoinRequest,
        now: Instant,
        initial_delay: Duration,
    ) -> JoinReply {
        let instance = req.group_instance_id.clone().unwrap_or_default();
        let Some(mut member) = self.take_member(old) else {
            return self.add_member(new_id, req, now, initial_delay);
        };
        if let Some(w) = member.join_waiter.take() {
            w.post(Err(self.fenced(old, &instance)));
        }
        if let Some(w) = member.sync_waiter.take() {
            w.post(Err(self.fenced(old, &instance)));
        }
        tracing::info!(group = %self.name, old, new = %new_id, instance = %instance, "static member replaced; old id fenced");
        let same = member.same_protocols(&req.protocols);
        member.last_seen = now;
        self.insert_member(new_id.clone(), member);
        self.static_members.insert(instance, new_id.clone());
        if self.pending_sync.remove(old) {
            self.pending_sync.insert(new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.state == State::Stable && same {
            // As Kafka: no rebalance. A replaced leader gets the members with
            // `skip_assignment` (KIP-814); its SyncGroup in Stable returns the assignment it
            // already had, whatever it computes.
            let mut response = self.join_response(&new_id);
            response.skip_assignment = was_leader;
            return ClassicReply::ready(Ok(response));
        }
        self.rejoin(&new_id, req, now, initial_delay)
    }

    /// Starts the join barrier. From Empty it waits the initial rebalance delay (extended by
    /// each new member up to the rebalance timeout); otherwise up to the rebalance timeout.
    pub(super) fn prepare_rebalance(
        &mut self,
        now: Instant,
        initial_delay: Duration,
        reason: &str,
    ) {
        if self.state == State::CompletingRebalance {
            self.fail_syncs(now);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self.rebalance_timeout();
        if self.state == State::Empty {
            let last = now + timeout.max(initial_delay);
            self.initial = Some((initial_delay, last));
            self.join_deadline = Some(now + initial_delay);
        } else {
            self.initial = None;
            self.join_deadline = Some(now + timeout);
        }
        tracing::info!(group = %self.name, generation = self.generation, reason, "preparing rebalance");
        self.state = State::PreparingRebalance;
    }

    /// Fails the parked SyncGroups with `RebalanceInProgress` (restarting those members'
    /// sessions, as Kafka) and drops the assignments.
    fn fail_syncs(&mut self, now: Instant) {
        let name = self.name.clone();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                m.last_seen = now;
                w.post(Err(Error::RebalanceInProgress {
                    group: name.clone(),
                }));
            }
        }
    }

    /// Completes the join barrier when every member rejoined (not during the initial delay)
    /// or its deadline passed.
    pub(super) fn try_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let due = self.join_deadline.is_some_and(|d| now >= d);
        let all_joined =
            self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        if due || (self.initial.is_none() && all_joined) {
            self.complete_join(now);
        }
    }

    /// Removes who did not rejoin, opens the next generation and answers the joins
    /// (restarting each member's session). Pending ids stay pending.
    fn complete_join(&mut self, now: Instant) {
        let late: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            tracing::info!(group = %self.name, member = %id, "member did not rejoin in time; removed");
            self.remove_member(&id);
        }
        self.initial = None;
        self.join_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol_name = None;
            self.leader = None;
            tracing::info!(group = %self.name, generation = self.generation, "group is empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = State::CompletingRebalance;
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.join_response(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_seen = now;
                if let Some(w) = m.join_waiter.take() {
                    w.post(Ok(response));
                }
            }
        }
        tracing::info!(group = %self.name, generation = self.generation, leader = ?self.leader, protocol = ?self.protocol_name, "join completed");
    }

    /// Drops a member, failing its parked calls with `UnknownMemberId`.
    fn remove_member(&mut self, id: &str) {
        let Some(mut m) = self.take_member(id) else {
            return;
        };
        if let Some(w) = m.join_waiter.take() {
            w.post(Err(self.unknown(id)));
        }
        if let Some(w) = m.sync_waiter.take() {
            w.post(Err(self.unknown(id)));
        }
        if let Some(instance) = &m.group_instance_id
            && self
                .static_members
                .get(instance)
                .is_some_and(|cur| cur == id)
        {
            self.static_members.remove(instance);
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Removes a member (leave, expiry) and rebalances the rest.
    fn member_gone(&mut self, id: &str, now: Instant) {
        self.remove_member(id);
        match self.state {
            State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(now, Duration::ZERO, "member left");
                self.try_complete_join(now);
            }
            State::PreparingRebalance => self.try_complete_join(now),
            State::Empty | State::Dead => {}
        }
    }

    /// SyncGroup. The leader's call carries the assignment and is answered at once, as are
    /// calls in Stable; a follower's waits for the leader's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<ClassicReply<ClassicSyncResponse>> {
        if self.state == State::Dead {
            return Err(self.unknown(member_id));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return Err(self.inconsistent());
        }
        self.validate_member(member_id, instance)?;
        if generation != self.generation {
            return Err(Error::IllegalGeneration {
                group: self.name.clone(),
                generation,
                current: self.generation,
            });
        }
        self.touch(member_id, now);
        match self.state {
            State::PreparingRebalance => Err(self.rebalancing()),
            State::Empty | State::Dead => Err(self.unknown(member_id)),
            State::Stable => {
                self.pending_sync.remove(member_id);
                Ok(ClassicReply::ready(Ok(self.sync_response(member_id))))
            }
            State::CompletingRebalance => {
                self.pending_sync.remove(member_id);
                if self.leader.as_deref() != Some(member_id) {
                    let (waiter, reply) = park();
                    let rebalancing = self.rebalancing();
                    if let Some(m) = self.members.get_mut(member_id)
                        && let Some(old) = m.sync_waiter.replace(waiter)
                    {
                        old.post(Err(rebalancing));
                    }
                    return Ok(reply);
                }
                let mut assigned: std::collections::HashMap<String, Bytes> =
                    assignments.into_iter().collect();
                let ids: Vec<String> = self.members.keys().cloned().collect();
                for id in ids {
                    let assignment = assigned.remove(&id).unwrap_or_default();
                    if let Some(m) = self.members.get_mut(&id) {
                        m.assignment = assignment;
                    }
                    let response = self.sync_response(&id);
                    if let Some(m) = self.members.get_mut(&id)
                        && let Some(w) = m.sync_waiter.take()
                    {
                        // As Kafka's propagateAssignment: the session restarts now.
                        m.last_seen = now;
                        w.post(Ok(response));
                    }
                }
                self.state = State::Stable;
                if self.pending_sync.is_empty() {
                    self.sync_deadline = None;
                }
                tracing::info!(group = %self.name, generation = self.generation, "assignment received; group stable");
                Ok(ClassicReply::ready(Ok(self.sync_response(member_id))))
            }
        }
    }

    /// Heartbeat: renews the session; `RebalanceInProgress` while the barrier is up.
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<()> {
        if self.state == State::Dead {
            return Err(self.unknown(member_id));
        }
        self.validate_member(member_id, instance)?;
        if generation != self.generation {
            return Err(Error::IllegalGeneration {
                group: self.name.clone(),
                generation,
                current: self.generation,
            });
        }
        match self.state {
            State::Empty | State::Dead => Err(self.unknown(member_id)),
            State::PreparingRebalance => {
                self.touch(member_id, now);
                Err(self.rebalancing())
            }
            State::CompletingRebalance | State::Stable => {
                self.touch(member_id, now);
                Ok(())
            }
        }
    }

    /// LeaveGroup of one member, found by id or (id empty) by instance id.
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
    ) -> Result<()> {
        let id = match (member_id.is_empty(), instance) {
            (true, Some(instance)) => self
                .static_members
                .get(instance)
                .cloned()
                .ok_or_else(|| self.unknown(member_id))?,
            _ => {
                if instance.is_none() && self.pending.remove(member_id).is_some() {
                    self.try_complete_join(now);
                    return Ok(());
                }
                self.validate_member(member_id, instance)?;
                member_id.to_string()
            }
        };
        tracing::info!(group = %self.name, member = %id, "classic member left");
        self.member_gone(&id, now);
        Ok(())
    }

    /// Runs the timers due at `now`: lapsed pending ids, expired sessions, members that did
    /// not sync in time, the join barrier. Returns how many members were removed.
    pub(crate) fn tick(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        self.pending.retain(|_, lapse| *lapse > now);
        let mut removed = before - self.pending.len();
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.expired(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::warn!(group = %self.name, member = %id, "session timed out; removing member");
            self.member_gone(&id, now);
            removed += 1;
        }
        if self.sync_deadline.is_some_and(|d| now >= d) {
            self.sync_deadline = None;
            if matches!(self.state, State::CompletingRebalance | State::Stable) {
                let late: Vec<String> =
                    std::mem::take(&mut self.pending_sync).into_iter().collect();
                for id in late {
                    tracing::warn!(group = %self.name, member = %id, "member did not sync in time; removing it");
                    self.member_gone(&id, now);
                    removed += 1;
                }
            }
        }
        self.try_complete_join(now);
        removed
    }
}
