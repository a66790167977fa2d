//! The producer's sender thread: takes batches as they become ready (full, lingered, or
//! flushed), stamps them with the producer id, epoch and the partition's next sequence, and
//! produces them in order. A retriable failure is retried with the very same bytes, so the
//! broker's duplicate detection makes the retry safe. A batch that fails for good was not
//! appended, so its sequence is reused; if retries run out on an ambiguous failure the
//! producer takes a new producer id and restarts its sequences, as Kafka's does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::accumulator::{Accumulator, ReadyBatch};
use super::producer::ProducerConfig;
use crate::batch::increment_sequence;
use crate::broker::{Broker, ProducerIdAndEpoch};
use crate::error::Error;
use crate::topic::TopicPartition;

#[derive(Debug)]
pub(super) struct Sender {
    broker: Broker,
    config: ProducerConfig,
    acc: Arc<Accumulator>,
    identity: Option<ProducerIdAndEpoch>,
    sequences: HashMap<TopicPartition, i32>,
}

impl Sender {
    pub(super) fn new(
        broker: Broker,
        config: ProducerConfig,
        acc: Arc<Accumulator>,
        identity: Option<ProducerIdAndEpoch>,
    ) -> Self {
        Self {
            broker,
            config,
            acc,
            identity,
            sequences: HashMap::new(),
        }
    }

    /// Runs until the producer is closed and every batch is completed.
    pub(super) fn run(mut self) {
        loop {
            let batches: Vec<ReadyBatch> = {
                let mut state = self.acc.state.lock();
                loop {
                    let next_deadline = state.close_expired(Instant::now(), self.config.linger);
                    if !state.ready.is_empty() {
                        break;
                    }
                    if state.closed && state.incomplete == 0 {
                        return;
                    }
                    state.sender_waiting = true;
                    match next_deadline {
                        Some(deadline) => {
                            self.acc.work.wait_until(&mut state, deadline);
                        }
                        None => self.acc.work.wait(&mut state),
                    }
                    state.sender_waiting = false;
                }
                state.ready.drain(..).collect()
            };
            for batch in batches {
                let bytes = batch.estimated_bytes;
                let result = self
                    .send(batch.partition.clone(), batch.builder)
                    .map_err(Arc::new);
                let failure = result.as_ref().err().map(Arc::clone);
                batch.completion.complete(result);
                let mut state = self.acc.state.lock();
                if let Some(e) = failure {
                    state.first_failure.get_or_insert((batch.partition, e));
                }
                state.buffered_bytes -= bytes;
                state.incomplete -= 1;
                // Wake blocked callers only when a flush may be done or a quarter of the
                // buffer is free again, not after every batch: that saves a futex wake-up per
                // batch when `send` is faster than the log.
                let buffer = self.config.buffer_memory;
                let wake = state.progress_waiters > 0
                    && (state.incomplete == 0 || state.buffered_bytes + buffer / 4 <= buffer);
                drop(state);
                if wake {
                    self.acc.progress.notify_all();
                }
            }
        }
    }

    /// Produces one batch with retries; returns its base offset.
    fn send(
        &mut self,
        partition: TopicPartition,
        builder: crate::batch::BatchBuilder,
    ) -> Result<i64, Error> {
        let count = builder.record_count();
        let (builder, base_sequence) = match self.identity {
            Some(id) => {
                let seq = self.sequences.get(&partition).copied().unwrap_or(0);
                (
                    builder.with_producer(id.producer_id, id.epoch, seq),
                    Some(seq),
                )
            }
            None => (builder, None),
        };
        let bytes = builder.build().map_err(|source| Error::InvalidBatch {
            topic: partition.topic.clone(),
            partition: partition.partition,
            offset: -1,
            source,
        })?;
        let mut attempt = 0;
        loop {
            match self
                .broker
                .produce(&partition.topic, partition.partition, bytes.clone())
            {
                Ok(outcome) => {
                    if let Some(base) = base_sequence {
                        self.sequences
                            .insert(partition, increment_sequence(base, count));
                    }
                    return Ok(outcome.base_offset);
                }
                Err(e) if e.is_retriable() && attempt < self.config.retries => {
                    attempt += 1;
                    tracing::warn!(%partition, attempt, error = %e, "produce failed; retrying");
                    std::thread::sleep(self.config.retry_backoff);
                }
                Err(e) => {
                    if e.is_retriable() || matches!(e, Error::OutOfOrderSequence { .. }) {
                        // The batch may or may not be in the log: start over as a new producer.
                        self.reset_identity();
                    }
                    return Err(e);
                }
            }
        }
    }

    fn reset_identity(&mut self) {
        if self.identity.is_none() {
            return;
        }
        match self.broker.init_producer_id() {
            Ok(id) => {
                tracing::warn!(
                    producer_id = id.producer_id,
                    "idempotent producer state reset"
                );
                self.identity = Some(id);
                self.sequences.clear();
            }
            Err(e) => tracing::error!(error = %e, "could not get a new producer id"),
        }
    }
}
