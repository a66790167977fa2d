//! The coordinator's side of the classic protocol: finds or creates the group, keeps the
//! two protocols apart, hands a call that must wait a [`ClassicReply`] (see
//! [`super::classic_wait`]: no thread is parked for it), runs the groups' timers when the
//! timer thread asks, forgets idle groups without offsets, and answers every parked call
//! with `Closed` when the broker closes.

use std::time::{Duration, Instant};

use super::classic::{ClassicGroup, ClassicJoinRequest, ClassicJoinResponse, ClassicSyncResponse};
use super::classic_wait::ClassicReply;
use super::membership::{GroupCoordinator, GroupDescription, MemberDescription};
use crate::error::{Error, Result};
use crate::util::now_ms;

/// What parked and later calls are answered with once the coordinator is closed.
const CLOSED: &str = "group coordinator";

/// A classic SyncGroup's arguments after the group.
#[derive(Debug)]
pub(crate) struct SyncArgs<'a> {
    pub(crate) member_id: &'a str,
    pub(crate) group_instance_id: Option<&'a str>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<&'a str>,
    pub(crate) protocol_name: Option<&'a str>,
    pub(crate) assignments: Vec<(String, bytes::Bytes)>,
}

impl GroupCoordinator {
    fn new_member_id(&self, client_id: &str) -> String {
        let mut next = self.next_member.lock();
        *next += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let prefix = if client_id.is_empty() {
            "member"
        } else {
            client_id
        };
        format!(
            "{prefix}-{:08x}-{:04x}-{:012x}",
            (nanos >> 32) as u32,
            (nanos >> 16) as u16,
            *next
        )
    }

    /// Asks the timer thread to run at the group's next deadline, after a transition.
    fn settle(&self, g: &mut ClassicGroup, now: Instant) {
        g.note_idle(now);
        if let Some(at) = g.next_deadline() {
            self.timer.schedule(at);
        }
    }

    /// Classic JoinGroup: answered at once, or when the join barrier completes.
    pub(crate) fn classic_join(
        &self,
        req: &ClassicJoinRequest,
        initial_delay: Duration,
    ) -> ClassicReply<ClassicJoinResponse> {
        self.join_inner(req, initial_delay)
            .unwrap_or_else(|e| ClassicReply::ready(Err(e)))
    }

    fn join_inner(
        &self,
        req: &ClassicJoinRequest,
        initial_delay: Duration,
    ) -> Result<ClassicReply<ClassicJoinResponse>> {
        let new_id = self.new_member_id(&req.client_id);
        let mut tables = self.tables.lock();
        let t = &mut *tables;
        if t.closed {
            return Err(Error::Closed(CLOSED));
        }
        if t.embedded
            .get(&req.group)
            .is_some_and(|g| !g.members.is_empty())
        {
            return Err(Error::InconsistentGroupProtocol {
                group: req.group.clone(),
            });
        }
        let created = !t.classic.contains_key(&req.group);
        if created {
            if !req.member_id.is_empty() {
                return Err(Error::UnknownMemberId {
                    group: req.group.clone(),
                    member_id: req.member_id.clone(),
                });
            }
            t.embedded.remove(&req.group);
        }
        let g = t
            .classic
            .entry(req.group.clone())
            .or_insert_with(|| ClassicGroup::new(&req.group));
        let now = Instant::now();
        let outcome = g.join(req, new_id, now, initial_delay);
        if let Err(e) = &outcome
            && created
            && g.member_count() == 0
            && !matches!(e, Error::MemberIdRequired { .. })
        {
            t.classic.remove(&req.group);
        } else {
            self.settle(g, now);
        }
        outcome
    }

    /// Classic SyncGroup: the leader's (and any in Stable) is answered at once, a
    /// follower's when the leader's arrives.
    pub(crate) fn classic_sync(
        &self,
        group: &str,
        args: SyncArgs<'_>,
    ) -> ClassicReply<ClassicSyncResponse> {
        let mut tables = self.tables.lock();
        if tables.closed {
            return ClassicReply::ready(Err(Error::Closed(CLOSED)));
        }
        let Some(g) = tables.classic.get_mut(group) else {
            return ClassicReply::ready(Err(Error::UnknownMemberId {
                group: group.to_string(),
                member_id: args.member_id.to_string(),
            }));
        };
        let now = Instant::now();
        let outcome = g.sync(
            args.member_id,
            args.group_instance_id,
            args.generation,
            args.protocol_type,
            args.protocol_name,
            args.assignments,
            now,
        );
        self.settle(g, now);
        outcome.unwrap_or_else(|e| ClassicReply::ready(Err(e)))
    }

    /// Classic Heartbeat.
    pub(crate) fn classic_heartbeat(
        &self,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<()> {
        let mut tables = self.tables.lock();
        if tables.closed {
            return Err(Error::Closed(CLOSED));
        }
        let g = tables
            .classic
            .get_mut(group)
            .ok_or_else(|| Error::UnknownMemberId {
                group: group.to_string(),
                member_id: member_id.to_string(),
            })?;
        g.heartbeat(member_id, instance, generation, Instant::now())
    }

    /// Classic LeaveGroup of several members; one result each, in order.
    pub(crate) fn classic_leave(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<()>> {
        let mut tables = self.tables.lock();
        let closed = tables.closed;
        let now = Instant::now();
        let Some(g) = tables.classic.get_mut(group).filter(|_| !closed) else {
            return members
                .iter()
                .map(|(id, _)| {
                    Err(if closed {
                        Error::Closed(CLOSED)
                    } else {
                        Error::UnknownMemberId {
                            group: group.to_string(),
                            member_id: id.clone(),
                        }
                    })
                })
                .collect();
        };
        let results = members
            .iter()
            .map(|(id, instance)| g.leave(id, instance.as_deref(), now))
            .collect();
        self.settle(g, now);
        results
    }

    /// Runs the classic groups' timers due at `now` and forgets the groups idle for their
    /// grace period that `has_offsets` says have no committed offsets (those are looked at
    /// again a grace period later). Returns the earliest deadline left.
    pub(crate) fn run_classic_timers(
        &self,
        now: Instant,
        has_offsets: impl Fn(&str) -> bool,
    ) -> Option<Instant> {
        let mut tables = self.tables.lock();
        if tables.closed {
            return None;
        }
        let mut idle = Vec::new();
        for (name, g) in tables.classic.iter_mut() {
            if g.next_deadline().is_some_and(|at| at <= now) {
                g.tick(now);
            }
            g.note_idle(now);
            if g.collectable(now) {
                idle.push(name.clone());
            }
        }
        for name in idle {
            if has_offsets(&name) {
                if let Some(g) = tables.classic.get_mut(&name) {
                    g.idle_since = Some(now);
                }
            } else {
                tables.classic.remove(&name);
                tracing::debug!(group = %name, "idle classic group without offsets forgotten");
            }
        }
        tables
            .classic
            .values()
            .filter_map(ClassicGroup::next_deadline)
            .min()
    }

    /// The broker is closing: every parked JoinGroup and SyncGroup is answered `Closed`
    /// (NOT_COORDINATOR on the wire, so clients look for the coordinator again), later
    /// classic calls are refused, and the timer thread ends.
    pub(crate) fn close_classic(&self) {
        let mut tables = self.tables.lock();
        tables.closed = true;
        let mut answered = 0usize;
        for g in tables.classic.values_mut() {
            for m in g.members.values_mut() {
                if let Some(w) = m.join_waiter.take() {
                    w.post(Err(Error::Closed(CLOSED)));
                    answered += 1;
                }
                if let Some(w) = m.sync_waiter.take() {
                    w.post(Err(Error::Closed(CLOSED)));
                    answered += 1;
                }
            }
        }
        drop(tables);
        self.timer.stop();
        if answered > 0 {
            tracing::info!(
                answered,
                "group coordinator closed; parked classic calls answered"
            );
        }
    }

    /// Deletes an empty group: `drop_offsets` runs under the table lock (so no member can
    /// join in between) and the group is forgotten. `has_offsets` says whether the offset
    /// store knows the group.
    pub(crate) fn delete(
        &self,
        group: &str,
        has_offsets: bool,
        drop_offsets: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let mut tables = self.tables.lock();
        let members = tables.embedded.get(group).map_or(0, |g| g.members.len())
            + tables
                .classic
                .get(group)
                .map_or(0, ClassicGroup::member_count);
        if members > 0 {
            return Err(Error::NonEmptyGroup {
                group: group.to_string(),
                members,
            });
        }
        let known = has_offsets
            || tables.embedded.contains_key(group)
            || tables.classic.contains_key(group);
        if !known {
            return Err(Error::GroupIdNotFound {
                group: group.to_string(),
            });
        }
        drop_offsets()?;
        tables.embedded.remove(group);
        tables.classic.remove(group);
        tracing::info!(group, at_ms = now_ms(), "group deleted");
        Ok(())
    }
}

/// A classic group as `describe_group` shows it.
pub(crate) fn describe(name: &str, g: &ClassicGroup) -> GroupDescription {
    GroupDescription {
        group: name.to_string(),
        generation: g.generation(),
        state: g.state().as_str().to_string(),
        protocol_type: g.protocol_type().to_string(),
        protocol: g.protocol_name().to_string(),
        leader: g.leader().map(str::to_string),
        members: g
            .members()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                topics: Vec::new(),
                partitions: Vec::new(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(g.protocol_name()),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        self.timer.stop();
    }
}
