//! [`KafkaMember`]: the runtime's group member on librdkafka, the Kafka side of
//! `sluice_log::cluster::GroupMember`.
//!
//! - The classic protocol with the `range` assignor: with identical subscriptions and equal
//!   partition counts it gives each member the same partition numbers of every topic, so
//!   co-partitioned topics stay together. (Cooperative sticky would split them; KIP-848's
//!   server-side range would work on Kafka 4.x, but `sluice broker` serves the classic
//!   protocol only.) Each assignment is checked: a set whose topics got different partition
//!   numbers is a fatal error naming them.
//! - This handle only holds the membership: it subscribes to every topic, and pauses what it
//!   is assigned at once, so it fetches nothing; the stream thread reads through its own
//!   assign-mode `KafkaConsumer`. librdkafka heartbeats on its own thread; rebalance events
//!   are served inside `poll`, on the stream thread, when it calls `poll_group`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_log::TopicPartition;
use sluice_log::cluster::{Assignment, GroupEvent, GroupSpec};

use crate::config::KafkaConfig;
use crate::error::{KafkaClusterError, Result};

/// A rebalance event, kept until `poll_group` takes it.
#[derive(Debug)]
enum Event {
    Assigned(Vec<TopicPartition>),
    /// The previous assignment was given up; `lost` when librdkafka says it was lost (the
    /// session expired or the member was fenced), not handed back in a rebalance.
    Revoked {
        lost: bool,
    },
    Failed(KafkaError),
}

#[derive(Default)]
struct MemberContext {
    events: Mutex<Vec<Event>>,
    /// Whether the assignment being revoked was lost, as seen before the revoke clears it.
    lost: Mutex<bool>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            *self.lost.lock().unwrap_or_else(PoisonError::into_inner) = consumer.assignment_lost();
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(list) => {
                if let Err(e) = consumer.pause(list) {
                    tracing::warn!(error = %e, "could not pause the member's partitions; it fetches what nobody reads");
                }
                Event::Assigned(
                    list.elements()
                        .iter()
                        .map(|e| TopicPartition::new(e.topic(), e.partition()))
                        .collect(),
                )
            }
            Rebalance::Revoke(_) => Event::Revoked {
                lost: std::mem::take(
                    &mut *self.lost.lock().unwrap_or_else(PoisonError::into_inner),
                ),
            },
            Rebalance::Error(e) => Event::Failed(e.clone()),
        };
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

/// A member of a consumer group on a Kafka cluster.
pub struct KafkaMember {
    consumer: BaseConsumer<MemberContext>,
    spec: GroupSpec,
    joined: bool,
    rebalancing: bool,
    /// Since the last assignment returned: `Some(true)` after one clean revoke, `Some(false)`
    /// once anything broke the member's continuity (a lost assignment, a generation it
    /// never returned), `None` before any revoke.
    handed_back: Option<bool>,
    /// When `poll_group` last returned.
    last_poll: Option<Instant>,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMember")
            .field("group", &self.spec.group)
            .field("joined", &self.joined)
            .finish_non_exhaustive()
    }
}

impl KafkaMember {
    /// A member of `spec.group` on the cluster `config` names, subscribed to every topic of
    /// `spec` (it joins as `poll_group` is called).
    pub fn new(config: &KafkaConfig, spec: &GroupSpec) -> Result<Self> {
        let session = spec.session_timeout.as_millis();
        let mut client = config.client_config();
        client
            .set("group.id", &spec.group)
            .set("client.id", &spec.client_id)
            .set("group.protocol", "classic")
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", session.to_string())
            .set(
                "heartbeat.interval.ms",
                // A member learns of a rebalance at its next heartbeat: at most 500 ms
                // (librdkafka's 3 s default made a join or leave wait up to 3 s).
                (session / 3).clamp(1, 500).to_string(),
            )
            .set(
                "max.poll.interval.ms",
                spec.poll_interval.as_millis().to_string(),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer<MemberContext> = client
            .create_with_context(MemberContext::default())
            .map_err(KafkaClusterError::Config)?;
        let topics: Vec<&str> = spec
            .co_partitioned
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        consumer
            .subscribe(&topics)
            .map_err(KafkaClusterError::client(format!(
                "subscribing group `{}` to {topics:?}",
                spec.group
            )))?;
        Ok(Self {
            consumer,
            spec: spec.clone(),
            joined: false,
            rebalancing: false,
            handed_back: None,
            last_poll: None,
            timeout: config.timeout(),
        })
    }

    /// The assignment `partitions` stand for, once every set is checked to have the same
    /// partition numbers on each of its topics.
    fn checked(&self, partitions: &[TopicPartition]) -> Result<Assignment> {
        let mut by_topic: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic
                .entry(tp.topic.as_str())
                .or_default()
                .insert(tp.partition);
        }
        let none = BTreeSet::new();
        for set in &self.spec.co_partitioned {
            let Some(lead) = set.first() else { continue };
            let lead_partitions = by_topic.get(lead.as_str()).unwrap_or(&none);
            for topic in &set[1..] {
                let got = by_topic.get(topic.as_str()).unwrap_or(&none);
                if got != lead_partitions {
                    return Err(KafkaClusterError::CoPartitioning {
                        group: self.spec.group.clone(),
                        detail: format!(
                            "{lead} got partitions {lead_partitions:?} but {topic} got {got:?}"
                        ),
                    });
                }
            }
        }
        Ok(Assignment::from_lead_partitions(&self.spec, partitions))
    }

    /// Serves the membership; see `GroupMember::poll_group`.
    pub fn poll_group(&mut self, timeout: Duration) -> Result<GroupEvent> {
        // A long gap since the last poll may have let a rebalance complete without this
        // member (the group waits `max.poll.interval.ms` for it to rejoin), and librdkafka
        // does not always report that as a lost assignment: the next one is not continuous.
        if self
            .last_poll
            .is_some_and(|t| t.elapsed() > self.spec.poll_interval / 2)
        {
            self.handed_back = Some(false);
        }
        let event = self.serve_group(timeout);
        self.last_poll = Some(Instant::now());
        event
    }

    fn serve_group(&mut self, timeout: Duration) -> Result<GroupEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let waiting = !self.joined || self.rebalancing;
            let wait = if waiting {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            } else {
                Duration::ZERO
            };
            // Paused partitions deliver nothing; a fetch error for them is not ours to act on.
            if let Some(Err(e)) = self.consumer.poll(wait) {
                tracing::debug!(group = %self.spec.group, error = %e, "member poll");
            }
            let events = std::mem::take(
                &mut *self
                    .consumer
                    .context()
                    .events
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            let mut assigned = None;
            for event in events {
                match event {
                    Event::Revoked { lost } => {
                        self.rebalancing = true;
                        self.handed_back = Some(self.handed_back.unwrap_or(true) && !lost);
                    }
                    Event::Assigned(partitions) => {
                        if assigned.is_some() {
                            // A generation in between that the thread never saw.
                            self.handed_back = Some(false);
                        }
                        assigned = Some(partitions);
                    }
                    Event::Failed(source) => {
                        return Err(KafkaClusterError::Client {
                            call: format!("rebalancing group `{}`", self.spec.group),
                            source,
                        });
                    }
                }
            }
            if let Some(partitions) = assigned {
                // Continuous: a member already, which handed its partitions back in one
                // eager rebalance without losing them and never went half a poll interval
                // without polling. librdkafka can still skip a generation silently (a
                // SyncGroup refused mid-rebalance, or UNKNOWN_MEMBER_ID on the JoinGroup
                // after a clean revoke) and the rdkafka crate shows neither member id nor
                // generation, so this is a hint: the runtime keeps a task only if its
                // committed offsets and changelog ends have not moved either.
                let continuous = self.joined && self.handed_back == Some(true);
                self.joined = true;
                self.rebalancing = false;
                self.handed_back = None;
                let assignment = self.checked(&partitions)?.with_continuous(continuous);
                return Ok(GroupEvent::Assigned(assignment));
            }
            // A revoke served just now means a new assignment is coming: wait for it (the
            // thread must not go on with tasks that may be someone else's already).
            let settled = self.joined && !self.rebalancing;
            if settled || Instant::now() >= deadline {
                return Ok(GroupEvent::Unchanged);
            }
        }
    }

    /// Who this member is now, for `send_offsets_to_transaction`. Refused while a
    /// rebalance is under way (classed Migrated): librdkafka moves to the new generation as
    /// soon as it has rejoined, before this member has its new assignment, and offsets of
    /// the old tasks sent with it would be accepted.
    pub fn metadata(&self) -> Result<ConsumerGroupMetadata> {
        if self.rebalancing || !self.joined {
            return Err(KafkaClusterError::NotInGeneration {
                group: self.spec.group.clone(),
            });
        }
        self.consumer
            .group_metadata()
            .ok_or_else(|| KafkaClusterError::NotInGeneration {
                group: self.spec.group.clone(),
            })
    }

    /// The group's committed offsets of `tps`, stable (read_committed asks with
    /// `require_stable`).
    pub fn committed(&self, tps: &[TopicPartition]) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let what = format!(
            "fetching the committed offsets of group `{}`",
            self.spec.group
        );
        crate::consumer::fetch_committed(&self.consumer, tps, self.timeout, &what)
    }

    /// Commits offsets outside a transaction, as this member in its generation (refused,
    /// classed Migrated, while a rebalance is under way).
    pub fn commit_offsets(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if self.rebalancing || !self.joined {
            return Err(KafkaClusterError::NotInGeneration {
                group: self.spec.group.clone(),
            });
        }
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for (tp, offset) in offsets {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(KafkaClusterError::client(format!(
                    "committing offset {offset} of {tp}"
                )))?;
        }
        self.consumer
            .commit(&list, CommitMode::Sync)
            .map_err(KafkaClusterError::client(format!(
                "committing offsets of group `{}`",
                self.spec.group
            )))
    }

    /// Leaves the group (librdkafka's close sends LeaveGroup).
    pub fn leave(self) -> Result<()> {
        self.consumer.unsubscribe();
        Ok(())
    }
}
