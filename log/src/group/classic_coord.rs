//! The coordinator's side of the classic protocol: finds or creates the group, keeps the
//! two protocols apart, and blocks JoinGroup and SyncGroup until their answer is posted.
//! A blocked caller wakes on every posted reply and at the group's next timer, which it runs
//! itself (so a join barrier ends on time even between maintenance ticks).

use std::time::{Duration, Instant};

use super::classic::{
    ClassicGroup, ClassicJoinRequest, ClassicJoinResponse, ClassicSyncResponse, Reply,
};
use super::classic_ops::Outcome;
use super::membership::{GroupCoordinator, GroupDescription, MemberDescription, Tables};
use crate::error::{Error, Result};
use crate::util::now_ms;

/// How long a blocked caller sleeps at most before it looks at the group's timers again.
const RECHECK: Duration = Duration::from_millis(500);

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

    /// Classic JoinGroup; blocks until the join barrier completes.
    pub(crate) fn classic_join(
        &self,
        req: &ClassicJoinRequest,
        initial_delay: Duration,
    ) -> Result<ClassicJoinResponse> {
        let new_id = self.new_member_id(&req.client_id);
        let mut tables = self.tables.lock();
        let t = &mut *tables;
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
        let outcome = g.join(req, new_id, &mut t.mailbox, Instant::now(), initial_delay);
        self.wake.notify_all();
        let ticket = match outcome {
            Ok(Outcome::Done(response)) => return Ok(response),
            Ok(Outcome::Wait(ticket)) => ticket,
            Err(e) => {
                if created && g.member_count() == 0 && !matches!(e, Error::MemberIdRequired { .. })
                {
                    t.classic.remove(&req.group);
                }
                return Err(e);
            }
        };
        match self.wait(&mut tables, &req.group, ticket) {
            Reply::Join(result) => result,
            Reply::Sync(_) => Err(Error::IllegalState(
                "a JoinGroup was answered with a SyncGroup reply".into(),
            )),
        }
    }

    /// Classic SyncGroup; a follower's blocks until the leader's arrives.
    pub(crate) fn classic_sync(
        &self,
        group: &str,
        args: SyncArgs<'_>,
    ) -> Result<ClassicSyncResponse> {
        let mut tables = self.tables.lock();
        let t = &mut *tables;
        let g = t
            .classic
            .get_mut(group)
            .ok_or_else(|| Error::UnknownMemberId {
                group: group.to_string(),
                member_id: args.member_id.to_string(),
            })?;
        let outcome = g.sync(
            args.member_id,
            args.group_instance_id,
            args.generation,
            args.protocol_type,
            args.protocol_name,
            args.assignments,
            &mut t.mailbox,
            Instant::now(),
        );
        self.wake.notify_all();
        let ticket = match outcome? {
            Outcome::Done(response) => return Ok(response),
            Outcome::Wait(ticket) => ticket,
        };
        match self.wait(&mut tables, group, ticket) {
            Reply::Sync(result) => result,
            Reply::Join(_) => Err(Error::IllegalState(
                "a SyncGroup was answered with a JoinGroup reply".into(),
            )),
        }
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
        let t = &mut *tables;
        let results = members
            .iter()
            .map(|(id, instance)| match t.classic.get_mut(group) {
                Some(g) => g.leave(id, instance.as_deref(), &mut t.mailbox, Instant::now()),
                None => Err(Error::UnknownMemberId {
                    group: group.to_string(),
                    member_id: id.clone(),
                }),
            })
            .collect();
        self.wake.notify_all();
        results
    }

    /// Waits for the reply posted under `ticket`, running the group's timers when due.
    fn wait(
        &self,
        tables: &mut parking_lot::MutexGuard<'_, Tables>,
        group: &str,
        ticket: u64,
    ) -> Reply {
        loop {
            if let Some(reply) = tables.mailbox.take(ticket) {
                return reply;
            }
            let now = Instant::now();
            let t = &mut **tables;
            let posted = t.mailbox.posted();
            let next = t.classic.get_mut(group).and_then(|g| {
                g.tick(&mut t.mailbox, now);
                g.next_deadline()
            });
            if t.mailbox.posted() != posted {
                self.wake.notify_all();
            }
            if let Some(reply) = tables.mailbox.take(ticket) {
                return reply;
            }
            let recheck = now + RECHECK;
            let until = next.map_or(recheck, |d| d.min(recheck).max(now));
            self.wake.wait_until(tables, until);
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
