//! Group membership (DESIGN §2.6): members join with their subscriptions and a session
//! timeout, and the broker computes the assignment (sticky) whenever the membership or the
//! subscribed topics' partition counts change. Each change is a new generation; a member
//! learns of it from `heartbeat` (`RebalanceInProgress`) and fetches its new partitions with
//! `sync`. Requests from a member that left or expired, or from an older generation, are
//! refused, which is what fences zombies' offset commits (KIP-447).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use parking_lot::Mutex;

use super::assignor::sticky_assign;
use crate::error::{Error, Result};
use crate::topic::TopicPartition;
use crate::util::now_ms;

/// A member's view of its group after a join or sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssignment {
    /// The member's id (assigned by the broker on first join).
    pub member_id: String,
    /// The group's generation.
    pub generation: i32,
    /// The member's partitions in this generation.
    pub partitions: Vec<TopicPartition>,
}

/// One member, as `describe_group` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// Topics it subscribes to.
    pub topics: Vec<String>,
    /// Its partitions.
    pub partitions: Vec<TopicPartition>,
}

/// A group's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// Its generation.
    pub generation: i32,
    /// Its members, by id.
    pub members: Vec<MemberDescription>,
}

#[derive(Debug)]
struct Member {
    topics: BTreeSet<String>,
    session_timeout_ms: i64,
    last_seen_ms: i64,
}

#[derive(Debug, Default)]
struct Group {
    generation: i32,
    members: BTreeMap<String, Member>,
    assignment: BTreeMap<String, Vec<TopicPartition>>,
    /// Partition counts the assignment was computed from.
    counts: BTreeMap<String, i32>,
}

impl Group {
    fn rebalance(&mut self, counts: BTreeMap<String, i32>) {
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.assignment = sticky_assign(&subs, &counts, &self.assignment);
        self.counts = counts;
        self.generation += 1;
    }

    fn topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect()
    }

    fn assignment_of(&self, member_id: &str) -> GroupAssignment {
        GroupAssignment {
            member_id: member_id.to_string(),
            generation: self.generation,
            partitions: self.assignment.get(member_id).cloned().unwrap_or_default(),
        }
    }
}

/// Every group's membership.
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    next_member: Mutex<u64>,
}

impl GroupCoordinator {
    fn unknown(group: &str, member_id: &str) -> Error {
        Error::UnknownMemberId {
            group: group.to_string(),
            member_id: member_id.to_string(),
        }
    }

    /// Adds (or updates) a member and rebalances. `counts` gives the partition count of
    /// every topic any member of the group subscribes to, this one included.
    pub(crate) fn join(
        &self,
        group: &str,
        member_id: Option<&str>,
        topics: &[String],
        session_timeout_ms: i64,
        counts: impl Fn(&BTreeSet<String>) -> Result<BTreeMap<String, i32>>,
    ) -> Result<GroupAssignment> {
        let mut groups = self.groups.lock();
        let g = groups.entry(group.to_string()).or_default();
        let member_id = match member_id {
            Some(id) if g.members.contains_key(id) => id.to_string(),
            Some(id) if !id.is_empty() => return Err(Self::unknown(group, id)),
            _ => {
                let mut next = self.next_member.lock();
                *next += 1;
                format!("{group}-member-{}-{}", now_ms(), *next)
            }
        };
        g.members.insert(
            member_id.clone(),
            Member {
                topics: topics.iter().cloned().collect(),
                session_timeout_ms,
                last_seen_ms: now_ms(),
            },
        );
        let counts = counts(&g.topics())?;
        g.rebalance(counts);
        tracing::info!(group, member = %member_id, generation = g.generation, "member joined; rebalanced");
        Ok(g.assignment_of(&member_id))
    }

    /// The group of a live member, whose session this request renews.
    fn touch<'a>(
        groups: &'a mut HashMap<String, Group>,
        group: &str,
        member_id: &str,
    ) -> Result<&'a mut Group> {
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Self::unknown(group, member_id))?;
        let m = g
            .members
            .get_mut(member_id)
            .ok_or_else(|| Self::unknown(group, member_id))?;
        m.last_seen_ms = now_ms();
        Ok(g)
    }

    /// The member's partitions in the current generation.
    pub(crate) fn sync(&self, group: &str, member_id: &str) -> Result<GroupAssignment> {
        let mut groups = self.groups.lock();
        let g = Self::touch(&mut groups, group, member_id)?;
        Ok(g.assignment_of(member_id))
    }

    /// Keeps the member alive. A rebalance since `generation` is `RebalanceInProgress`; so is
    /// a change in a subscribed topic's partition count (which starts the rebalance).
    pub(crate) fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        counts: impl Fn(&BTreeSet<String>) -> Result<BTreeMap<String, i32>>,
    ) -> Result<()> {
        let mut groups = self.groups.lock();
        let g = Self::touch(&mut groups, group, member_id)?;
        let now_counts = counts(&g.topics())?;
        if now_counts != g.counts {
            tracing::info!(group, "subscribed partitions changed; rebalancing");
            g.rebalance(now_counts);
        }
        if generation != g.generation {
            return Err(Error::RebalanceInProgress {
                group: group.to_string(),
            });
        }
        Ok(())
    }

    /// Removes a member and rebalances the rest.
    pub(crate) fn leave(
        &self,
        group: &str,
        member_id: &str,
        counts: impl Fn(&BTreeSet<String>) -> Result<BTreeMap<String, i32>>,
    ) -> Result<()> {
        let mut groups = self.groups.lock();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Self::unknown(group, member_id))?;
        g.members
            .remove(member_id)
            .ok_or_else(|| Self::unknown(group, member_id))?;
        g.assignment.remove(member_id);
        let counts = counts(&g.topics())?;
        g.rebalance(counts);
        tracing::info!(
            group,
            member = member_id,
            generation = g.generation,
            "member left; rebalanced"
        );
        Ok(())
    }

    /// Removes members whose session timed out; returns how many.
    pub(crate) fn expire(
        &self,
        now: i64,
        counts: impl Fn(&BTreeSet<String>) -> Result<BTreeMap<String, i32>>,
    ) -> usize {
        let mut expired = 0;
        for (name, g) in self.groups.lock().iter_mut() {
            let dead: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| now - m.last_seen_ms > m.session_timeout_ms)
                .map(|(id, _)| id.clone())
                .collect();
            if dead.is_empty() {
                continue;
            }
            for id in &dead {
                tracing::warn!(group = %name, member = %id, "session timed out; removing member");
                g.members.remove(id);
                g.assignment.remove(id);
            }
            expired += dead.len();
            if let Ok(counts) = counts(&g.topics()) {
                g.rebalance(counts);
            }
        }
        expired
    }

    /// Runs `commit` if `(generation, member)` is the group's current generation and a
    /// member (generation -1 with no member id is a standalone consumer, always accepted),
    /// holding the group table while it runs: no rebalance can slip between the check and
    /// the offsets `commit` registers. (Otherwise a member that joins in between could read
    /// the committed offsets before a fenced member's commit lands: found by the runtime's
    /// fault-injection harness as a duplicate.)
    pub(crate) fn with_generation<T>(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        commit: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if generation < 0 && member_id.is_empty() {
            return commit();
        }
        let groups = self.groups.lock();
        let g = groups
            .get(group)
            .ok_or_else(|| Self::unknown(group, member_id))?;
        if !g.members.contains_key(member_id) {
            return Err(Self::unknown(group, member_id));
        }
        if generation != g.generation {
            return Err(Error::IllegalGeneration {
                group: group.to_string(),
                generation,
                current: g.generation,
            });
        }
        commit()
    }

    /// One group's members and assignment, if it has any members.
    pub(crate) fn describe(&self, group: &str) -> Option<GroupDescription> {
        let groups = self.groups.lock();
        let g = groups.get(group)?;
        Some(GroupDescription {
            group: group.to_string(),
            generation: g.generation,
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    topics: m.topics.iter().cloned().collect(),
                    partitions: g.assignment.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Groups that have members.
    pub(crate) fn names(&self) -> Vec<String> {
        self.groups
            .lock()
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }
}
