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

/// A batch appended in this round whose acknowledgement waits for an fsync.
#[derive(Debug)]
struct Waiting {
    partition: TopicPartition,
    completion: Arc<super::accumulator::BatchCompletion>,
    bytes: usize,
    base_offset: i64,
    up_to: i64,
}

#[derive(Debug)]
pub(super) struct Sender {
    broker: Broker,
    config: ProducerConfig,
    acc: Arc<Accumulator>,
    transactional_id: Option<String>,
    sequences: HashMap<TopicPartition, i32>,
    /// The identity `sequences` belong to; a new epoch restarts them at 0.
    sequences_for: Option<ProducerIdAndEpoch>,
}

impl Sender {
    pub(super) fn new(broker: Broker, config: ProducerConfig, acc: Arc<Accumulator>) -> Self {
        Self {
            broker,
            transactional_id: config.transactional_id.clone(),
            config,
            acc,
            sequences: HashMap::new(),
            sequences_for: None,
        }
    }

    /// Runs until the producer is closed and every batch is completed.
    pub(super) fn run(mut self) {
        loop {
            let batches: Vec<ReadyBatch> = {
                let mut state = self.acc.state.lock();
                loop {
                    if state.abandoned {
                        return;
                    }
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
            // Group commit: every batch of this round is appended first; those whose
            // acknowledgement needs an fsync wait together, one wait per partition.
            let mut waiting: Vec<Waiting> = Vec::new();
            for batch in batches {
                if self.acc.state.lock().abandoned {
                    return;
                }
                let ReadyBatch {
                    partition,
                    builder,
                    completion,
                    estimated_bytes,
                } = batch;
                match self.send(partition.clone(), builder) {
                    Ok((base_offset, Some(up_to))) => waiting.push(Waiting {
                        partition,
                        completion,
                        bytes: estimated_bytes,
                        base_offset,
                        up_to,
                    }),
                    Ok((base, None)) => {
                        self.finish(partition, &completion, estimated_bytes, Ok(base))
                    }
                    Err(e) => self.finish(partition, &completion, estimated_bytes, Err(e)),
                }
            }
            let mut highest: HashMap<TopicPartition, i64> = HashMap::new();
            for w in &waiting {
                let up_to = highest.entry(w.partition.clone()).or_insert(w.up_to);
                *up_to = (*up_to).max(w.up_to);
            }
            let mut durable: HashMap<TopicPartition, Arc<Error>> = HashMap::new();
            for (partition, up_to) in highest {
                if let Err(e) =
                    self.broker
                        .wait_durable(&partition.topic, partition.partition, up_to)
                {
                    // The batches are in the log but not known durable: start over with a
                    // new id, as after any failure after the write.
                    self.reset_identity();
                    durable.insert(partition, Arc::new(e));
                }
            }
            for w in waiting {
                let result = match durable.get(&w.partition) {
                    Some(e) => Err(Error::Delivery {
                        topic: w.partition.topic.clone(),
                        partition: w.partition.partition,
                        source: Arc::clone(e),
                    }),
                    None => Ok(w.base_offset),
                };
                self.finish(w.partition, &w.completion, w.bytes, result);
            }
        }
    }

    /// Completes one batch's delivery and updates the accumulator's accounting.
    fn finish(
        &self,
        partition: TopicPartition,
        completion: &Arc<super::accumulator::BatchCompletion>,
        bytes: usize,
        result: Result<i64, Error>,
    ) {
        let result = result.map_err(Arc::new);
        let failure = result.as_ref().err().map(Arc::clone);
        completion.complete(result);
        let mut state = self.acc.state.lock();
        if let Some(e) = failure {
            if let Some(txn) = state.txn.as_mut() {
                txn.failed.get_or_insert_with(|| Arc::clone(&e));
            }
            state.first_failure.get_or_insert((partition, e));
        }
        state.buffered_bytes -= bytes;
        state.incomplete -= 1;
        // Wake a flush only when everything is done, and a `send` blocked for memory only
        // when a quarter of the buffer is free again: not after every batch, which would
        // cost a futex wake-up per batch.
        let buffer = self.config.buffer_memory;
        let wake = (state.flush_waiters > 0 && state.incomplete == 0)
            || (state.memory_waiters > 0 && state.buffered_bytes + buffer / 4 <= buffer);
        drop(state);
        if wake {
            self.acc.progress.notify_all();
        }
    }

    fn send(
        &mut self,
        partition: TopicPartition,
        builder: crate::batch::BatchBuilder,
    ) -> Result<(i64, Option<i64>), Error> {
        let count = builder.record_count();
        let (identity, needs_add) = {
            let state = self.acc.state.lock();
            let needs_add = match (&self.transactional_id, &state.txn) {
                (Some(_), Some(txn)) => !txn.added.contains(&partition),
                (Some(_), None) => {
                    return Err(Error::IllegalState(
                        "a transactional producer sends only inside a transaction".into(),
                    ));
                }
                (None, _) => false,
            };
            (state.identity, needs_add)
        };
        if identity != self.sequences_for {
            self.sequences.clear();
            self.sequences_for = identity;
        }
        if let (true, Some(id), Some(txn_id)) = (needs_add, identity, &self.transactional_id) {
            self.with_retries(&partition, || {
                self.broker
                    .add_partitions_to_txn(txn_id, id, std::slice::from_ref(&partition))
            })?;
            if let Some(txn) = self.acc.state.lock().txn.as_mut() {
                txn.added.insert(partition.clone());
            }
        }
        let transactional = self.transactional_id.is_some();
        let (builder, base_sequence) = match identity {
            Some(id) => {
                let seq = self.sequences.get(&partition).copied().unwrap_or(0);
                (
                    builder
                        .with_producer(id.producer_id, id.epoch, seq)
                        .with_transactional(transactional),
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
            match self.broker.produce_deferred(
                &partition.topic,
                partition.partition,
                bytes.clone(),
                self.config.acks,
            ) {
                Ok((outcome, durable_at)) => {
                    if let Some(base) = base_sequence {
                        self.sequences
                            .insert(partition, increment_sequence(base, count));
                    }
                    return Ok((outcome.base_offset, durable_at));
                }
                Err(e) if e.is_retriable() && attempt < self.config.retries => {
                    attempt += 1;
                    tracing::warn!(%partition, attempt, error = %e, "produce failed; retrying");
                    std::thread::sleep(self.config.retry_backoff);
                }
                Err(e) => {
                    // Only errors raised before anything is written prove the batch is not in
                    // the log, so that its sequence may be used again. After any other (an
                    // fsync that failed after the write, a retriable error retried out) the
                    // batch may be there: an idempotent producer starts over with a new id.
                    let before_write = matches!(
                        e,
                        Error::InvalidBatch { .. }
                            | Error::RecordTooLarge { .. }
                            | Error::UnsupportedBatch { .. }
                            | Error::UnknownTopic { .. }
                            | Error::UnknownPartition { .. }
                            | Error::InvalidTxnState(_)
                            | Error::ProducerFenced { .. }
                            | Error::UnknownProducerId { .. }
                            | Error::Closed(_)
                    );
                    if !before_write {
                        self.reset_identity();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Runs a coordinator request, retrying retriable errors (`ConcurrentTransactions`).
    fn with_retries(
        &self,
        partition: &TopicPartition,
        mut request: impl FnMut() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            match request() {
                Err(e) if e.is_retriable() && attempt < self.config.retries => {
                    attempt += 1;
                    tracing::debug!(%partition, attempt, error = %e, "coordinator busy; retrying");
                    std::thread::sleep(
                        self.config
                            .retry_backoff
                            .min(std::time::Duration::from_millis(10)),
                    );
                }
                other => return other,
            }
        }
    }

    /// After an ambiguous failure an idempotent producer starts over with a new producer id;
    /// a transactional one cannot (its transaction must be aborted instead).
    fn reset_identity(&mut self) {
        if self.transactional_id.is_some() {
            return;
        }
        let mut state = self.acc.state.lock();
        if state.identity.is_none() {
            return;
        }
        match self.broker.init_producer_id() {
            Ok(id) => {
                tracing::warn!(
                    producer_id = id.producer_id,
                    "idempotent producer state reset"
                );
                state.identity = Some(id);
            }
            Err(e) => tracing::error!(error = %e, "could not get a new producer id"),
        }
    }
}
