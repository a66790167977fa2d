//! Kafka's classic consumer-group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup with
//! the assignment computed by the leader member): the request and response types, the state
//! of one classic group and its queries. The transitions are in the sibling module `classic_ops`; the
//! group table, the parked calls and the timers in `classic_coord` and `classic_wait`.
//!
//! A group moves through Kafka's states: `Empty` (no members), `PreparingRebalance` (the
//! join barrier: every known member must rejoin before the rebalance timeout),
//! `CompletingRebalance` (the join responses went out; the leader's SyncGroup with the
//! assignment is awaited) and `Stable`. `Dead` is only reported for groups that do not exist.
//!
//! Which protocols every member supports is kept as a count per protocol name (as Kafka's
//! `supportedProtocols`), so a join costs O(its protocols), not O(members x protocols²);
//! a member may list at most [`MAX_CLASSIC_PROTOCOLS`] protocols of at most
//! [`MAX_CLASSIC_PROTOCOL_BYTES`] in all. An `Empty` group without members or pending
//! members is forgotten once it has been so for the longest session timeout its members
//! asked for, unless it has committed offsets (Kafka keeps those until offset retention).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::classic_wait::Waiter;
use crate::error::{Error, Result};

/// The most protocols one JoinGroup may list (real clients send one to three); more is
/// `InconsistentGroupProtocol`.
pub const MAX_CLASSIC_PROTOCOLS: usize = 1_000;

/// The most bytes one JoinGroup's protocol names and metadata may take in all; more is
/// `InconsistentGroupProtocol`. The leader's JoinGroup response carries every member's.
pub const MAX_CLASSIC_PROTOCOL_BYTES: usize = 4 << 20;

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

impl ClassicJoinRequest {
    /// Kafka's checks on the protocols, plus this broker's bounds: a protocol type and at
    /// least one protocol, at most [`MAX_CLASSIC_PROTOCOLS`] of them and
    /// [`MAX_CLASSIC_PROTOCOL_BYTES`] of names and metadata. All are
    /// `InconsistentGroupProtocol`.
    pub(crate) fn check_protocols(&self) -> Result<()> {
        let bytes: usize = self
            .protocols
            .iter()
            .map(|(name, metadata)| name.len().saturating_add(metadata.len()))
            .fold(0, usize::saturating_add);
        let problem = if self.protocol_type.is_empty() || self.protocols.is_empty() {
            "no protocol type or no protocols"
        } else if self.protocols.len() > MAX_CLASSIC_PROTOCOLS {
            "too many protocols"
        } else if bytes > MAX_CLASSIC_PROTOCOL_BYTES {
            "protocol metadata too large"
        } else {
            return Ok(());
        };
        tracing::warn!(group = %self.group, member = %self.member_id, protocols = self.protocols.len(), bytes, problem, "JoinGroup refused");
        Err(Error::InconsistentGroupProtocol {
            group: self.group.clone(),
        })
    }
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
    /// Its parked JoinGroup.
    pub(super) join_waiter: Option<Waiter<ClassicJoinResponse>>,
    /// Its parked SyncGroup.
    pub(super) sync_waiter: Option<Waiter<ClassicSyncResponse>>,
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
            && now.saturating_duration_since(self.last_seen) >= self.session_timeout
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
    /// Per protocol name, how many members support it.
    supported: HashMap<String, usize>,
    /// Since when the group has been Empty with no members and no pending members.
    pub(super) idle_since: Option<Instant>,
    /// How long an idle group is kept: the longest session timeout asked for in it.
    pub(super) grace: Duration,
}

/// Each protocol name of `protocols` once.
fn distinct_names(protocols: &[(String, Bytes)]) -> impl Iterator<Item = &str> {
    let mut seen = HashSet::new();
    protocols
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(move |name| seen.insert(*name))
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
            supported: HashMap::new(),
            idle_since: None,
            grace: Duration::ZERO,
        }
    }

    fn count_protocols(&mut self, protocols: &[(String, Bytes)], add: bool) {
        for name in distinct_names(protocols) {
            if add {
                *self.supported.entry(name.to_string()).or_default() += 1;
            } else if let Some(count) = self.supported.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    self.supported.remove(name);
                }
            }
        }
    }

    /// Adds a member (counting its protocols).
    pub(super) fn insert_member(&mut self, id: String, member: ClassicMember) {
        self.count_protocols(&member.protocols, true);
        if let Some(old) = self.members.insert(id, member) {
            self.count_protocols(&old.protocols, false);
        }
    }

    /// Removes a member (uncounting its protocols).
    pub(super) fn take_member(&mut self, id: &str) -> Option<ClassicMember> {
        let member = self.members.remove(id)?;
        self.count_protocols(&member.protocols, false);
        Some(member)
    }

    /// A known member's rejoin: takes the request's protocols and timeouts.
    pub(super) fn update_member(&mut self, id: &str, req: &ClassicJoinRequest, now: Instant) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let old = std::mem::take(&mut m.protocols);
        m.update(req, now);
        self.count_protocols(&old, false);
        self.count_protocols(&req.protocols, true);
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

    /// Kafka's `validateMember`: when an instance id is given, it must be known and its
    /// current member id must be `member_id` (else `FencedInstanceId`: a replaced static
    /// member); and `member_id` must be a member.
    pub(super) fn validate_member(&self, member_id: &str, instance: Option<&str>) -> Result<()> {
        if let Some(instance) = instance {
            match self.static_members.get(instance) {
                None => return Err(self.unknown(member_id)),
                Some(current) if current != member_id => {
                    tracing::info!(group = %self.name, member = member_id, instance, current = %current, "static member fenced");
                    return Err(self.fenced(member_id, instance));
                }
                Some(_) => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(self.unknown(member_id))
        }
    }

    /// Whether a member joining with `protocol_type` and `protocols` fits the group: any
    /// non-empty type and list when it is empty; else the group's type and at least one
    /// protocol every member supports.
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let all = self.members.len();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.supported.get(name) == Some(&all))
    }

    /// Protocols every member supports.
    fn candidates(&self) -> HashSet<&str> {
        let all = self.members.len();
        self.supported
            .iter()
            .filter(|(_, count)| **count == all)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those every
    /// member supports; most votes wins (ties go to the smaller name).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(n.as_str()))
            {
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

    /// Whether the group has nothing left but its name (and maybe committed offsets).
    fn idle(&self) -> bool {
        self.state == ClassicGroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }

    /// Notes whether the group is idle since `now`, after a transition or a timer run.
    pub(super) fn note_idle(&mut self, now: Instant) {
        if !self.idle() {
            self.idle_since = None;
        } else if self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
    }

    /// Whether the group may be forgotten at `now` (if it has no committed offsets).
    pub(super) fn collectable(&self, now: Instant) -> bool {
        self.idle()
            && self
                .idle_since
                .is_some_and(|since| now >= since + self.grace)
    }

    /// The earliest moment a timer of the group fires (its collection included).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.last_seen + m.session_timeout);
        let collect = self
            .idle_since
            .filter(|_| self.idle())
            .map(|since| since + self.grace);
        [self.join_deadline, self.sync_deadline, collect]
            .into_iter()
            .flatten()
            .chain(self.pending.values().copied())
            .chain(sessions)
            .min()
    }

    /// Kafka's offset-commit check for a classic group (`transactional` commits skip the
    /// standalone-on-empty and the CompletingRebalance rules, as Kafka's TxnOffsetCommit).
    /// A commit naming an instance id is checked against it (`FencedInstanceId` for a
    /// replaced static member). A commit from a member renews its session.
    pub(crate) fn validate_offset_commit(
        &mut self,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        transactional: bool,
        now: Instant,
    ) -> Result<()> {
        let empty = self.state == ClassicGroupState::Empty;
        if generation < 0 && empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance.is_some() {
            self.validate_member(member_id, instance)?;
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
