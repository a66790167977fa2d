//! `sluice --bootstrap-server HOST:PORT consume TOPIC`: prints a topic's records from a
//! Kafka cluster, with the embedded command's flags and output.
//!
//! - Alone, it is sluice-kafka's assign-mode consumer over the partitions asked for, each
//!   started at the log start, the high watermark, or `--offset`.
//! - With `--group G` it is also a member of G (sluice-kafka's group member: the classic
//!   protocol, `range`): each partition the group assigns it starts at G's committed offset
//!   (or the log start / high watermark when there is none), and after each poll's records
//!   are printed, and on exit, the offset after the last printed record of every assigned
//!   partition is committed. A commit refused because the group is rebalancing is logged
//!   and skipped: the group's next owner of those partitions prints those records again.
//!   The idle timeout starts once the group has assigned the partitions (a Kafka broker
//!   delays a new group's first assignment by `group.initial.rebalance.delay.ms`, 3 s by
//!   default); the join itself is bounded by --request-timeout-ms.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use sluice::kafka::{KafkaConsumer, KafkaMember};
use sluice::log::cluster::{
    Cluster, ClusterError, ConsumerSpec, ErrorClass, GroupEvent, GroupSpec,
};
use sluice::log::{ConsumerRecord, OffsetReset, TopicPartition};

use super::{ClusterArgs, Remote, RemoteError, connect};
use crate::consume::{ConsumeArgs, check_args, write_record};
use crate::error::CliResult;
use crate::output::{Out, stdout, write_err};

/// The longest a poll waits, so the group membership is served at least this often.
const POLL_SLICE: Duration = Duration::from_millis(200);

/// Runs `consume` on the cluster.
pub fn run(args: &ClusterArgs, consume: &ConsumeArgs) -> CliResult {
    check_args(consume)?;
    let remote = connect(args)?;
    let partitions = remote.partition_count(&consume.topic)?;
    match &consume.group {
        Some(group) => in_group(&remote, consume, group, args.request_timeout),
        None => assigned(&remote, consume, partitions),
    }
}

/// The consumer's spec: the isolation asked for, where an out-of-range position restarts.
fn consumer_spec(consume: &ConsumeArgs, reset: OffsetReset) -> ConsumerSpec {
    let mut spec = ConsumerSpec::read_committed("sluice-console-consumer").with_reset(reset);
    spec.isolation = consume.isolation.into();
    spec
}

/// Without a group: the partitions asked for, at the position asked for.
fn assigned(remote: &Remote, consume: &ConsumeArgs, partitions: i32) -> CliResult {
    let topic = consume.topic.as_str();
    let chosen: Vec<i32> = match consume.partition {
        Some(p) => {
            remote.check_partition(topic, p, partitions)?;
            vec![p]
        }
        None => (0..partitions).collect(),
    };
    let mut at = Vec::with_capacity(chosen.len());
    for p in chosen {
        let offsets = remote.offsets(topic, p)?;
        let start = match consume.offset {
            Some(offset) if offset < offsets.earliest || offset > offsets.latest => {
                return Err(RemoteError::OffsetOutOfRange {
                    topic: topic.to_string(),
                    partition: p,
                    offset,
                    log_start: offsets.earliest,
                    end: offsets.latest,
                }
                .into());
            }
            Some(offset) => offset,
            None if consume.from_beginning => offsets.earliest,
            None => offsets.latest,
        };
        at.push((TopicPartition::new(topic, p), start));
    }
    // A given offset must stay valid; otherwise a position lost to retention restarts at
    // the log start.
    let reset = if consume.offset.is_some() {
        OffsetReset::None
    } else {
        OffsetReset::Earliest
    };
    let mut consumer = remote
        .cluster
        .consumer(&consumer_spec(consume, reset))
        .map_err(remote.fail())?;
    consumer.assign(&at).map_err(remote.fail())?;
    let mut printer = Printer::new(consume);
    while let Some(wait) = printer.next_wait() {
        let records = consumer.poll(wait).map_err(remote.fail())?;
        printer.print(&records)?;
    }
    printer.finish()
}

/// With `--group`: a member of the group, reading what it is assigned.
fn in_group(
    remote: &Remote,
    consume: &ConsumeArgs,
    group: &str,
    join_timeout: Duration,
) -> CliResult {
    let mut spec = GroupSpec::new(group, vec![vec![consume.topic.clone()]]);
    spec.client_id = "sluice-console-consumer".into();
    let mut member = remote.cluster.member(&spec).map_err(remote.fail())?;
    let mut session = Session {
        remote,
        consume,
        group,
        consumer: None,
        next: BTreeMap::new(),
        committed: BTreeMap::new(),
    };
    let result = session.run(&mut member, join_timeout);
    // Leave the group whatever happened (others rebalance at once); the first error wins.
    let left = member.leave().map_err(remote.fail());
    result.and(left)
}

/// A group member's reading: what it was assigned and how far it printed.
struct Session<'a> {
    remote: &'a Remote,
    consume: &'a ConsumeArgs,
    group: &'a str,
    /// The reading consumer, created at the first assignment.
    consumer: Option<KafkaConsumer>,
    /// Per assigned partition, the offset after the last record printed (or its start).
    next: BTreeMap<i32, i64>,
    /// Per partition, the offset last committed (or found committed).
    committed: BTreeMap<i32, i64>,
}

impl Session<'_> {
    fn run(&mut self, member: &mut KafkaMember, join_timeout: Duration) -> CliResult {
        let mut printer = Printer::new(self.consume);
        let joining_since = Instant::now();
        let mut assigned = false;
        loop {
            let wait = if assigned {
                match printer.next_wait() {
                    Some(wait) => wait,
                    None => break,
                }
            } else if joining_since.elapsed() >= join_timeout {
                return Err(RemoteError::JoinTimeout {
                    group: self.group.to_string(),
                    topic: self.consume.topic.clone(),
                    waited: join_timeout,
                }
                .into());
            } else {
                POLL_SLICE
            };
            // Returns at once while the membership is settled; during a rebalance it waits
            // for the new assignment, so nothing is read meanwhile.
            let event = member.poll_group(wait).map_err(self.remote.fail())?;
            if let GroupEvent::Assigned(assignment) = event {
                let partitions: Vec<i32> = assignment.partitions.iter().map(|&(_, p)| p).collect();
                self.assign(member, &partitions)?;
                if !assigned {
                    assigned = true;
                    printer.restart_idle_clock();
                }
                continue;
            }
            if !assigned {
                continue;
            }
            let Some(consumer) = self.consumer.as_mut() else {
                continue;
            };
            let records = consumer.poll(wait).map_err(self.remote.fail())?;
            for record in printer.print(&records)? {
                self.next.insert(record.partition, record.offset + 1);
            }
            self.commit(member)?;
        }
        self.commit(member)?;
        printer.finish()
    }

    /// Reads `partitions` from the group's committed offsets (or the reset position).
    fn assign(&mut self, member: &mut KafkaMember, partitions: &[i32]) -> CliResult {
        let topic = self.consume.topic.as_str();
        let tps: Vec<TopicPartition> = partitions
            .iter()
            .map(|&p| TopicPartition::new(topic, p))
            .collect();
        let found = member.committed(&tps).map_err(self.remote.fail())?;
        self.next.clear();
        self.committed.clear();
        for (tp, offset) in found {
            let start = match offset {
                Some(offset) => {
                    self.committed.insert(tp.partition, offset);
                    offset
                }
                None => {
                    let offsets = self.remote.offsets(topic, tp.partition)?;
                    if self.consume.from_beginning {
                        offsets.earliest
                    } else {
                        offsets.latest
                    }
                }
            };
            self.next.insert(tp.partition, start);
        }
        let at: Vec<(TopicPartition, i64)> = self
            .next
            .iter()
            .map(|(&p, &offset)| (TopicPartition::new(topic, p), offset))
            .collect();
        tracing::info!(group = self.group, assignment = ?at, "assigned");
        let consumer = match &mut self.consumer {
            Some(consumer) => consumer,
            None => {
                let reset = if self.consume.from_beginning {
                    OffsetReset::Earliest
                } else {
                    OffsetReset::Latest
                };
                let spec = consumer_spec(self.consume, reset);
                let created = self.remote.cluster.consumer(&spec);
                self.consumer.insert(created.map_err(self.remote.fail())?)
            }
        };
        consumer.assign(&at).map_err(self.remote.fail())
    }

    /// Commits every assigned partition whose offset moved since the last commit.
    fn commit(&mut self, member: &mut KafkaMember) -> CliResult {
        let topic = self.consume.topic.as_str();
        let moved: Vec<(TopicPartition, i64)> = self
            .next
            .iter()
            .filter(|(p, offset)| self.committed.get(p) != Some(offset))
            .map(|(&p, &offset)| (TopicPartition::new(topic, p), offset))
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        match member.commit_offsets(&moved) {
            Ok(()) => {
                for (tp, offset) in moved {
                    self.committed.insert(tp.partition, offset);
                }
                Ok(())
            }
            Err(e) if e.class() == ErrorClass::Migrated => {
                tracing::warn!(group = self.group, error = %e, "offsets not committed: the group is rebalancing; the records printed since the last commit will be read again by the group");
                Ok(())
            }
            Err(e) => Err(self.remote.fail()(e)),
        }
    }
}

/// Prints records up to --max-records and tells when the idle timeout has passed.
struct Printer<'a> {
    consume: &'a ConsumeArgs,
    out: Out,
    printed: u64,
    last_record: Instant,
}

impl<'a> Printer<'a> {
    fn new(consume: &'a ConsumeArgs) -> Self {
        Self {
            consume,
            out: stdout(),
            printed: 0,
            last_record: Instant::now(),
        }
    }

    /// Counts the idle time from now.
    fn restart_idle_clock(&mut self) {
        self.last_record = Instant::now();
    }

    /// How long the next poll may wait; `None` once --max-records are printed or the idle
    /// timeout has passed.
    fn next_wait(&self) -> Option<Duration> {
        if self
            .consume
            .max_records
            .is_some_and(|max| self.printed >= max)
        {
            return None;
        }
        if self.consume.timeout_ms == 0 {
            return Some(POLL_SLICE);
        }
        let limit = Duration::from_millis(self.consume.timeout_ms);
        let left = limit.saturating_sub(self.last_record.elapsed());
        (!left.is_zero()).then(|| left.min(POLL_SLICE))
    }

    /// Prints what --max-records leaves room for and returns those records.
    fn print<'r>(&mut self, records: &'r [ConsumerRecord]) -> CliResult<&'r [ConsumerRecord]> {
        if records.is_empty() {
            return Ok(records);
        }
        self.last_record = Instant::now();
        let room = self.consume.max_records.map_or(usize::MAX, |max| {
            usize::try_from(max.saturating_sub(self.printed)).unwrap_or(usize::MAX)
        });
        let shown = &records[..records.len().min(room)];
        for record in shown {
            write_record(&mut self.out, record, self.consume).map_err(write_err)?;
        }
        self.printed += shown.len() as u64;
        self.out.flush().map_err(write_err)?;
        Ok(shown)
    }

    fn finish(mut self) -> CliResult {
        self.out.flush().map_err(write_err)?;
        tracing::info!(topic = %self.consume.topic, records = self.printed, "consumed");
        Ok(())
    }
}
