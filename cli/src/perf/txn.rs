//! The transactions of `sluice perf produce --transactional`: when to commit (every N
//! records or every MS milliseconds), the commit latencies, and the transaction markers the
//! commits add to the log.

use std::time::{Duration, Instant};

use sluice::log::Producer;

use super::json_percentiles;
use crate::error::CliResult;

/// When a transaction is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitEvery {
    /// After this many records.
    Records(u64),
    /// Once this long has passed since the transaction began (checked after each record).
    Interval(Duration),
}

/// Opens transactions as records are sent and commits them as [`CommitEvery`] says.
#[derive(Debug)]
pub struct Transactions<'a> {
    producer: &'a Producer,
    every: CommitEvery,
    /// When the open transaction began, if one is open.
    opened: Option<Instant>,
    /// Records sent in the open transaction.
    records: u64,
    /// Partitions written in the open transaction: each gets a marker at its commit.
    touched: Vec<bool>,
    /// Time spent in each `commit_transaction`.
    commits: Vec<Duration>,
    /// Markers written by the commits so far.
    markers: i64,
}

impl<'a> Transactions<'a> {
    /// Registers the producer's transactional id (`init_transactions`).
    pub fn init(producer: &'a Producer, every: CommitEvery, partitions: usize) -> CliResult<Self> {
        producer.init_transactions()?;
        Ok(Self {
            producer,
            every,
            opened: None,
            records: 0,
            touched: vec![false; partitions],
            commits: Vec::new(),
            markers: 0,
        })
    }

    /// Call before sending a record to `partition`: begins a transaction if none is open.
    pub fn before_send(&mut self, partition: usize) -> CliResult {
        if self.opened.is_none() {
            self.producer.begin_transaction()?;
            self.opened = Some(Instant::now());
            self.records = 0;
        }
        if let Some(slot) = self.touched.get_mut(partition) {
            *slot = true;
        }
        Ok(())
    }

    /// Call after sending a record: commits when the transaction is due.
    pub fn after_send(&mut self) -> CliResult {
        self.records += 1;
        let due = match (self.every, self.opened) {
            (CommitEvery::Records(n), _) => self.records >= n,
            (CommitEvery::Interval(every), Some(opened)) => opened.elapsed() >= every,
            (CommitEvery::Interval(_), None) => false,
        };
        if due { self.commit() } else { Ok(()) }
    }

    /// Commits the open transaction, if any (call once all records are sent).
    pub fn finish(&mut self) -> CliResult {
        if self.opened.is_some() {
            self.commit()?;
        }
        Ok(())
    }

    /// After a failure: aborts the open transaction, if any, so it does not hold back the
    /// last stable offset until it times out. Errors are only logged.
    pub fn abort_open(&mut self) {
        if self.opened.take().is_some()
            && let Err(e) = self.producer.abort_transaction()
        {
            tracing::warn!(error = %e, "aborting the open transaction failed");
        }
    }

    fn commit(&mut self) -> CliResult {
        let start = Instant::now();
        self.producer.commit_transaction()?;
        self.commits.push(start.elapsed());
        self.opened = None;
        self.markers += self.touched.iter().filter(|&&t| t).count() as i64;
        self.touched.fill(false);
        Ok(())
    }

    /// Transaction markers the commits wrote (one per partition per transaction).
    pub fn markers(&self) -> i64 {
        self.markers
    }

    /// The `"commit_ms":{"p50":..,"p99":..,"count":..}` field.
    pub fn commit_json(&mut self) -> String {
        let count = self.commits.len();
        match json_percentiles(&mut self.commits) {
            Some((p50, p99, _)) => {
                format!("\"commit_ms\":{{\"p50\":{p50},\"p99\":{p99},\"count\":{count}}}")
            }
            None => "\"commit_ms\":null".to_string(),
        }
    }
}
