//! Group membership (docs/architecture.md §2.6): members join with their subscriptions and a session
//! timeout, and the broker computes the assignment (sticky) whenever the membership or the
//! subscribed topics' partition counts change. Each change is a new generation; a member
//! learns of it from `heartbeat` (`RebalanceInProgress`) and fetches its new partitions with
//! `sync`. Requests from a member that left or expired, or from an older generation, are
//! refused, which is what fences zombies' offset commits (KIP-447).
//!
//! The same table holds the groups of Kafka's classic protocol ([`super::classic`]); a group
//! uses one protocol at a time, and a join of the other kind while it has members is
//! `InconsistentGroupProtocol`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use super::assignor::sticky_assign;
use super::classic::ClassicGroup;
use super::classic_wait::ClassicTimer;
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

/// The protocol type `describe_group` reports for groups of embedded consumers.
pub const EMBEDDED_PROTOCOL_TYPE: &str = "embedded";
/// The protocol name `describe_group` reports for groups of embedded consumers (the
/// broker-side sticky assignment).
pub const EMBEDDED_PROTOCOL: &str = "sticky";

/// One member, as `describe_group` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// Topics it subscribes to (embedded members; empty for classic ones, whose
    /// subscription is inside `metadata`).
    pub topics: Vec<String>,
    /// Its partitions (embedded members; empty for classic ones, see `assignment`).
    pub partitions: Vec<TopicPartition>,
    /// The client id (classic members; empty for embedded ones).
    pub client_id: String,
    /// The client host (classic members; empty for embedded ones).
    pub client_host: String,
    /// Its `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Its metadata for the group's protocol (classic members).
    pub metadata: Bytes,
    /// Its assignment as the leader encoded it (classic members).
    pub assignment: Bytes,
}

/// A group's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// Its generation.
    pub generation: i32,
    /// Its state as Kafka spells it: `Empty`, `PreparingRebalance`, `CompletingRebalance`,
    /// `Stable`, or `Dead` for a group the broker does not know.
    pub state: String,
    /// Its protocol type (`consumer` for Kafka consumers, [`EMBEDDED_PROTOCOL_TYPE`] for
    /// embedded ones, empty when unknown).
    pub protocol_type: String,
    /// The protocol of the current generation (empty when none).
    pub protocol: String,
    /// The leader's member id (classic groups).
    pub leader: Option<String>,
    /// Its members, by id.
    pub members: Vec<MemberDescription>,
}

#[derive(Debug)]
pub(super) struct Member {
    topics: BTreeSet<String>,
    session_timeout_ms: i64,
    last_seen_ms: i64,
}

#[derive(Debug, Default)]
pub(super) struct Group {
    generation: i32,
    pub(super) members: BTreeMap<String, Member>,
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

/// Both kinds of groups, under one lock.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(super) embedded: HashMap<String, Group>,
    pub(super) classic: HashMap<String, ClassicGroup>,
    /// The broker closed: classic calls are refused.
    pub(super) closed: bool,
}

/// Every group's membership.
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    pub(super) tables: Mutex<Tables>,
    /// When the classic groups' timers must next run (see `classic_wait`).
    pub(crate) timer: std::sync::Arc<ClassicTimer>,
    pub(super) next_member: Mutex<u64>,
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
        let mut tables = self.tables.lock();
        if tables
            .classic
            .get(group)
            .is_some_and(|g| g.member_count() > 0)
        {
            return Err(Error::InconsistentGroupProtocol {
                group: group.to_string(),
            });
        }
        tables.classic.remove(group);
        let g = tables.embedded.entry(group.to_string()).or_default();
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
        let mut tables = self.tables.lock();
        let g = Self::touch(&mut tables.embedded, group, member_id)?;
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
        let mut tables = self.tables.lock();
        let g = Self::touch(&mut tables.embedded, group, member_id)?;
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
        let mut tables = self.tables.lock();
        let g = tables
            .embedded
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
        let mut tables = self.tables.lock();
        let tables = &mut *tables;
        let instant = Instant::now();
        for g in tables.classic.values_mut() {
            expired += g.tick(instant);
        }
        for (name, g) in tables.embedded.iter_mut() {
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
    /// fault-injection harness as a duplicate.) A classic group follows Kafka's OffsetCommit
    /// rules instead (see [`ClassicGroup::validate_offset_commit`]).
    pub(crate) fn with_generation<T>(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        commit: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.with_generation_checked(group, generation, member_id, instance, false, commit)
    }

    /// [`with_generation`](Self::with_generation) for a TxnOffsetCommit: a classic group
    /// takes a standalone (-1, "") commit whatever its state and does not refuse commits in
    /// CompletingRebalance, as Kafka's TxnOffsetCommit.
    pub(crate) fn with_txn_generation<T>(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        commit: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.with_generation_checked(group, generation, member_id, instance, true, commit)
    }

    fn with_generation_checked<T>(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        transactional: bool,
        commit: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let mut tables = self.tables.lock();
        if let Some(g) = tables.classic.get_mut(group) {
            g.validate_offset_commit(
                generation,
                member_id,
                instance,
                transactional,
                Instant::now(),
            )?;
            return commit();
        }
        if generation < 0 && member_id.is_empty() {
            drop(tables);
            return commit();
        }
        let g = tables
            .embedded
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

    /// One group's members and assignment, if the coordinator knows it (an embedded group
    /// with members, or any classic group).
    pub(crate) fn describe(&self, group: &str) -> Option<GroupDescription> {
        let tables = self.tables.lock();
        if let Some(g) = tables.classic.get(group) {
            return Some(super::classic_coord::describe(group, g));
        }
        let g = tables.embedded.get(group)?;
        Some(GroupDescription {
            group: group.to_string(),
            generation: g.generation,
            state: if g.members.is_empty() {
                "Empty"
            } else {
                "Stable"
            }
            .to_string(),
            protocol_type: EMBEDDED_PROTOCOL_TYPE.to_string(),
            protocol: EMBEDDED_PROTOCOL.to_string(),
            leader: None,
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    topics: m.topics.iter().cloned().collect(),
                    partitions: g.assignment.get(id).cloned().unwrap_or_default(),
                    client_id: String::new(),
                    client_host: String::new(),
                    group_instance_id: None,
                    metadata: Bytes::new(),
                    assignment: Bytes::new(),
                })
                .collect(),
        })
    }

    /// Groups that have members, and every classic group.
    pub(crate) fn names(&self) -> Vec<String> {
        self.names_detailed()
            .into_iter()
            .map(|(n, _, _)| n)
            .collect()
    }

    /// [`names`](Self::names) with each group's state and protocol type.
    pub(crate) fn names_detailed(&self) -> Vec<(String, String, String)> {
        let tables = self.tables.lock();
        let embedded = tables
            .embedded
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(n, _)| (n.clone(), "Stable".into(), EMBEDDED_PROTOCOL_TYPE.into()));
        let classic = tables.classic.iter().map(|(n, g)| {
            (
                n.clone(),
                g.state().as_str().to_string(),
                g.protocol_type().to_string(),
            )
        });
        embedded.chain(classic).collect()
    }
}
