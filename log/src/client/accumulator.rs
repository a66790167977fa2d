//! The producer's record accumulator: open batches per partition, the queue of batches ready
//! to send, the memory bound that makes `send` block when the sender falls behind, and the
//! completion that each batch's delivery futures wait on.

use std::collections::{HashMap, VecDeque};
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

/// Everything behind the accumulator's lock.
#[derive(Debug, Default)]
pub(crate) struct AccState {
    /// Open batches by topic, then partition.
    pub(crate) open: HashMap<String, Vec<Option<OpenBatch>>>,
    pub(crate) ready: VecDeque<ReadyBatch>,
    /// Bytes in open, ready and in-flight batches.
    pub(crate) buffered_bytes: usize,
    /// Batches not yet completed.
    pub(crate) incomplete: usize,
    /// Callers of `flush` waiting: while non-zero, linger is ignored.
    pub(crate) flushing: usize,
    pub(crate) closed: bool,
    pub(crate) sender_waiting: bool,
    /// Partition counts by topic, with when they were looked up.
    pub(crate) partition_counts: HashMap<String, (i32, Instant)>,
    /// The sticky partition for keyless records, by topic.
    pub(crate) sticky: HashMap<String, i32>,
    /// The first batch failure since the last `flush`, which that `flush` reports.
    pub(crate) first_failure: Option<(TopicPartition, Arc<Error>)>,
}

impl AccState {
    /// Moves the open batch of `topic`/`partition`, if any, to the ready queue.
    pub(crate) fn close_batch(&mut self, topic: &str, partition: i32) -> bool {
        let Some(slot) = self
            .open
            .get_mut(topic)
            .and_then(|v| v.get_mut(partition as usize))
        else {
            return false;
        };
        let Some(batch) = slot.take() else {
            return false;
        };
        self.ready.push_back(ReadyBatch {
            partition: TopicPartition::new(topic, partition),
            builder: batch.builder,
            completion: batch.completion,
            estimated_bytes: batch.estimated_bytes,
        });
        if let Some(sticky) = self.sticky.get_mut(topic)
            && *sticky == partition
        {
            // Kafka's sticky partitioner moves on when a batch of the sticky partition is done.
            let count = self.partition_counts.get(topic).map_or(1, |(n, _)| *n);
            *sticky = (partition + 1) % count.max(1);
        }
        true
    }

    /// Closes every open batch whose linger has passed (all of them when flushing or closed);
    /// returns the earliest deadline among those left open.
    pub(crate) fn close_expired(
        &mut self,
        now: Instant,
        linger: std::time::Duration,
    ) -> Option<Instant> {
        let everything = self.flushing > 0 || self.closed;
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (topic, partitions) in &self.open {
            for (p, batch) in partitions.iter().enumerate() {
                let Some(batch) = batch else { continue };
                let deadline = batch.created + linger;
                if everything || deadline <= now {
                    due.push((topic.clone(), p as i32));
                } else {
                    next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
                }
            }
        }
        for (topic, p) in due {
            self.close_batch(&topic, p);
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
