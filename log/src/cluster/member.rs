//! The group member of the seam: how a stream thread learns which tasks are its own.
//!
//! Each member subscribes to sets of co-partitioned topics (one set per sub-topology) and is
//! given partition numbers of each set: the same numbers of every topic in a set, so the
//! records that join land on one member. A new assignment always means a new generation
//! (eager semantics on both backends): the offsets of the old one can no longer be
//! committed, so the thread calls [`GroupMember::poll_group`] only when it has nothing
//! uncommitted (right after a commit, or when idle).

use std::time::Duration;

use super::ClusterError;
use crate::topic::TopicPartition;

/// How a [`GroupMember`] joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// The group (the runtime uses the application id).
    pub group: String,
    /// Sets of co-partitioned topics; every topic of a set has the same partition count
    /// (checked before joining). The first of each set leads: its partitions stand for the
    /// set's in the group.
    pub co_partitioned: Vec<Vec<String>>,
    /// How long the group waits for a heartbeat before it drops the member.
    pub session_timeout: Duration,
    /// How long a member may go between two `poll_group` calls, and how long a rebalance
    /// may take (Kafka's `max.poll.interval.ms`).
    pub poll_interval: Duration,
    /// A name for the client in the cluster's logs and metrics.
    pub client_id: String,
}

impl GroupSpec {
    /// A member of `group` reading `co_partitioned`; 10 s sessions, 5 min poll interval.
    pub fn new(group: impl Into<String>, co_partitioned: Vec<Vec<String>>) -> Self {
        let group = group.into();
        Self {
            client_id: group.clone(),
            group,
            co_partitioned,
            session_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(300),
        }
    }

    /// Sets the session timeout.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets the longest time between two polls of the group.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The index of the set whose lead topic is `topic`.
    pub fn set_led_by(&self, topic: &str) -> Option<usize> {
        self.co_partitioned
            .iter()
            .position(|set| set.first().is_some_and(|lead| lead == topic))
    }
}

/// A member's share of the group in one generation: per co-partitioned set, its partition
/// numbers, as `(set index, partition)`, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// `(set index, partition)` pairs, sorted.
    pub partitions: Vec<(usize, i32)>,
    /// Whether this generation directly follows the member's previous one, its membership
    /// never lost in between (no session expiry, no eviction, no generation it missed). Then
    /// a partition it had in the previous generation and has again was nobody else's
    /// meanwhile, and the task over it may keep its state. `false` on the first assignment
    /// and whenever the member cannot tell.
    pub continuous: bool,
}

impl Assignment {
    /// The assignment of the lead-topic partitions in `partitions` (others are ignored).
    pub fn from_lead_partitions(spec: &GroupSpec, partitions: &[TopicPartition]) -> Self {
        let mut pairs: Vec<(usize, i32)> = partitions
            .iter()
            .filter_map(|tp| Some((spec.set_led_by(&tp.topic)?, tp.partition)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        Self {
            partitions: pairs,
            continuous: false,
        }
    }

    /// The same assignment, marked [continuous](Self::continuous) or not.
    pub fn with_continuous(mut self, continuous: bool) -> Self {
        self.continuous = continuous;
        self
    }
}

/// What [`GroupMember::poll_group`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// Same generation, same partitions.
    Unchanged,
    /// A new generation, with this member's share of it.
    Assigned(Assignment),
}

/// A member of a consumer group.
pub trait GroupMember: Send {
    /// What its calls fail with.
    type Error: ClusterError;
    /// Who it is in the group, for `send_offsets_to_transaction`.
    type Metadata;

    /// Serves the membership. The first call joins and waits, up to `timeout`, for the
    /// first assignment; later calls keep the member alive (embedded: a heartbeat; Kafka:
    /// librdkafka's events) and, when the group is rebalancing, wait up to `timeout` for the
    /// new assignment. `Unchanged` if none came in time.
    fn poll_group(&mut self, timeout: Duration) -> Result<GroupEvent, Self::Error>;

    /// Who it is now (group, generation, member id).
    fn metadata(&self) -> Result<Self::Metadata, Self::Error>;

    /// The group's committed offsets of `tps` (`None`: nothing committed), waiting for
    /// transactional commits in flight (KIP-447 stable offsets).
    fn committed(
        &mut self,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, Self::Error>;

    /// Commits offsets outside a transaction (at-least-once processing), as this member in
    /// its generation.
    fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), Self::Error>;

    /// Leaves the group, so the others rebalance now rather than after a session timeout.
    fn leave(self) -> Result<(), Self::Error>;
}
