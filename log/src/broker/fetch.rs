//! Fetch (with long polling) and ListOffsets on the broker.

use std::time::{Duration, Instant};

use super::Broker;
use crate::error::Result;
use crate::storage::PartitionData;
use crate::topic::TopicPartition;
use crate::txn::IsolationLevel;

/// A fetch of several partitions, as Kafka's Fetch request: wait up to `max_wait` until at
/// least `min_bytes` are available, return at most `partition_max_bytes` per partition and
/// about `max_bytes` in all (every partition that has data returns at least one batch).
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// Partitions and the offset to read each from.
    pub partitions: Vec<(TopicPartition, i64)>,
    /// Return as soon as this many bytes are available. Default 1.
    pub min_bytes: usize,
    /// Longest wait for `min_bytes`. Default 500 ms.
    pub max_wait: Duration,
    /// Rough upper bound on the response. Default 50 MiB.
    pub max_bytes: usize,
    /// Upper bound per partition. Default 1 MiB.
    pub partition_max_bytes: usize,
    /// read_committed (the default) or read_uncommitted.
    pub isolation: IsolationLevel,
}

impl Default for FetchRequest {
    fn default() -> Self {
        Self {
            partitions: Vec::new(),
            min_bytes: 1,
            max_wait: Duration::from_millis(500),
            max_bytes: 50 << 20,
            partition_max_bytes: 1 << 20,
            isolation: IsolationLevel::ReadCommitted,
        }
    }
}

impl FetchRequest {
    /// Adds a partition to read from `offset`.
    pub fn with_partition(mut self, tp: TopicPartition, offset: i64) -> Self {
        self.partitions.push((tp, offset));
        self
    }
    /// Sets the longest wait.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
    /// Sets the bytes to wait for.
    pub fn with_min_bytes(mut self, min_bytes: usize) -> Self {
        self.min_bytes = min_bytes;
        self
    }
    /// Sets the per-partition limit.
    pub fn with_partition_max_bytes(mut self, bytes: usize) -> Self {
        self.partition_max_bytes = bytes;
        self
    }
    /// Sets the isolation level.
    pub fn with_isolation(mut self, isolation: IsolationLevel) -> Self {
        self.isolation = isolation;
        self
    }
    /// Sets the response limit.
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

/// One partition's part of a fetch response: its data or its error.
#[derive(Debug)]
pub struct FetchedPartition {
    /// The partition.
    pub partition: TopicPartition,
    /// The offset that was asked for.
    pub fetch_offset: i64,
    /// Batches and offsets, or why not.
    pub result: Result<PartitionData>,
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// The first record with a timestamp at or after this (ms).
    Timestamp(i64),
    /// The first record with the largest timestamp in the log (Kafka's `-3`, KIP-734).
    MaxTimestamp,
}

/// An offset found by ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset.
    pub offset: i64,
    /// The record's timestamp, for a timestamp lookup.
    pub timestamp: Option<i64>,
}

impl Broker {
    /// Fetch: reads each partition from its offset, waiting up to `max_wait` for `min_bytes`.
    /// Errors are per partition, as in Kafka's response.
    pub fn fetch(&self, request: &FetchRequest) -> Vec<FetchedPartition> {
        let deadline = crate::util::deadline_after(request.max_wait);
        loop {
            let seen = self.signal().current();
            let mut budget = request.max_bytes;
            let mut total = 0usize;
            let mut any_error = false;
            let out: Vec<FetchedPartition> = request
                .partitions
                .iter()
                .map(|(tp, offset)| {
                    // At least one batch while the response is empty (so a batch larger than
                    // the limits still gets through); nothing once the budget is spent.
                    let limit = if total > 0 && budget == 0 {
                        0
                    } else {
                        request.partition_max_bytes.min(budget).max(1)
                    };
                    let result = self.read_isolated(
                        &tp.topic,
                        tp.partition,
                        *offset,
                        limit,
                        request.isolation,
                    );
                    match &result {
                        Ok(data) => {
                            total += data.records.len();
                            budget = budget.saturating_sub(data.records.len());
                        }
                        Err(_) => any_error = true,
                    }
                    FetchedPartition {
                        partition: tp.clone(),
                        fetch_offset: *offset,
                        result,
                    }
                })
                .collect();
            if total >= request.min_bytes.max(1) || any_error || Instant::now() >= deadline {
                return out;
            }
            self.signal().wait(seen, deadline);
        }
    }

    /// DeleteRecords: makes `before` the partition's log start offset (-1: the high
    /// watermark), so records below it are gone for every reader; returns the new log start
    /// (Kafka's low watermark). Internal topics refuse it.
    pub fn delete_records(&self, topic: &str, partition: i32, before: i64) -> Result<i64> {
        self.check_open()?;
        if topic == crate::txn::TXN_STATE_TOPIC || topic == crate::group::OFFSETS_TOPIC {
            return Err(crate::error::Error::UnsupportedBatch {
                topic: topic.to_string(),
                partition,
                reason: "records of internal topics cannot be deleted",
            });
        }
        let target = self.topics().get(topic)?.partition(partition)?;
        let before = if before == -1 {
            target.info().high_watermark
        } else {
            before
        };
        target.delete_records_before(before)
    }

    /// A counter that moves on every append to any partition: read it, read the log, and
    /// if nothing new was there, [`wait_for_append`](Self::wait_for_append) with it.
    pub fn append_sequence(&self) -> u64 {
        self.signal().current()
    }

    /// Waits until the counter moves past `seen` (something was appended) or `deadline`
    /// passes.
    pub fn wait_for_append(&self, seen: u64, deadline: Instant) {
        self.signal().wait(seen, deadline);
    }

    /// ListOffsets for one partition. A timestamp after every record gives `None`.
    pub fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<Option<ListedOffset>> {
        let partition = self.topics().get(topic)?.partition(partition)?;
        Ok(match spec {
            OffsetSpec::Earliest => Some(ListedOffset {
                offset: partition.info().log_start_offset,
                timestamp: None,
            }),
            OffsetSpec::Latest => Some(ListedOffset {
                offset: partition.info().log_end_offset,
                timestamp: None,
            }),
            OffsetSpec::MaxTimestamp => match partition.max_timestamp() {
                Some(max) => partition
                    .offset_for_timestamp(max)?
                    .map(|(offset, timestamp)| ListedOffset {
                        offset,
                        timestamp: Some(timestamp),
                    }),
                None => None,
            },
            OffsetSpec::Timestamp(ts) => {
                let start = partition.info().log_start_offset;
                partition
                    .offset_for_timestamp(ts)?
                    .map(|(offset, timestamp)| ListedOffset {
                        // Never below the log start (DeleteRecords may have moved it
                        // inside a segment).
                        offset: offset.max(start),
                        timestamp: Some(timestamp),
                    })
            }
        })
    }
}
