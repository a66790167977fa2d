//! The producer: batches records per partition (`batch_size`, `linger`), partitions keyed
//! records with Kafka's murmur2 partitioner and keyless ones with the sticky partitioner,
//! and sends batches from a background thread as an idempotent producer, retrying retriable
//! failures with the same sequence numbers so a retry is never appended twice.
//!
//! ```
//! use sluice_log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
//! # let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
//! broker.create_topic("t", TopicConfig::default()).unwrap();
//! let producer = Producer::new(&broker, ProducerConfig::default().with_linger_ms(0)).unwrap();
//! let first = producer.send(ProducerRecord::new("t", "a")).unwrap();
//! producer.flush().unwrap();
//! assert_eq!(first.wait().unwrap().offset, 0);
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::accumulator::{Accumulator, BatchCompletion, OpenBatch};
use super::partitioner::partition_for_key;
use crate::batch::{BatchBuilder, Compression, Header};
use crate::broker::{Acks, Broker};
use crate::error::{Error, Result};
use crate::topic::TopicPartition;
use crate::util::now_ms;

/// Producer settings, named as Kafka's. Build with `Default` and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Close a partition's batch at this many bytes (`batch.size`). Default 16 KiB.
    pub batch_size: usize,
    /// Wait this long for more records before sending a batch (`linger.ms`). Default 5 ms.
    pub linger: Duration,
    /// Bytes buffered before `send` blocks (`buffer.memory`). Default 32 MiB.
    pub buffer_memory: usize,
    /// Longest a `send` blocks for memory (`max.block.ms`). Default 60 s.
    pub max_block: Duration,
    /// Idempotent sends: a producer id and sequence numbers (`enable.idempotence`). Default on.
    pub idempotence: bool,
    /// Batch compression (`compression.type`). Default none.
    pub compression: Compression,
    /// Attempts after the first for a retriable failure (`retries`). Default 10.
    pub retries: u32,
    /// Pause between attempts (`retry.backoff.ms`). Default 100 ms.
    pub retry_backoff: Duration,
    /// How long a topic's partition count is cached (`metadata.max.age.ms`). Default 5 min.
    pub metadata_max_age: Duration,
    /// What a produce waits for (`acks`). Default all: under the `commit` fsync policy a
    /// non-transactional batch is fsynced before it is acknowledged.
    pub acks: Acks,
    /// Makes the producer transactional (`transactional.id`); call `init_transactions`.
    pub transactional_id: Option<String>,
    /// How long a transaction may stay open before the broker aborts it
    /// (`transaction.timeout.ms`). Default 60 s.
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory: 32 << 20,
            max_block: Duration::from_secs(60),
            idempotence: true,
            compression: Compression::None,
            retries: 10,
            retry_backoff: Duration::from_millis(100),
            metadata_max_age: Duration::from_secs(300),
            acks: Acks::All,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    /// Sets `batch.size`.
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes.max(1);
        self
    }
    /// Sets `linger.ms`.
    pub fn with_linger_ms(mut self, ms: u64) -> Self {
        self.linger = Duration::from_millis(ms);
        self
    }
    /// Sets `buffer.memory`.
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }
    /// Turns idempotence on or off.
    pub fn with_idempotence(mut self, on: bool) -> Self {
        self.idempotence = on;
        self
    }
    /// Sets the compression codec.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
    /// Sets `acks`.
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }
    /// Makes the producer transactional with this `transactional.id`.
    pub fn with_transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }
    /// Sets `transaction.timeout.ms`.
    pub fn with_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }
    /// Sets `retries`.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// A record to send. Without a partition, a keyed record goes where murmur2 of its key says
/// and a keyless one to the topic's sticky partition; without a timestamp, it gets the time of
/// `send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// An explicit partition.
    pub partition: Option<i32>,
    /// The key.
    pub key: Option<Bytes>,
    /// The value (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// The timestamp (ms).
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            timestamp: None,
            headers: Vec::new(),
        }
    }
    /// A tombstone (null value) for `key`.
    pub fn tombstone(topic: impl Into<String>, key: impl Into<Bytes>) -> Self {
        Self {
            value: None,
            ..Self::new(topic, Bytes::new()).with_key(key)
        }
    }
    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the partition.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Sets the timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: i64,
}

/// The pending delivery of one record: a `Future` for async code, or [`wait`](Self::wait)
/// to block. Dropping it does not cancel the send.
#[derive(Debug)]
pub struct DeliveryFuture {
    completion: Arc<BatchCompletion>,
    partition: TopicPartition,
    offset_delta: i32,
    timestamp: i64,
}

impl DeliveryFuture {
    fn finish(&self, result: Result<i64, Arc<Error>>) -> Result<RecordMetadata> {
        match result {
            Ok(base) => Ok(RecordMetadata {
                topic: self.partition.topic.clone(),
                partition: self.partition.partition,
                offset: base + i64::from(self.offset_delta),
                timestamp: self.timestamp,
            }),
            Err(source) => Err(Error::Delivery {
                topic: self.partition.topic.clone(),
                partition: self.partition.partition,
                source,
            }),
        }
    }

    /// Blocks until the record is acknowledged or has failed.
    pub fn wait(self) -> Result<RecordMetadata> {
        let result = self.completion.wait();
        self.finish(result)
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.completion.poll(cx.waker()) {
            Some(result) => Poll::Ready(self.finish(result)),
            None => Poll::Pending,
        }
    }
}

/// The producer. Cheap to share by reference across threads; `close` (or drop) flushes.
#[derive(Debug)]
pub struct Producer {
    pub(super) broker: Broker,
    pub(super) config: ProducerConfig,
    pub(super) acc: Arc<Accumulator>,
    sender: Option<JoinHandle<()>>,
}

impl Producer {
    /// Starts a producer on `broker`; with idempotence it first gets a producer id.
    pub fn new(broker: &Broker, config: ProducerConfig) -> Result<Self> {
        let acc = Arc::new(Accumulator::default());
        if config.transactional_id.is_none() && config.idempotence {
            acc.state.lock().identity = Some(broker.init_producer_id()?);
        }
        let sender = super::sender::Sender::new(broker.clone(), config.clone(), Arc::clone(&acc));
        let thread = std::thread::Builder::new()
            .name("sluice-producer".into())
            .spawn(move || sender.run())
            .map_err(|e| Error::io("spawning the producer thread", "", e))?;
        Ok(Self {
            broker: broker.clone(),
            config,
            acc,
            sender: Some(thread),
        })
    }

    /// Queues a record for sending and returns its pending delivery. Blocks while
    /// `buffer_memory` is full, up to `max_block`. Fails at once for an unknown topic or
    /// partition.
    pub fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let now = now_ms();
        let timestamp = record.timestamp.unwrap_or(now);
        let estimate = BatchBuilder::estimate_record_size(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        let max_age = self.config.metadata_max_age.as_millis() as i64;
        let mut state = self.acc.state.lock();
        let fresh = state
            .topics
            .get(&record.topic)
            .is_some_and(|t| now - t.fetched_ms < max_age);
        if !fresh {
            drop(state);
            let partitions = self.broker.partition_count(&record.topic)?;
            state = self.acc.state.lock();
            let entry = state.topics.entry(record.topic.clone()).or_default();
            entry.partitions = partitions;
            entry.fetched_ms = now;
        }
        if state.closed {
            return Err(Error::Closed("producer"));
        }
        if self.config.transactional_id.is_some() && state.txn.is_none() {
            return Err(Error::IllegalState(
                "a transactional producer sends only between begin_transaction and commit or abort"
                    .into(),
            ));
        }
        if state.buffered_bytes > 0 && state.buffered_bytes + estimate > self.config.buffer_memory {
            let deadline = crate::util::deadline_after(self.config.max_block);
            // Lingering batches are sent now rather than waited for.
            state.flushing += 1;
            self.acc.work.notify_one();
            let mut timed_out = false;
            while !timed_out
                && state.buffered_bytes > 0
                && state.buffered_bytes + estimate > self.config.buffer_memory
            {
                state.memory_waiters += 1;
                timed_out = self
                    .acc
                    .progress
                    .wait_until(&mut state, deadline)
                    .timed_out();
                state.memory_waiters -= 1;
            }
            state.flushing -= 1;
            if timed_out {
                return Err(Error::Timeout {
                    what: "buffer memory (the sender is behind)",
                    millis: self.config.max_block.as_millis() as u64,
                });
            }
        }
        let state = &mut *state;
        let Some(topic) = state.topics.get_mut(&record.topic) else {
            return Err(Error::IllegalState("producer metadata vanished".into()));
        };
        let partitions = topic.partitions;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if (0..partitions).contains(&p) => p,
            (Some(p), _) => {
                return Err(Error::UnknownPartition {
                    topic: record.topic,
                    partition: p,
                    partitions,
                });
            }
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => match topic.sticky {
                Some(p) if p < partitions => p,
                _ => {
                    let p = (now as i32 & 0x7fff_ffff) % partitions.max(1);
                    topic.sticky = Some(p);
                    p
                }
            },
        };
        if topic.open.len() <= partition as usize {
            topic.open.resize_with(partition as usize + 1, || None);
        }
        let slot = partition as usize;
        let mut wake = false;
        // A batch that cannot take the record is closed first.
        if topic.open[slot].as_ref().is_some_and(|b| {
            !b.builder.is_empty() && b.builder.size_in_bytes() + estimate > self.config.batch_size
        }) {
            topic.close(&record.topic, partition, &mut state.ready);
            wake = true;
        }
        let batch = topic.open[slot].get_or_insert_with(|| {
            wake = true;
            state.incomplete += 1;
            let capacity = self
                .config
                .batch_size
                .max(estimate + crate::batch::HEADER_LEN);
            OpenBatch {
                builder: BatchBuilder::with_capacity(capacity)
                    .with_compression(self.config.compression),
                completion: Arc::new(BatchCompletion::default()),
                created: Instant::now(),
                estimated_bytes: 0,
            }
        });
        let offset_delta = batch.builder.record_count();
        batch.builder.append(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        batch.estimated_bytes += estimate;
        let completion = Arc::clone(&batch.completion);
        if batch.builder.size_in_bytes() >= self.config.batch_size {
            topic.close(&record.topic, partition, &mut state.ready);
            wake = true;
        }
        state.buffered_bytes += estimate;
        if wake && state.sender_waiting {
            self.acc.work.notify_one();
        }
        Ok(DeliveryFuture {
            completion,
            partition: TopicPartition::new(record.topic, partition),
            offset_delta,
            timestamp,
        })
    }

    /// Sends every buffered record now and waits until all are acknowledged or failed.
    /// Returns the first delivery failure since the previous `flush` (each record's future
    /// reports its own as well), so a caller that drops the futures still learns of it.
    pub fn flush(&self) -> Result<()> {
        let mut state = self.acc.state.lock();
        state.flushing += 1;
        self.acc.work.notify_one();
        state.flush_waiters += 1;
        while state.incomplete > 0 {
            self.acc.progress.wait(&mut state);
        }
        state.flush_waiters -= 1;
        state.flushing -= 1;
        match state.first_failure.take() {
            Some((partition, source)) => Err(Error::Delivery {
                topic: partition.topic,
                partition: partition.partition,
                source,
            }),
            None => Ok(()),
        }
    }

    /// Fault injection: stops the producer as a killed process stops. Records not yet
    /// handed to the broker are never sent (their futures never complete), and nothing is
    /// flushed, committed or aborted: an open transaction stays open until the next
    /// `init_transactions` of its id, or its timeout, aborts it.
    pub fn abandon(mut self) {
        self.acc.state.lock().abandoned = true;
        self.acc.work.notify_all();
        if let Some(thread) = self.sender.take() {
            let _ = thread.join();
        }
    }

    /// Flushes, then stops the sender thread.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(thread) = self.sender.take() else {
            return Ok(());
        };
        // The thread is stopped whatever the flush says, so it never outlives the producer.
        let flushed = self.flush();
        self.acc.state.lock().closed = true;
        self.acc.work.notify_one();
        thread
            .join()
            .map_err(|_| Error::IllegalState("the producer's sender thread panicked".into()))?;
        flushed
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "closing the producer failed");
        }
    }
}
