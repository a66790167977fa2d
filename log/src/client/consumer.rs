//! The consumer: assigned partitions, a position per partition, `poll` with long polling,
//! `seek` and `position`, and Kafka's `auto.offset.reset` for positions that are unknown or
//! out of range. Batches are CRC-checked as they arrive (Kafka's `check.crcs`), and records
//! before the position in the first batch of a fetch are skipped.
//! Consumer groups come with the transactions issue.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::batch::{Header, split_batches};
use crate::broker::{Broker, FetchRequest, OffsetSpec};
use crate::error::{Error, Result};
use crate::storage::PartitionData;
use crate::topic::TopicPartition;
use crate::txn::IsolationLevel;

/// Where to start when a partition has no position or its position is out of range
/// (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start.
    #[default]
    Earliest,
    /// The log end: only new records.
    Latest,
    /// Fail with `OffsetOutOfRange`.
    None,
}

/// Consumer settings, named as Kafka's. Build with `Default` and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `auto.offset.reset`. Default earliest.
    pub auto_offset_reset: OffsetReset,
    /// Most records one `poll` returns (`max.poll.records`). Default 500.
    pub max_poll_records: usize,
    /// Bytes per partition per fetch (`max.partition.fetch.bytes`). Default 1 MiB.
    pub max_partition_fetch_bytes: usize,
    /// Bytes per fetch (`fetch.max.bytes`). Default 50 MiB.
    pub fetch_max_bytes: usize,
    /// `isolation.level`: read_committed (the default) or read_uncommitted.
    pub isolation: IsolationLevel,
    /// The consumer group (`group.id`), needed by `subscribe` and offset commits.
    pub group_id: Option<String>,
    /// A member that sends no heartbeat for this long is removed (`session.timeout.ms`).
    /// Default 45 s.
    pub session_timeout: Duration,
    /// How often `poll` sends a heartbeat (`heartbeat.interval.ms`). Default 3 s.
    pub heartbeat_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            auto_offset_reset: OffsetReset::Earliest,
            max_poll_records: 500,
            max_partition_fetch_bytes: 1 << 20,
            fetch_max_bytes: 50 << 20,
            isolation: IsolationLevel::ReadCommitted,
            group_id: None,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

impl ConsumerConfig {
    /// Sets `auto.offset.reset`.
    pub fn with_auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }
    /// Sets `max.poll.records`.
    pub fn with_max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n.max(1);
        self
    }
    /// Sets `group.id`.
    pub fn with_group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }
    /// Sets `session.timeout.ms`.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }
    /// Sets `heartbeat.interval.ms`.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }
    /// Sets `isolation.level`.
    pub fn with_isolation(mut self, isolation: IsolationLevel) -> Self {
        self.isolation = isolation;
        self
    }
    /// Sets `max.partition.fetch.bytes`.
    pub fn with_max_partition_fetch_bytes(mut self, bytes: usize) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The timestamp (ms).
    pub timestamp: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value (`None` for a tombstone).
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Vec<Header>,
}

/// A consumer of assigned partitions. Not shared between threads: one per thread, as Kafka's.
#[derive(Debug)]
pub struct Consumer {
    pub(super) broker: Broker,
    pub(super) config: ConsumerConfig,
    pub(super) assignment: Vec<(TopicPartition, Arc<str>)>,
    pub(super) positions: HashMap<TopicPartition, i64>,
    pub(super) buffer: VecDeque<ConsumerRecord>,
    /// Per partition, the end its last fetch reported: the last stable offset under
    /// read_committed, else the high watermark (for `current_lag`).
    pub(super) fetched_ends: HashMap<TopicPartition, i64>,
    /// Set while subscribed to a group.
    pub(super) membership: Option<super::consumer_group::Membership>,
}

impl Consumer {
    /// A consumer with no assignment.
    pub fn new(broker: &Broker, config: ConsumerConfig) -> Self {
        Self {
            broker: broker.clone(),
            config,
            assignment: Vec::new(),
            positions: HashMap::new(),
            buffer: VecDeque::new(),
            fetched_ends: HashMap::new(),
            membership: None,
        }
    }

    /// Replaces the assignment (manual mode; not while subscribed). Every partition must exist. Positions of partitions kept
    /// are kept; new ones start per `auto_offset_reset` unless sought.
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        if self.membership.is_some() {
            return Err(Error::IllegalState(
                "this consumer is subscribed to a group; unsubscribe before assigning".into(),
            ));
        }
        self.set_assignment(partitions)
    }

    /// Sets the partitions polled, keeping the positions of those kept.
    pub(super) fn set_assignment(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        for tp in &partitions {
            let count = self.broker.partition_count(&tp.topic)?;
            if !(0..count).contains(&tp.partition) {
                return Err(Error::UnknownPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    partitions: count,
                });
            }
        }
        // Buffered records go back to the log: each partition resumes at its first one.
        for record in std::mem::take(&mut self.buffer).into_iter().rev() {
            let tp = TopicPartition::new(record.topic.as_ref(), record.partition);
            self.positions.insert(tp, record.offset);
        }
        self.positions.retain(|tp, _| partitions.contains(tp));
        self.fetched_ends.retain(|tp, _| partitions.contains(tp));
        self.assignment = partitions
            .into_iter()
            .map(|tp| {
                let name: Arc<str> = Arc::from(tp.topic.as_str());
                (tp, name)
            })
            .collect();
        Ok(())
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.iter().map(|(tp, _)| tp.clone()).collect()
    }

    fn check_assigned(&self, tp: &TopicPartition) -> Result<()> {
        if self.assignment.iter().any(|(a, _)| a == tp) {
            Ok(())
        } else {
            Err(Error::IllegalState(format!(
                "partition {tp} is not assigned to this consumer"
            )))
        }
    }

    /// Sets the next offset to read from `tp`. Records already buffered for it are dropped.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.check_assigned(tp)?;
        self.buffer
            .retain(|r| !(r.partition == tp.partition && *r.topic == *tp.topic));
        self.positions.insert(tp.clone(), offset);
        Ok(())
    }

    /// Seeks to the log start of `tp`.
    pub fn seek_to_beginning(&mut self, tp: &TopicPartition) -> Result<()> {
        let offset = self.listed(tp, OffsetSpec::Earliest)?;
        self.seek(tp, offset)
    }

    /// Seeks to the log end of `tp`.
    pub fn seek_to_end(&mut self, tp: &TopicPartition) -> Result<()> {
        let offset = self.listed(tp, OffsetSpec::Latest)?;
        self.seek(tp, offset)
    }

    fn listed(&self, tp: &TopicPartition, spec: OffsetSpec) -> Result<i64> {
        Ok(self
            .broker
            .list_offsets(&tp.topic, tp.partition, spec)?
            .map_or(-1, |l| l.offset))
    }

    pub(super) fn reset_position(
        &mut self,
        tp: &TopicPartition,
        out_of_range: Option<Error>,
    ) -> Result<i64> {
        let offset = match self.config.auto_offset_reset {
            OffsetReset::Earliest => self.listed(tp, OffsetSpec::Earliest)?,
            OffsetReset::Latest => self.listed(tp, OffsetSpec::Latest)?,
            OffsetReset::None => {
                return Err(out_of_range.unwrap_or_else(|| {
                    Error::IllegalState(format!(
                        "no position for {tp} and auto_offset_reset is none"
                    ))
                }));
            }
        };
        if out_of_range.is_some() {
            tracing::info!(partition = %tp, offset, "position out of range; reset");
        }
        self.positions.insert(tp.clone(), offset);
        Ok(offset)
    }

    /// The offset of the next record `poll` will return from `tp`.
    pub fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.check_assigned(tp)?;
        if let Some(first) = self
            .buffer
            .iter()
            .find(|r| r.partition == tp.partition && *r.topic == *tp.topic)
        {
            return Ok(first.offset);
        }
        match self.positions.get(tp) {
            Some(&p) => Ok(p),
            None => self.reset_position(tp, None),
        }
    }

    /// How many records of `tp` are readable beyond what `poll` has returned, as of its
    /// last fetch (the end it reported minus the position; buffered records count), or
    /// `None` before the first fetch of `tp` (Kafka's `currentLag`, KIP-695). Under
    /// read_committed the end is the last stable offset, so an open transaction adds no lag.
    pub fn current_lag(&mut self, tp: &TopicPartition) -> Result<Option<i64>> {
        let Some(&end) = self.fetched_ends.get(tp) else {
            return Ok(None);
        };
        let position = self.position(tp)?;
        Ok(Some((end - position).max(0)))
    }

    /// Returns the next records, waiting up to `timeout` when none are there yet. An empty
    /// result means nothing arrived in time.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = crate::util::deadline_after(timeout);
        loop {
            self.maybe_heartbeat()?;
            if !self.buffer.is_empty() {
                let n = self.buffer.len().min(self.config.max_poll_records);
                return Ok(self.buffer.drain(..n).collect());
            }
            if self.assignment.is_empty() {
                return Ok(Vec::new());
            }
            let mut request = FetchRequest::default()
                .with_max_wait(deadline.saturating_duration_since(Instant::now()))
                .with_partition_max_bytes(self.config.max_partition_fetch_bytes)
                .with_max_bytes(self.config.fetch_max_bytes)
                .with_isolation(self.config.isolation);
            for (tp, _) in self.assignment.clone() {
                let position = match self.positions.get(&tp) {
                    Some(&p) => p,
                    None => self.reset_position(&tp, None)?,
                };
                request.partitions.push((tp, position));
            }
            for fetched in self.broker.fetch(&request) {
                let tp = fetched.partition;
                match fetched.result {
                    Ok(data) => self.absorb(&tp, fetched.fetch_offset, data)?,
                    Err(e @ Error::OffsetOutOfRange { .. }) => {
                        self.reset_position(&tp, Some(e))?;
                    }
                    Err(e) => return Err(e),
                }
            }
            if self.buffer.is_empty() && Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    /// Decodes fetched batches into the buffer and moves the position past them. Control
    /// batches (transaction markers) are never returned, and under read_committed neither is
    /// a transactional batch of a producer whose transaction was aborted over its offsets.
    fn absorb(
        &mut self,
        tp: &TopicPartition,
        fetch_offset: i64,
        data: PartitionData,
    ) -> Result<()> {
        let end = match self.config.isolation {
            IsolationLevel::ReadCommitted => data.last_stable_offset,
            IsolationLevel::ReadUncommitted => data.high_watermark,
        };
        self.fetched_ends.insert(tp.clone(), end);
        if data.records.is_empty() {
            return Ok(());
        }
        let topic = self
            .assignment
            .iter()
            .find(|(a, _)| a == tp)
            .map(|(_, name)| Arc::clone(name))
            .unwrap_or_else(|| Arc::from(tp.topic.as_str()));
        let invalid = |offset, source| Error::InvalidBatch {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset,
            source,
        };
        let aborted = |pid: i64, offset: i64| {
            data.aborted_transactions.iter().any(|a| {
                a.producer_id == pid && a.first_offset <= offset && offset <= a.last_offset
            })
        };
        let mut next = fetch_offset;
        for batch in split_batches(data.records).map_err(|e| invalid(fetch_offset, e))? {
            let header = *batch.header();
            next = next.max(batch.last_offset() + 1);
            if header.is_control()
                || (header.is_transactional() && aborted(header.producer_id, header.base_offset))
            {
                continue;
            }
            let base = header.base_offset;
            for record in batch.records().map_err(|e| invalid(base, e))? {
                let record = record.map_err(|e| invalid(base, e))?;
                if record.offset < fetch_offset {
                    continue;
                }
                self.buffer.push_back(ConsumerRecord {
                    topic: Arc::clone(&topic),
                    partition: tp.partition,
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: record.key,
                    value: record.value,
                    headers: record.headers,
                });
            }
        }
        self.positions.insert(tp.clone(), next);
        Ok(())
    }
}
