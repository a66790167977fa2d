//! Kafka's classic consumer-group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup with
//! the assignment computed by the leader member): the request and response types, the state
//! of one classic group and its queries. The transitions are in [`super::classic_ops`]; the
//! blocking calls and the group table in [`super::classic_coord`].
//!
//! A group moves through Kafka's states: `Empty` (no members), `PreparingRebalance` (the
//! join barrier: every known member must rejoin before the rebalance timeout),
//! `CompletingRebalance` (the join responses went out; the leader's SyncGroup with the
//! assignment is awaited) and `Stable`. `Dead` is only reported for groups that do not exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result};

/// A classic JoinGroup request.
#[derive(Debug, Clone, Default)]
pub struct ClassicJoinRequest {
    /// The group.
    pub group: String,
    /// The member's id; empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The protocol type, e.g. `consumer`.
    pub protocol_type: String,
    /// The protocols the member supports, most preferred first, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// A member not heard from for this long is removed.
    pub session_timeout: Duration,
    /// How long the join barrier waits for the members to rejoin.
    pub rebalance_timeout: Duration,
    /// The client's id (the prefix of a new member id).
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// JoinGroup v4+: a new dynamic member is first told its id (`MemberIdRequired`) and
    /// must rejoin with it.
    pub require_known_member_id: bool,
}

/// One member as the leader's JoinGroup response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicJoinMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Its metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A classic JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicJoinResponse {
    /// The group's new generation.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: String,
    /// The protocol chosen (one every member supports).
    pub protocol_name: String,
    /// The leader's member id.
    pub leader: String,
    /// KIP-814: true when a static leader rejoined a Stable group with the same protocols:
    /// it need not compute an assignment (the group keeps the current one).
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// Every member with its metadata; filled only in the leader's response.
    pub members: Vec<ClassicJoinMember>,
}

/// A classic SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicSyncResponse {
    /// The group's protocol type.
    pub protocol_type: String,
    /// The group's protocol.
    pub protocol_name: String,
    /// The member's assignment, as the leader encoded it.
    pub assignment: Bytes,
}

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicGroupState {
    /// No members.
    Empty,
    /// Waiting for the members to rejoin.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group does not exist.
    Dead,
}

impl ClassicGroupState {
    /// The state as Kafka spells it in DescribeGroups and ListGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// What a blocked JoinGroup or SyncGroup is woken with.
#[derive(Debug)]
pub(crate) enum Reply {
    Join(Result<ClassicJoinResponse>),
    Sync(Result<ClassicSyncResponse>),
}

/// Replies for blocked callers, by the ticket each was given.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    replies: HashMap<u64, Reply>,
    next: u64,
    posted: u64,
}

impl Mailbox {
    pub(super) fn ticket(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub(super) fn post(&mut self, ticket: u64, reply: Reply) {
        self.posted += 1;
        self.replies.insert(ticket, reply);
    }

    /// How many replies were posted so far (a waker compares it before and after).
    pub(super) fn posted(&self) -> u64 {
        self.posted
    }

    pub(super) fn take(&mut self, ticket: u64) -> Option<Reply> {
        self.replies.remove(&ticket)
    }
}

/// One member of a classic group.
#[derive(Debug)]
pub(crate) struct ClassicMember {
    pub(super) group_instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) last_seen: Instant,
    /// The ticket of its blocked JoinGroup.
    pub(super) join_waiter: Option<u64>,
    /// The ticket of its blocked SyncGroup.
    pub(super) sync_waiter: Option<u64>,
    pub(super) assignment: Bytes,
}

impl ClassicMember {
    pub(super) fn new(req: &ClassicJoinRequest, now: Instant) -> Self {
        Self {
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            protocols: req.protocols.clone(),
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            last_seen: now,
            join_waiter: None,
            sync_waiter: None,
            assignment: Bytes::new(),
        }
    }

    /// Takes the request's protocols and timeouts.
    pub(super) fn update(&mut self, req: &ClassicJoinRequest, now: Instant) {
        self.protocols = req.protocols.clone();
        self.session_timeout = req.session_timeout;
        self.rebalance_timeout = req.rebalance_timeout;
        self.client_id = req.client_id.clone();
        self.client_host = req.client_host.clone();
        self.last_seen = now;
    }

    /// Whether `protocols` are the ones it joined with (names and metadata, in order).
    pub(super) fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub(super) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether the session has run out: a member blocked in a join or sync is alive.
    pub(super) fn expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now.saturating_duration_since(self.last_seen) > self.session_timeout
    }
}

/// One classic group.
#[derive(Debug)]
pub(crate) struct ClassicGroup {
    pub(super) name: String,
    pub(super) state: ClassicGroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, ClassicMember>,
    /// `group.instance.id` → member id.
    pub(super) static_members: HashMap<String, String>,
    /// Ids handed out with `MemberIdRequired`, with when they lapse.
    pub(super) pending: HashMap<String, Instant>,
    /// Members that have not sent SyncGroup since the last join completed.
    pub(super) pending_sync: BTreeSet<String>,
    /// When the join barrier completes whoever has rejoined.
    pub(super) join_deadline: Option<Instant>,
    /// The initial rebalance delay (the group was Empty): its step and its last deadline.
    pub(super) initial: Option<(Duration, Instant)>,
    /// When members still in `pending_sync` are removed.
    pub(super) sync_deadline: Option<Instant>,
}

impl ClassicGroup {
    pub(super) fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            state: ClassicGroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline: None,
            initial: None,
            sync_deadline: None,
        }
    }

    pub(crate) fn state(&self) -> ClassicGroupState {
        self.state
    }

    pub(crate) fn generation(&self) -> i32 {
        self.generation
    }

    pub(crate) fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or("")
    }

    pub(crate) fn protocol_name(&self) -> &str {
        self.protocol_name.as_deref().unwrap_or("")
    }

    pub(crate) fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = (&String, &ClassicMember)> {
        self.members.iter()
    }

    pub(super) fn unknown(&self, member_id: &str) -> Error {
        Error::UnknownMemberId {
            group: self.name.clone(),
            member_id: member_id.to_string(),
        }
    }

    pub(super) fn fenced(&self, member_id: &str, instance: &str) -> Error {
        Error::FencedInstanceId {
            group: self.name.clone(),
            member_id: member_id.to_string(),
            group_instance_id: instance.to_string(),
        }
    }

    pub(super) fn rebalancing(&self) -> Error {
        Error::RebalanceInProgress {
            group: self.name.clone(),
        }
    }

    pub(super) fn inconsistent(&self) -> Error {
        Error::InconsistentGroupProtocol {
            group: self.name.clone(),
        }
    }

    /// Kafka's `validateMember`: a static member is found by its instance id, whose current
    /// member id must be `member_id` (else it is fenced); a dynamic one by its id.
    pub(super) fn validate_member(&self, member_id: &str, instance: Option<&str>) -> Result<()> {
        match instance {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(self.unknown(member_id)),
                Some(current) if current != member_id => Err(self.fenced(member_id, instance)),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(self.unknown(member_id)),
        }
    }

    /// Whether a member joining with `protocol_type` and `protocols` fits the group: any
    /// non-empty type and list when it is empty; else the group's type and at least one
    /// protocol every member supports.
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.candidates().contains(name))
    }

    /// Protocols every member supports.
    fn candidates(&self) -> BTreeSet<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut common: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            common.retain(|name| m.protocols.iter().any(|(n, _)| n == name));
        }
        common
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those every
    /// member supports; most votes wins (ties go to the smaller name).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(name, _)| name.to_string())
    }

    /// The longest rebalance timeout of the members (Kafka's group rebalance timeout).
    pub(super) fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// The JoinGroup response of `member_id` for the current generation.
    pub(super) fn join_response(&self, member_id: &str) -> ClassicJoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name().to_string();
        let members = if leader == member_id {
            self.members
                .iter()
                .map(|(id, m)| ClassicJoinMember {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        ClassicJoinResponse {
            generation_id: self.generation,
            protocol_type: self.protocol_type().to_string(),
            protocol_name: protocol,
            leader,
            skip_assignment: false,
            member_id: member_id.to_string(),
            members,
        }
    }

    pub(super) fn sync_response(&self, member_id: &str) -> ClassicSyncResponse {
        ClassicSyncResponse {
            protocol_type: self.protocol_type().to_string(),
            protocol_name: self.protocol_name().to_string(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// The earliest moment a timer of the group fires.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.last_seen + m.session_timeout);
        [self.join_deadline, self.sync_deadline]
            .into_iter()
            .flatten()
            .chain(self.pending.values().copied())
            .chain(sessions)
            .min()
    }

    /// Kafka's offset-commit check for a classic group (`transactional` commits skip the
    /// standalone-on-empty and the CompletingRebalance rules, as Kafka's TxnOffsetCommit).
    /// A commit from a member renews its session.
    pub(crate) fn validate_offset_commit(
        &mut self,
        generation: i32,
        member_id: &str,
        transactional: bool,
        now: Instant,
    ) -> Result<()> {
        let empty = self.state == ClassicGroupState::Empty;
        if generation < 0 && empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() {
            self.validate_member(member_id, None)?;
            if generation != self.generation {
                return Err(Error::IllegalGeneration {
                    group: self.name.clone(),
                    generation,
                    current: self.generation,
                });
            }
            if let Some(m) = self.members.get_mut(member_id) {
                m.last_seen = now;
            }
        } else if !transactional && !empty {
            return Err(self.unknown(member_id));
        }
        if !transactional && self.state == ClassicGroupState::CompletingRebalance {
            return Err(self.rebalancing());
        }
        Ok(())
    }
}
