//! [`KafkaProducer`]: the runtime's transactional producer on librdkafka, the Kafka side of
//! `sluice_log::cluster::TxnProducer`.
//!
//! - A `ThreadedProducer`: rdkafka's polling thread serves the delivery reports as they
//!   arrive, and a flush waits on a condition variable until every record sent has its
//!   report. Not `BaseProducer` polled by the stream thread: rdkafka's `poll(d)` runs until
//!   `d` has passed and waits in whole milliseconds, so polling in short slices spins on
//!   the clock, and on two cores that spinning starved the broker (see BENCHMARKS.md).
//! - Deliveries: a record sent with `send_tracked` carries a slot number; its report fills
//!   the slot, read by [`KafkaDelivery::offset`] after a flush (or commit); a delivery
//!   dropped unread frees its slot. Every failed report, tracked
//!   or not, is kept as the first failure, which the next `flush` returns.
//! - `partitioner=murmur2_random`: records without a partition (dead letters) go where the
//!   Java client and the embedded log put them.
//! - An abort first flushes, serving the delivery reports librdkafka's abort waits for.
//! - A commit that fails because a record failed, or that librdkafka says needs an abort,
//!   aborts the transaction before returning the error.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, Message as _, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_log::cluster::{Delivery, ProducerSpec};
use sluice_log::{ProducerRecord, TopicPartition};

use crate::config::KafkaConfig;
use crate::error::{KafkaClusterError, Result};

/// The longest a send waits for room when librdkafka's queue is full, before it tries
/// again (a delivery report wakes it earlier).
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// How often a flush looks again, once every report has arrived, for librdkafka to free
/// the event that carried the last ones.
const EVENT_FREED_WAIT: Duration = Duration::from_micros(200);

/// Delivery reports as they arrive.
#[derive(Debug, Default)]
struct Reports {
    /// Tracked records' outcomes, by slot.
    tracked: HashMap<usize, std::result::Result<i64, KafkaError>>,
    /// The first failure since the last flush: topic, partition, error.
    first_failure: Option<(String, i32, KafkaError)>,
    /// How many reports have arrived, in all. Every record librdkafka accepted gets
    /// exactly one (delivered, failed or purged).
    reported: u64,
    /// While a sender waits on `Shared::reported` (a flush, or a send with the queue full):
    /// the count of reports that wakes it. Only that report notifies: a notify is a system
    /// call, and there is one report per record.
    wake_at: Option<u64>,
}

/// The reports and the condition a flush waits on.
#[derive(Debug, Default)]
struct Shared {
    reports: Mutex<Reports>,
    reported: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Reports> {
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct DeliveryContext {
    shared: Arc<Shared>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        let mut reports = self.shared.lock();
        reports.reported += 1;
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, message)) => {
                if reports.first_failure.is_none() {
                    reports.first_failure = Some((
                        message.topic().to_string(),
                        message.partition(),
                        error.clone(),
                    ));
                }
                Err(error.clone())
            }
        };
        if slot != 0 {
            reports.tracked.insert(slot, outcome);
        }
        let wake = reports.wake_at.is_some_and(|at| reports.reported >= at);
        drop(reports);
        if wake {
            self.shared.reported.notify_all();
        }
    }
}

/// A transactional producer on a Kafka cluster. `init_transactions` before the first
/// transaction.
pub struct KafkaProducer {
    producer: ThreadedProducer<DeliveryContext>,
    shared: Arc<Shared>,
    transactional_id: String,
    next_slot: usize,
    /// How many records librdkafka accepted, in all (see `Reports::reported`).
    sent: u64,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

/// A tracked record's delivery: its offset once a flush has returned.
#[derive(Debug)]
pub struct KafkaDelivery {
    slot: usize,
    topic: String,
    partition: Option<i32>,
    shared: Arc<Shared>,
}

impl Drop for KafkaDelivery {
    /// A delivery dropped unread (its transaction aborted) frees its slot.
    fn drop(&mut self) {
        self.shared.lock().tracked.remove(&self.slot);
    }
}

impl Delivery for KafkaDelivery {
    type Error = KafkaClusterError;

    fn offset(self) -> Result<i64> {
        // The slot is freed here, or by the drop when this returns.
        let outcome = self.shared.lock().tracked.remove(&self.slot);
        let call = || match self.partition {
            Some(p) => format!("delivering a record to {}-{p}", self.topic),
            None => format!("delivering a record to `{}`", self.topic),
        };
        match outcome {
            Some(Ok(offset)) => Ok(offset),
            Some(Err(source)) => Err(KafkaClusterError::Client {
                call: call(),
                source,
            }),
            None => Err(KafkaClusterError::NotDelivered { call: call() }),
        }
    }
}

impl KafkaProducer {
    /// A transactional producer on the cluster `config` names. Properties in `config` pass
    /// through; the ones the runtime depends on are set last.
    pub fn new(config: &KafkaConfig, spec: &ProducerSpec) -> Result<Self> {
        let mut client = config.client_config();
        client
            .set("client.id", &spec.client_id)
            .set(
                "transaction.timeout.ms",
                spec.transaction_timeout.as_millis().to_string(),
            )
            .set("linger.ms", spec.linger.as_millis().to_string())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random");
        if let Some(id) = &spec.transactional_id {
            client.set("transactional.id", id);
        }
        // A transaction's first records to a partition wait for AddPartitionsToTxn, which
        // the broker answers CONCURRENT_TRANSACTIONS while the previous commit's markers are
        // being written: retried after retry.backoff.ms, doubling up to retry.backoff.max.ms
        // (100 ms and 1 s by default in librdkafka), that wait was most of a commit's time.
        // The Java producer retries that one case after 20 ms; so do we, unless told.
        for (key, value) in [("retry.backoff.ms", "20"), ("retry.backoff.max.ms", "100")] {
            if config.get(key).is_none() {
                client.set(key, value);
            }
        }
        let shared = Arc::new(Shared::default());
        let producer = client
            .create_with_context(DeliveryContext {
                shared: Arc::clone(&shared),
            })
            .map_err(KafkaClusterError::Config)?;
        Ok(Self {
            producer,
            shared,
            transactional_id: spec
                .transactional_id
                .clone()
                .unwrap_or_else(|| spec.client_id.clone()),
            next_slot: 1,
            sent: 0,
            timeout: config.timeout().max(spec.transaction_timeout),
        })
    }

    fn call(&self, what: &str) -> impl FnOnce(KafkaError) -> KafkaClusterError + use<> {
        KafkaClusterError::client(format!(
            "{what} (transactional id `{}`)",
            self.transactional_id
        ))
    }

    /// `error` with librdkafka's fatal error as its cause, if the producer has one: after a
    /// fencing librdkafka answers every call with a generic fatal or state error, and the
    /// cause (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH) is what classes it `Fenced`.
    fn with_fatal_cause(&self, error: KafkaClusterError) -> KafkaClusterError {
        match (&error, self.producer.client().fatal_error()) {
            (KafkaClusterError::Client { call, .. }, Some((code, reason))) => {
                KafkaClusterError::ProducerFatal {
                    call: call.clone(),
                    code,
                    reason,
                }
            }
            _ => error,
        }
    }

    /// Fences any earlier producer with this transactional id and aborts its transaction.
    pub fn init_transactions(&mut self) -> Result<()> {
        let call = self.call("initializing transactions");
        self.producer
            .init_transactions(self.timeout)
            .map_err(call)
            .map_err(|e| self.with_fatal_cause(e))
    }

    /// Opens a transaction.
    pub fn begin_transaction(&mut self) -> Result<()> {
        let call = self.call("beginning a transaction");
        self.producer
            .begin_transaction()
            .map_err(call)
            .map_err(|e| self.with_fatal_cause(e))
    }

    fn produce(&mut self, record: &ProducerRecord, slot: usize) -> Result<()> {
        let mut headers = None;
        if !record.headers.is_empty() {
            let mut owned = OwnedHeaders::new_with_capacity(record.headers.len());
            for header in &record.headers {
                owned = owned.insert(KafkaHeader {
                    key: &header.key,
                    value: header.value.as_deref(),
                });
            }
            headers = Some(owned);
        }
        let mut base = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&record.topic, slot);
        if let Some(key) = &record.key {
            base = base.key(key.as_ref());
        }
        if let Some(value) = &record.value {
            base = base.payload(value.as_ref());
        }
        if let Some(partition) = record.partition {
            base = base.partition(partition);
        }
        if let Some(timestamp) = record.timestamp {
            base = base.timestamp(timestamp);
        }
        if let Some(headers) = headers {
            base = base.headers(headers);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.producer.send(base) {
                Ok(()) => break,
                // librdkafka's queue is full: wait for a report (room), then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    base = back;
                    let mut reports = self.shared.lock();
                    reports.wake_at = Some(reports.reported + 1);
                    let (mut reports, _) = self
                        .shared
                        .reported
                        .wait_timeout(reports, QUEUE_FULL_WAIT)
                        .unwrap_or_else(PoisonError::into_inner);
                    reports.wake_at = None;
                }
                // A fenced producer refuses every record at once with librdkafka's __FATAL:
                // its cause (e.g. Fenced) is what the caller's recovery needs to see.
                Err((source, _)) => {
                    return Err(self.with_fatal_cause(KafkaClusterError::Client {
                        call: format!("sending a record to `{}`", record.topic),
                        source,
                    }));
                }
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Sends a record in the open transaction; a failure reaches the next flush or commit.
    pub fn send(&mut self, record: &ProducerRecord) -> Result<()> {
        self.produce(record, 0)
    }

    /// Sends a record and keeps its delivery, to read its offset after the next flush.
    pub fn send_tracked(&mut self, record: &ProducerRecord) -> Result<KafkaDelivery> {
        let slot = self.next_slot;
        self.next_slot = self.next_slot.checked_add(1).unwrap_or(1);
        self.produce(record, slot)?;
        Ok(KafkaDelivery {
            slot,
            topic: record.topic.clone(),
            partition: record.partition,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Waits for every record sent; the first failure since the previous flush.
    pub fn flush(&mut self) -> Result<()> {
        self.drain()?;
        let failure = self.shared.lock().first_failure.take();
        match failure {
            Some((topic, partition, source)) => Err(KafkaClusterError::Client {
                call: format!("delivering a record to {topic}-{partition}"),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Waits until every record sent has its delivery report: the vendored rdkafka's
    /// `ThreadedProducer::flush` first, then the reports' count and their freed events
    /// (the published rdkafka's flush polled in slices of 100 ms that each ran to their
    /// end, so every flush with a record in flight took at least 100 ms).
    fn drain(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        // Blocks in librdkafka's flush, which sends queued records at once instead of
        // waiting out linger.ms (the vendored rdkafka's `ThreadedProducer::flush`,
        // vendor/README.md); a timeout is reported below, with the count still in flight.
        let _ = self.producer.flush(self.timeout);
        let mut reports = self.shared.lock();
        // Reported is not yet done: librdkafka counts a record in flight until the event
        // that carried its report is freed, just after the callbacks, and rdkafka's
        // `commit_transaction` polls for 100 ms if it finds one.
        while reports.reported < self.sent || self.producer.in_flight_count() > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                reports.wake_at = None;
                return Err(KafkaClusterError::Timeout {
                    call: format!(
                        "flushing (transactional id `{}`): {} record(s) still in flight",
                        self.transactional_id,
                        self.producer.in_flight_count()
                    ),
                    waited: self.timeout,
                });
            };
            let wait = if reports.reported < self.sent {
                left
            } else {
                left.min(EVENT_FREED_WAIT)
            };
            reports.wake_at = Some(self.sent);
            reports = self
                .shared
                .reported
                .wait_timeout(reports, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            reports.wake_at = None;
        }
        Ok(())
    }

    /// Adds the group's offsets to the open transaction (KIP-447 fencing by `group`).
    pub fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for (tp, offset) in offsets {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(KafkaClusterError::client(format!(
                    "adding the offset {offset} of {tp} to a transaction"
                )))?;
        }
        let call = self.call("sending offsets to the transaction");
        self.producer
            .send_offsets_to_transaction(&list, group, self.timeout)
            .map_err(call)
            .map_err(|e| self.with_fatal_cause(e))
    }

    /// Commits the open transaction; if that fails in a way that needs an abort (a record
    /// failed), aborts it and returns the failure.
    pub fn commit_transaction(&mut self) -> Result<()> {
        let call = self.call("committing a transaction");
        // rdkafka's commit flushes first, in 100 ms slices; drained here, it has nothing to
        // wait for.
        self.drain()?;
        match self.producer.commit_transaction(self.timeout) {
            Ok(()) => {
                self.clear_failure();
                Ok(())
            }
            Err(error) => {
                if let KafkaError::Transaction(e) = &error
                    && e.txn_requires_abort()
                    && let Err(abort) = self.abort_transaction()
                {
                    // The commit's error says why; the abort's failure is logged.
                    tracing::warn!(error = %abort, "aborting after a failed commit failed too");
                }
                Err(call(error))
            }
        }
    }

    /// Aborts the open transaction. The records sent are first delivered (into the
    /// transaction being aborted) and their reports served: librdkafka's abort waits for
    /// them. Dropping unsent records instead (a purge) would
    /// leave a gap in the partition's sequence numbers, which the broker then refuses.
    pub fn abort_transaction(&mut self) -> Result<()> {
        let call = self.call("aborting a transaction");
        // A delivery failure does not matter to an abort; the abort reports its own.
        let _ = self.drain();
        self.producer
            .abort_transaction(self.timeout)
            .map_err(call)
            .map_err(|e| self.with_fatal_cause(e))?;
        self.clear_failure();
        Ok(())
    }

    fn clear_failure(&mut self) {
        self.shared.lock().first_failure = None;
    }

    /// Flushes and drops the producer; an open transaction is left to the cluster.
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }
}
