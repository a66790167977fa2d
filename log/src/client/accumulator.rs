//! The producer's record accumulator: open batches per partition, the queue of batches ready
//! to send, the memory bound that makes `send` block when the sender falls behind, and the
//! completion that each batch's delivery futures wait on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::batch::BatchBuilder;
use crate::error::Error;
use crate::topic::TopicPartition;

/// The outcome of one batch, shared by the futures of its records.
#[derive(Debug, Default)]
pub(crate) struct BatchCompletion {
    state: Mutex<CompletionState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct CompletionState {
    result: Option<Result<i64, Arc<Error>>>,
    wakers: Vec<Waker>,
}

impl BatchCompletion {
    /// Records the batch's base offset or its error, and wakes every waiter.
    pub(crate) fn complete(&self, result: Result<i64, Arc<Error>>) {
        let wakers = {
            let mut state = self.state.lock();
            state.result = Some(result);
            std::mem::take(&mut state.wakers)
        };
        self.cv.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// The result if there is one; otherwise registers `waker` for it.
    pub(crate) fn poll(&self, waker: &Waker) -> Option<Result<i64, Arc<Error>>> {
        let mut state = self.state.lock();
        if let Some(result) = &state.result {
            return Some(result.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(waker)) {
            state.wakers.push(waker.clone());
        }
        None
    }

    /// Blocks until the batch is completed.
    pub(crate) fn wait(&self) -> Result<i64, Arc<Error>> {
        let mut state = self.state.lock();
        loop {
            if let Some(result) = &state.result {
                return result.clone();
            }
            self.cv.wait(&mut state);
        }
    }
}

/// A batch being filled.
#[derive(Debug)]
pub(crate) struct OpenBatch {
    pub(crate) builder: BatchBuilder,
    pub(crate) completion: Arc<BatchCompletion>,
    pub(crate) created: Instant,
    pub(crate) estimated_bytes: usize,
}

/// A batch closed for appends, waiting for the sender.
#[derive(Debug)]
pub(crate) struct ReadyBatch {
    pub(crate) partition: TopicPartition,
    pub(crate) builder: BatchBuilder,
    pub(crate) completion: Arc<BatchCompletion>,
    pub(crate) estimated_bytes: usize,
}

/// One topic's producer-side state: its partition count, its sticky partition and its open
/// batches. Kept in one map entry so a `send` does one lookup.
#[derive(Debug, Default)]
pub(crate) struct TopicBatches {
    /// Partitions of the topic, as last looked up.
    pub(crate) partitions: i32,
    /// When `partitions` was looked up (ms since the epoch).
    pub(crate) fetched_ms: i64,
    /// The sticky partition for keyless records.
    pub(crate) sticky: Option<i32>,
    /// Open batches by partition.
    pub(crate) open: Vec<Option<OpenBatch>>,
}

impl TopicBatches {
    /// Moves the open batch of `partition`, if any, to `ready`; moves the sticky partition on
    /// when it was that one (as Kafka's sticky partitioner does once a batch is done).
    pub(crate) fn close(&mut self, topic: &str, partition: i32, ready: &mut VecDeque<ReadyBatch>) {
        let Some(batch) = self.open.get_mut(partition as usize).and_then(Option::take) else {
            return;
        };
        ready.push_back(ReadyBatch {
            partition: TopicPartition::new(topic, partition),
            builder: batch.builder,
            completion: batch.completion,
            estimated_bytes: batch.estimated_bytes,
        });
        if self.sticky == Some(partition) {
            self.sticky = Some((partition + 1) % self.partitions.max(1));
        }
    }
}

/// Everything behind the accumulator's lock.
#[derive(Debug, Default)]
pub(crate) struct AccState {
    /// Per topic: partition count, sticky partition, open batches.
    /// (FxHash: one lookup per `send` by topic name, on the hot path.)
    pub(crate) topics: rustc_hash::FxHashMap<String, TopicBatches>,
    pub(crate) ready: VecDeque<ReadyBatch>,
    /// Bytes in open, ready and in-flight batches.
    pub(crate) buffered_bytes: usize,
    /// Batches not yet completed.
    pub(crate) incomplete: usize,
    /// Callers of `flush` waiting: while non-zero, linger is ignored.
    pub(crate) flushing: usize,
    pub(crate) closed: bool,
    /// Set by `Producer::abandon`: the sender stops without sending what is left.
    pub(crate) abandoned: bool,
    pub(crate) sender_waiting: bool,
    /// Callers of `send` blocked for memory.
    pub(crate) memory_waiters: usize,
    /// Callers blocked in `flush` (and so in `commit_transaction`).
    pub(crate) flush_waiters: usize,
    /// The first batch failure since the last `flush`, which that `flush` reports.
    pub(crate) first_failure: Option<(TopicPartition, Arc<Error>)>,
    /// The producer id and epoch batches are stamped with (idempotent or transactional).
    pub(crate) identity: Option<crate::broker::ProducerIdAndEpoch>,
    /// The open transaction, for a transactional producer.
    pub(crate) txn: Option<OpenTxn>,
}

/// The client side of an open transaction.
#[derive(Debug, Default)]
pub(crate) struct OpenTxn {
    /// Partitions already added to it at the coordinator.
    pub(crate) added: std::collections::BTreeSet<TopicPartition>,
    /// Whether group offsets were added.
    pub(crate) offsets_added: bool,
    /// The first failure inside it: the transaction can then only be aborted.
    pub(crate) failed: Option<Arc<Error>>,
}

impl AccState {
    /// Closes every open batch whose linger has passed (all of them when flushing or closed);
    /// returns the earliest deadline among those left open.
    pub(crate) fn close_expired(
        &mut self,
        now: Instant,
        linger: std::time::Duration,
    ) -> Option<Instant> {
        let everything = self.flushing > 0 || self.closed;
        let mut next: Option<Instant> = None;
        for (topic, batches) in &mut self.topics {
            for p in 0..batches.open.len() {
                let Some(batch) = &batches.open[p] else {
                    continue;
                };
                let deadline = batch.created.checked_add(linger).unwrap_or(now);
                if everything || deadline <= now {
                    batches.close(topic, p as i32, &mut self.ready);
                } else {
                    next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
                }
            }
        }
        next
    }
}

/// The accumulator shared by the producer's callers and its sender thread.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    pub(crate) state: Mutex<AccState>,
    /// Wakes the sender.
    pub(crate) work: Condvar,
    /// Wakes callers waiting for memory or for a flush to finish.
    pub(crate) progress: Condvar,
}
