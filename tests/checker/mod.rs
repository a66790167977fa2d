//! A Jepsen-style history checker for the log's delivery guarantees. A workload records what
//! every client did and saw in a [`History`]; [`check`] looks for the anomalies:
//!
//! - aborted read (G1a): a read_committed reader returned a record of an aborted transaction;
//! - uncommitted read: a read_committed reader returned a record of a transaction before its
//!   commit had even been asked for, or of one that never committed;
//! - duplicate: a record appears twice in the log or in one reader's polls;
//! - lost write: an acknowledged non-transactional record, or a record of a committed
//!   transaction, is missing from the final log;
//! - inconsistent offsets: one partition offset read with two different values (for
//!   read_uncommitted reads, only records acknowledged as durable: a power loss may undo an
//!   open or aborted transaction's records and reuse their offsets);
//! - non-monotonic poll: a reader (assign mode) went back on a partition;
//! - torn transaction: a committed transaction's records (across partitions) or its offset
//!   commit are visible only in part at the end;
//! - wrong group offsets: the group's committed offsets differ from what the last committed
//!   transaction (or plain commit) said.
//!
//! Shared by the log's and (later) the runtime's workloads.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// A record's identity: the value the workload wrote (unique per record).
pub type Value = String;

/// How a transaction ended, as far as its client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `end_txn(commit)` was acknowledged.
    Committed,
    /// Aborted by the client, fenced by a newer instance, killed or timed out.
    Aborted,
    /// The end was asked for but its answer was lost (e.g. a crash): either is allowed.
    Unknown,
}

/// One thing a client did or saw.
#[derive(Debug, Clone)]
pub enum Event {
    /// A transactional record was acknowledged into `txn` on `partition`.
    TxnWrite {
        txn: u64,
        partition: i32,
        value: Value,
    },
    /// A transaction's client asked to commit (the commit point may follow).
    CommitAsked { txn: u64 },
    /// A transaction's offsets for the group, sent inside it.
    TxnOffsets { txn: u64, offsets: Vec<(i32, i64)> },
    /// A transaction ended.
    Ended { txn: u64, outcome: Outcome },
    /// A plain (non-transactional) record was acknowledged.
    PlainWrite { partition: i32, value: Value },
    /// A reader's poll and what it returned: (partition, offset, value).
    Poll {
        reader: u32,
        committed: bool,
        records: Vec<(i32, i64, Value)>,
    },
    /// A reader was re-created (after a crash): its positions restart from where it was.
    /// After a power loss a read_uncommitted reader may have read records that were never
    /// durable (of open or aborted transactions) and are gone: its view starts over.
    ReaderRestarted { reader: u32, after_power_loss: bool },
    /// A fault was injected.
    Fault { what: String },
}

/// Everything that happened, in order.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// The events, in the order they happened.
    pub events: Vec<Event>,
}

impl History {
    /// Records an event.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// What the workload read at the very end, from a fresh reader on the final broker.
#[derive(Debug, Default, Clone)]
pub struct FinalState {
    /// read_committed: (partition, offset, value) of every record.
    pub committed: Vec<(i32, i64, Value)>,
    /// read_uncommitted: the same for everything in the log.
    pub uncommitted: Vec<(i32, i64, Value)>,
    /// The group's committed offsets, by partition.
    pub group_offsets: BTreeMap<i32, i64>,
}

/// One anomaly, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Its class.
    pub kind: &'static str,
    /// The evidence.
    pub detail: String,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

fn anomaly(kind: &'static str, detail: String) -> Anomaly {
    Anomaly { kind, detail }
}

/// Checks a history and the final state; returns every anomaly found.
pub fn check(history: &History, end: &FinalState) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut txn_of: HashMap<&str, u64> = HashMap::new();
    let mut txn_values: BTreeMap<u64, Vec<(i32, &str)>> = BTreeMap::new();
    let mut outcome: HashMap<u64, Outcome> = HashMap::new();
    let mut commit_asked_at: HashMap<u64, usize> = HashMap::new();
    let mut txn_offsets: BTreeMap<u64, Vec<(i32, i64)>> = BTreeMap::new();
    let mut ended_order: Vec<u64> = Vec::new();
    let mut plain: Vec<(i32, &str)> = Vec::new();
    for (i, e) in history.events.iter().enumerate() {
        match e {
            Event::TxnWrite {
                txn,
                partition,
                value,
            } => {
                txn_of.insert(value, *txn);
                txn_values
                    .entry(*txn)
                    .or_default()
                    .push((*partition, value));
            }
            Event::CommitAsked { txn } => {
                commit_asked_at.entry(*txn).or_insert(i);
            }
            Event::TxnOffsets { txn, offsets } => {
                txn_offsets.entry(*txn).or_default().extend(offsets)
            }
            Event::Ended { txn, outcome: o } => {
                outcome.insert(*txn, *o);
                ended_order.push(*txn);
            }
            Event::PlainWrite { partition, value } => plain.push((*partition, value)),
            _ => {}
        }
    }
    let outcome_of = |txn: u64| outcome.get(&txn).copied().unwrap_or(Outcome::Aborted);

    // Reads during the run.
    let mut positions: HashMap<(u32, i32), i64> = HashMap::new();
    let mut seen_by: HashMap<u32, BTreeSet<&str>> = HashMap::new();
    let mut at_offset: HashMap<(i32, i64), &str> = HashMap::new();
    let mut uncommitted_readers: BTreeSet<u32> = BTreeSet::new();
    for (i, e) in history.events.iter().enumerate() {
        match e {
            Event::ReaderRestarted {
                reader,
                after_power_loss: true,
            } if uncommitted_readers.contains(reader) => {
                positions.retain(|(r, _), _| r != reader);
                seen_by.remove(reader);
            }
            Event::Poll {
                reader,
                committed,
                records,
            } => {
                if !committed {
                    uncommitted_readers.insert(*reader);
                }
                for (p, o, v) in records {
                    // A read_uncommitted read of a record nobody acknowledged as durable (an
                    // open or aborted transaction's) may be undone by a power loss, and its
                    // offset reused: only durable records must keep their offsets.
                    let durable = *committed
                        || plain.iter().any(|(_, w)| *w == v.as_str())
                        || txn_of
                            .get(v.as_str())
                            .is_some_and(|t| outcome_of(*t) == Outcome::Committed);
                    if durable
                        && let Some(prev) = at_offset.insert((*p, *o), v)
                        && prev != v
                    {
                        out.push(anomaly(
                            "inconsistent offsets",
                            format!("{p}/{o} read as {prev} and as {v} (event {i})"),
                        ));
                    }
                    if let Some(last) = positions.insert((*reader, *p), *o)
                        && last >= *o
                    {
                        out.push(anomaly(
                            "non-monotonic poll",
                            format!("reader {reader} read {p}/{o} after {p}/{last} (event {i})"),
                        ));
                    }
                    if !seen_by.entry(*reader).or_default().insert(v) {
                        out.push(anomaly(
                            "duplicate",
                            format!("reader {reader} read {v} twice (event {i})"),
                        ));
                    }
                    if *committed && let Some(&txn) = txn_of.get(v.as_str()) {
                        match outcome_of(txn) {
                            Outcome::Aborted => out.push(anomaly(
                                "aborted read (G1a)",
                                format!("reader {reader} read {v} of aborted transaction {txn} at {p}/{o} (event {i})"),
                            )),
                            _ if commit_asked_at.get(&txn).is_none_or(|&at| at > i) => out.push(anomaly(
                                "uncommitted read",
                                format!("reader {reader} read {v} of transaction {txn} before its commit was asked (event {i})"),
                            )),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }

    // The final log.
    for (label, records, committed) in [
        ("read_committed", &end.committed, true),
        ("read_uncommitted", &end.uncommitted, false),
    ] {
        let mut values = BTreeSet::new();
        for (p, o, v) in records {
            if !values.insert(v.as_str()) {
                out.push(anomaly(
                    "duplicate",
                    format!("{v} appears twice in the final {label} log"),
                ));
            }
            if let Some(prev) = at_offset.insert((*p, *o), v)
                && prev != v
            {
                out.push(anomaly(
                    "inconsistent offsets",
                    format!("{p}/{o} read as {prev} during the run, {v} at the end"),
                ));
            }
            if committed
                && let Some(&txn) = txn_of.get(v.as_str())
                && outcome_of(txn) == Outcome::Aborted
            {
                out.push(anomaly(
                    "aborted read (G1a)",
                    format!("final read_committed log holds {v} of aborted transaction {txn}"),
                ));
            }
        }
        if committed {
            for (p, v) in &plain {
                if !values.contains(v) {
                    out.push(anomaly(
                        "lost write",
                        format!("acknowledged record {v} on partition {p} is missing"),
                    ));
                }
            }
            for (txn, written) in &txn_values {
                let present = written.iter().filter(|(_, v)| values.contains(v)).count();
                match outcome_of(*txn) {
                    Outcome::Committed if present < written.len() => out.push(anomaly(
                        "lost write",
                        format!(
                            "committed transaction {txn}: {present} of {} records visible",
                            written.len()
                        ),
                    )),
                    Outcome::Unknown if present != 0 && present != written.len() => {
                        out.push(anomaly(
                            "torn transaction",
                            format!(
                                "transaction {txn}: {present} of {} records visible",
                                written.len()
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
    }

    // Group offsets: the newest committed transaction that sent an offset for a partition
    // decides it (plain commits are not used by the log workload).
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    let mut unknown: BTreeSet<i32> = BTreeSet::new();
    for txn in &ended_order {
        let Some(offsets) = txn_offsets.get(txn) else {
            continue;
        };
        match outcome_of(*txn) {
            Outcome::Committed => {
                for (p, o) in offsets {
                    expected.insert(*p, *o);
                    unknown.remove(p);
                }
            }
            Outcome::Unknown => unknown.extend(offsets.iter().map(|(p, _)| *p)),
            Outcome::Aborted => {}
        }
    }
    for (p, o) in &end.group_offsets {
        if unknown.contains(p) {
            continue;
        }
        if expected.get(p) != Some(o) {
            out.push(anomaly(
                "wrong group offsets",
                format!(
                    "partition {p}: committed offset {o}, committed transactions said {:?}",
                    expected.get(p)
                ),
            ));
        }
    }
    for (p, o) in &expected {
        if !unknown.contains(p) && !end.group_offsets.contains_key(p) {
            out.push(anomaly(
                "wrong group offsets",
                format!("partition {p}: offset {o} of a committed transaction is missing"),
            ));
        }
    }
    out
}

/// Every record of `topic` (partitions `0..partitions`) from the start, at `isolation`, as
/// (partition, offset, value), read by a fresh consumer until it has been idle a while.
pub fn read_all(
    broker: &sluice::log::Broker,
    topic: &str,
    partitions: i32,
    isolation: sluice::log::IsolationLevel,
) -> Vec<(i32, i64, Value)> {
    use sluice::log::{Consumer, ConsumerConfig, TopicPartition};
    let mut consumer = Consumer::new(broker, ConsumerConfig::default().with_isolation(isolation));
    consumer
        .assign(
            (0..partitions)
                .map(|p| TopicPartition::new(topic, p))
                .collect(),
        )
        .expect("assign");
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 3 {
        let records = consumer
            .poll(std::time::Duration::from_millis(10))
            .expect("poll");
        if records.is_empty() {
            idle += 1;
        }
        out.extend(records.into_iter().map(|r| {
            let value = String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned();
            (r.partition, r.offset, value)
        }));
    }
    out
}

/// The history as numbered lines, for a failure report.
pub fn render(history: &History) -> String {
    history
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{i:4}: {e:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod self_tests {}
