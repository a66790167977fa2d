//! [`KafkaConsumer`]: the runtime's assign-mode consumer on librdkafka (no group, no
//! committing), the Kafka side of `sluice_log::cluster::ClusterConsumer`.
//!
//! - Records are copied out of librdkafka's buffers into the log crate's `ConsumerRecord`, so
//!   the runtime sees one record type whatever the backend.
//! - Position: librdkafka serves transaction markers to its own poll loop, which moves the
//!   position over them without returning them, so once every readable record has been
//!   polled the position reaches the end (tested against Kafka 4.4 and `sluice broker`).
//!   After an assign or a seek, and before the first record, librdkafka reports no position;
//!   then the offset given is the position.
//! - Fetching: librdkafka's 1 s `fetch.queue.backoff.ms` is lowered to
//!   [`FETCH_QUEUE_BACKOFF_MS`] unless the config sets it.
//! - Lag without a network call: librdkafka's statistics (every `LAG_STATS_INTERVAL_MS`)
//!   carry each partition's last stable offset (read_committed) or high watermark as its
//!   last fetch reported them; lag is that end minus the position. It is at most one
//!   interval old.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_log::batch::Header;
use sluice_log::cluster::ConsumerSpec;
use sluice_log::{ConsumerRecord, IsolationLevel, OffsetReset, TopicPartition};

use crate::config::KafkaConfig;
use crate::error::{KafkaClusterError, Result};

/// How often librdkafka reports the partition ends that lag is computed from.
pub const LAG_STATS_INTERVAL_MS: u64 = 100;

/// How long librdkafka waits before fetching a partition again once its queue of fetched
/// records is above `queued.min.messages` (librdkafka's `fetch.queue.backoff.ms`, unless
/// the config sets it). librdkafka's default of 1 s starves a fast reader: a stream thread
/// drains the ~100,000 queued records in well under a second, then waits out the rest of
/// the backoff with nothing to read (exactly-once on Kafka 1.6x faster with 10 ms,
/// BENCHMARKS.md). The Java consumer has no such wait: it fetches again as soon as what
/// it fetched is consumed.
pub const FETCH_QUEUE_BACKOFF_MS: u64 = 10;

/// Keeps, per partition, the end the last fetch reported.
struct LagContext {
    read_committed: bool,
    ends: Mutex<HashMap<(String, i32), i64>>,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, topic) in statistics.topics {
            for (partition, stats) in topic.partitions {
                let end = if self.read_committed {
                    stats.ls_offset
                } else {
                    stats.hi_offset
                };
                // -1 is librdkafka's internal "no partition"; negative ends are "unknown".
                if partition >= 0 && end >= 0 {
                    ends.insert((name.clone(), partition), end);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {}

/// A consumer of the partitions it is given, read_committed or not, on a Kafka cluster.
pub struct KafkaConsumer {
    consumer: BaseConsumer<LagContext>,
    /// The assignment, in order, and where each partition was last assigned or sought.
    starts: Vec<(TopicPartition, i64)>,
    /// The assignment as librdkafka's list, which `position` has it fill in (no call to
    /// librdkafka's main thread).
    positions: TopicPartitionList,
    topic_names: HashMap<String, Arc<str>>,
    max_poll_records: usize,
    timeout: Duration,
    /// An error that failed a poll which had records to return first: the next poll's.
    failure: Option<KafkaClusterError>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("assignment", &self.starts)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// A consumer with no assignment on the cluster `config` names, reading as `spec` says.
    /// Properties in `config` pass through; the ones this consumer depends on are set last.
    pub fn new(config: &KafkaConfig, spec: &ConsumerSpec) -> Result<Self> {
        let read_committed = spec.isolation == IsolationLevel::ReadCommitted;
        let mut client = config.client_config();
        client
            .set("client.id", &spec.client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "isolation.level",
                if read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            )
            .set(
                "auto.offset.reset",
                match spec.reset {
                    OffsetReset::Earliest => "earliest",
                    OffsetReset::Latest => "latest",
                    OffsetReset::None => "error",
                },
            )
            .set("statistics.interval.ms", LAG_STATS_INTERVAL_MS.to_string());
        if client.get("fetch.queue.backoff.ms").is_none() {
            client.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
        }
        if client.get("group.id").is_none() {
            // librdkafka wants one for a consumer handle even when it never joins a group.
            client.set("group.id", format!("{}-assign-only", spec.client_id));
        }
        let context = LagContext {
            read_committed,
            ends: Mutex::new(HashMap::new()),
        };
        let consumer = client
            .create_with_context(context)
            .map_err(KafkaClusterError::Config)?;
        Ok(Self {
            consumer,
            starts: Vec::new(),
            positions: TopicPartitionList::new(),
            topic_names: HashMap::new(),
            max_poll_records: spec.max_poll_records.max(1),
            timeout: config.timeout(),
            failure: None,
        })
    }

    /// Who this consumer is in its group (`group.id`, from the config or
    /// `<client id>-assign-only`), for `send_offsets_to_transaction`; an assign-mode consumer
    /// is no member, so its generation is -1.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// The group's committed offsets of `tps` (`None`: nothing committed), waiting for
    /// transactional commits in flight (librdkafka asks with `require_stable` under
    /// read_committed).
    pub fn committed(&self, tps: &[TopicPartition]) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        fetch_committed(
            &self.consumer,
            tps,
            self.timeout,
            "fetching committed offsets",
        )
    }

    /// The assigned partitions, in the order given.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.starts.iter().map(|(tp, _)| tp.clone()).collect()
    }

    /// Replaces the assignment: exactly these partitions, each read from the offset given.
    pub fn assign(&mut self, at: &[(TopicPartition, i64)]) -> Result<()> {
        let mut list = TopicPartitionList::with_capacity(at.len());
        for (tp, offset) in at {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(KafkaClusterError::client(format!(
                    "assigning {tp} at offset {offset}"
                )))?;
        }
        self.consumer
            .assign(&list)
            .map_err(KafkaClusterError::client(format!("assigning {at:?}")))?;
        self.starts = at.to_vec();
        self.positions = list;
        self.await_reset(at)
    }

    /// Waits until librdkafka has stopped the fetchers of the assignment before: until then
    /// `rd_kafka_position` may still report a partition's old position, which is not where
    /// it is read from now (a caller skipping ahead by it would skip records).
    fn await_reset(&mut self, at: &[(TopicPartition, i64)]) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.consumer
                .position_of(&mut self.positions)
                .map_err(KafkaClusterError::client(
                    "reading positions after an assign",
                ))?;
            let positions = &self.positions;
            let reset = at.iter().all(|(tp, start)| {
                match positions
                    .find_partition(&tp.topic, tp.partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(offset)) => offset == *start,
                    _ => true,
                }
            });
            if reset {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(KafkaClusterError::Timeout {
                    call: format!("resetting the positions of {at:?}"),
                    waited: self.timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sets the next offset read from `tp`; records already fetched for it are dropped.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let Some(slot) = self.starts.iter_mut().find(|(a, _)| a == tp) else {
            return Err(not_assigned(tp));
        };
        slot.1 = offset;
        // Re-assigning rather than rd_kafka_seek: a seek on a partition whose fetcher has
        // not started yet fails with a state error, and a re-assign also purges what was
        // fetched. The other partitions keep their positions.
        let mut at = Vec::with_capacity(self.starts.len());
        let starts = self.starts.clone();
        for (other, start) in starts {
            let from = if &other == tp {
                start
            } else {
                self.position(&other)?
            };
            at.push((other, from));
        }
        self.assign(&at)
    }

    /// The next records (at most the spec's `max_poll_records`), waiting up to `timeout`
    /// for the first. Under read_committed, never a record of an open or aborted
    /// transaction, never a marker.
    ///
    /// Records are taken in batches (librdkafka's `rd_kafka_consume_batch_queue`, through
    /// the vendored rdkafka's `poll_batch`): first whatever is ready; when nothing is, a
    /// wait for one record, then whatever else is ready.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        loop {
            let room = self.max_poll_records - records.len();
            self.take_batch(Duration::ZERO, room, &mut records)?;
            let wait = deadline.saturating_duration_since(Instant::now());
            if !records.is_empty() || wait.is_zero() {
                return Ok(records);
            }
            // librdkafka's batch waits its whole timeout unless it fills, so the wait is
            // for a batch of one; markers and statistics served meanwhile do not end it.
            self.take_batch(wait, 1, &mut records)?;
        }
    }

    /// Appends one batch of at most `max` records, waiting up to `wait`, to `records`.
    ///
    /// A consumer error that concerns a partition and carries an offset X (the fetch
    /// position) puts that partition back to X: librdkafka 2.12's batch moves the position
    /// to X + 1 (vendored rdkafka's `batch` module), and a caller skipping ahead by it would
    /// skip record X. Records of that partition after the error in the same batch are
    /// dropped (they are read again from X). An error that fails the poll is returned by
    /// the next poll when this one has records.
    fn take_batch(
        &mut self,
        wait: Duration,
        max: usize,
        records: &mut Vec<ConsumerRecord>,
    ) -> Result<()> {
        let topic_names = &mut self.topic_names;
        let mut failed = None;
        let mut rewind: Vec<(TopicPartition, i64)> = Vec::new();
        let polled = self.consumer.poll_batch(wait, max, |message| {
            let rewound = |rewind: &[(TopicPartition, i64)], topic: &str, partition: i32| {
                rewind
                    .iter()
                    .any(|(tp, _)| tp.partition == partition && tp.topic == topic)
            };
            if let Some(e) = message.error() {
                if let Some((topic, partition)) = message.topic_partition()
                    && message.offset() >= 0
                    && !rewound(&rewind, topic, partition)
                {
                    rewind.push((TopicPartition::new(topic, partition), message.offset()));
                }
                if fails_the_poll(&e) {
                    failed.get_or_insert(e);
                } else {
                    // librdkafka's informational errors (a broker down, a connection
                    // reset): it reconnects and fetches again by itself.
                    tracing::warn!(error = %e, offset = message.offset(), "consumer: transient error");
                }
                return;
            }
            if !rewind.is_empty() && rewound(&rewind, message.topic(), message.partition()) {
                return;
            }
            let topic = match topic_names.get(message.topic()) {
                Some(name) => name.clone(),
                None => {
                    let name: Arc<str> = Arc::from(message.topic());
                    topic_names.insert(message.topic().to_string(), name.clone());
                    name
                }
            };
            let headers = message.headers().map_or_else(Vec::new, |headers| {
                headers
                    .iter()
                    .map(|h| Header {
                        key: h.key.to_string(),
                        value: h.value.map(Bytes::copy_from_slice),
                    })
                    .collect()
            });
            records.push(ConsumerRecord {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis().unwrap_or(-1),
                key: message.key().map(Bytes::copy_from_slice),
                value: message.payload().map(Bytes::copy_from_slice),
                headers,
            });
        });
        for (tp, offset) in rewind {
            if self.starts.iter().any(|(assigned, _)| *assigned == tp) {
                self.seek(&tp, offset)?;
            }
        }
        let failure = match (polled, failed) {
            (Err(source), _) | (Ok(_), Some(source)) => KafkaClusterError::Client {
                call: format!("polling {:?}", self.starts),
                source,
            },
            (Ok(_), None) => return Ok(()),
        };
        if records.is_empty() {
            Err(failure)
        } else {
            self.failure = Some(failure);
            Ok(())
        }
    }

    /// The offset of the next record to read from `tp`.
    pub fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        let Some((_, start)) = self.starts.iter().find(|(a, _)| a == tp) else {
            return Err(not_assigned(tp));
        };
        let start = *start;
        self.consumer
            .position_of(&mut self.positions)
            .map_err(KafkaClusterError::client(format!(
                "reading the position of {tp}"
            )))?;
        match self
            .positions
            .find_partition(&tp.topic, tp.partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(offset)) => Ok(offset),
            // Nothing read since the last assign or seek.
            _ => Ok(start),
        }
    }

    /// Records of `tp` readable beyond the position as of the last statistics; `None`
    /// before they first mention it.
    pub fn current_lag(&mut self, tp: &TopicPartition) -> Result<Option<i64>> {
        let end = {
            let ends = self
                .consumer
                .context()
                .ends
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            ends.get(&(tp.topic.clone(), tp.partition)).copied()
        };
        let Some(end) = end else {
            return Ok(None);
        };
        Ok(Some((end - self.position(tp)?).max(0)))
    }
}

fn not_assigned(tp: &TopicPartition) -> KafkaClusterError {
    KafkaClusterError::NotAssigned {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

/// The committed offsets of the group `consumer` belongs to, for `tps` (`None`: nothing
/// committed). Asked again while the group's coordinator is loading or moving, up to
/// `timeout`.
pub(crate) fn fetch_committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tps: &[TopicPartition],
    timeout: Duration,
    what: &str,
) -> Result<Vec<(TopicPartition, Option<i64>)>> {
    let mut list = TopicPartitionList::with_capacity(tps.len());
    for tp in tps {
        list.add_partition(&tp.topic, tp.partition);
    }
    let deadline = Instant::now() + timeout;
    let answer = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match consumer.committed_offsets(list.clone(), remaining) {
            Err(e)
                if e.rdkafka_error_code().is_some_and(coordinator_moving)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(COORDINATOR_BACKOFF);
            }
            other => break other.map_err(KafkaClusterError::client(what))?,
        }
    };
    let mut committed = Vec::with_capacity(tps.len());
    for tp in tps {
        let offset = match answer.find_partition(&tp.topic, tp.partition) {
            Some(elem) => {
                // A partition the cluster could not answer for is an error, not "nothing
                // committed" (which would restart it from the log start).
                elem.error().map_err(|source| KafkaClusterError::Client {
                    call: format!("{what}: {tp}"),
                    source,
                })?;
                match elem.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                }
            }
            None => None,
        };
        committed.push((tp.clone(), offset));
    }
    Ok(committed)
}

/// Whether a consume error stops the poll: the out-of-range position of a consumer that
/// must not reset, a partition that is gone, no right to read, or librdkafka's fatal
/// errors. Others (a broker down, a connection reset) are informational.
fn fails_the_poll(error: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    match error {
        KafkaError::MessageConsumptionFatal(_) => true,
        KafkaError::MessageConsumption(code) => matches!(
            code,
            Code::AutoOffsetReset
                | Code::OffsetOutOfRange
                | Code::UnknownTopicOrPartition
                | Code::UnknownTopic
                | Code::UnknownPartition
                | Code::TopicAuthorizationFailed
                | Code::GroupAuthorizationFailed
        ),
        _ => true,
    }
}

/// How long to wait before asking a group's coordinator again.
const COORDINATOR_BACKOFF: Duration = Duration::from_millis(50);

/// Whether `code` says the group's coordinator is loading or moving: worth asking again.
fn coordinator_moving(code: rdkafka::error::RDKafkaErrorCode) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    matches!(
        code,
        Code::NotCoordinator | Code::CoordinatorLoadInProgress | Code::CoordinatorNotAvailable
    )
}
