//! The runtime's seam (`sluice_log::cluster`): one contract, checked on every backend the
//! same way — the embedded `Broker`, and `KafkaCluster` on `sluice broker` and on Apache
//! Kafka 4.4. A transactional writer lays down committed, aborted and open transactions;
//! the read_committed consumer must return exactly the committed records, step over the
//! markers and aborted records so its position reaches the last stable offset, report lag
//! against that offset, and honour assign, seek, max records and an out-of-range position.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use sluice_kafka::{KafkaCluster, KafkaConfig};
use sluice_log::cluster::{
    Cluster, ClusterConsumer, ClusterError, ConsumerSpec, InternalTopic, InternalTopicKind,
    OffsetAt,
};
use sluice_log::{
    Broker, BrokerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition,
};

const BOUND: Duration = Duration::from_secs(60);

/// Writes transactions to partitions of one topic; each send answers the record's offset.
trait TxnWriter {
    fn create_topic(&mut self, topic: &str, partitions: i32);
    fn begin(&mut self);
    fn send(&mut self, topic: &str, partition: i32, value: &str) -> i64;
    fn commit(&mut self);
    fn abort(&mut self);
}

struct EmbeddedWriter {
    broker: Broker,
    producer: Producer,
}

impl TxnWriter for EmbeddedWriter {
    fn create_topic(&mut self, topic: &str, partitions: i32) {
        self.broker
            .create_topic(topic, TopicConfig::default().with_partitions(partitions))
            .expect("create topic");
    }
    fn begin(&mut self) {
        self.producer.begin_transaction().expect("begin");
    }
    fn send(&mut self, topic: &str, partition: i32, value: &str) -> i64 {
        let record = ProducerRecord::new(topic, value.to_string()).with_partition(partition);
        let delivery = self.producer.send(record).expect("send");
        self.producer.flush().expect("flush");
        delivery.wait().expect("delivered").offset
    }
    fn commit(&mut self) {
        self.producer.commit_transaction().expect("commit");
    }
    fn abort(&mut self) {
        self.producer.abort_transaction().expect("abort");
    }
}

/// Keeps the offset (or failure) of each delivered record, in order.
#[derive(Default)]
struct Deliveries(Mutex<Vec<Result<i64, String>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().expect("deliveries").push(outcome);
    }
}

struct KafkaWriter {
    cluster: KafkaCluster,
    producer: BaseProducer<Deliveries>,
}

impl KafkaWriter {
    fn new(cluster: &KafkaCluster) -> Self {
        let producer: BaseProducer<Deliveries> = cluster
            .config()
            .properties()
            .fold(rdkafka::ClientConfig::new(), |mut c, (k, v)| {
                c.set(k, v);
                c
            })
            .set("transactional.id", support::unique("seam-writer"))
            .create_with_context(Deliveries::default())
            .expect("producer");
        producer.init_transactions(BOUND).expect("init");
        Self {
            cluster: cluster.clone(),
            producer,
        }
    }
}

impl TxnWriter for KafkaWriter {
    fn create_topic(&mut self, topic: &str, partitions: i32) {
        self.cluster
            .create_topic(topic, &sluice_kafka::TopicSpec::new(partitions))
            .expect("create topic");
    }
    fn begin(&mut self) {
        self.producer.begin_transaction().expect("begin");
    }
    fn send(&mut self, topic: &str, partition: i32, value: &str) -> i64 {
        let record = BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value);
        self.producer
            .send(record)
            .map_err(|(e, _)| e)
            .expect("send");
        self.producer.flush(BOUND).expect("flush");
        let delivered = self.producer.context().0.lock().expect("deliveries").pop();
        delivered.expect("a delivery report").expect("delivered")
    }
    fn commit(&mut self) {
        self.producer.commit_transaction(BOUND).expect("commit");
    }
    fn abort(&mut self) {
        self.producer.abort_transaction(BOUND).expect("abort");
    }
}

/// Polls until `done` holds for what was read so far; everything read, by partition.
fn read_until<C: ClusterConsumer>(
    consumer: &mut C,
    read: &mut BTreeMap<i32, Vec<(i64, String)>>,
    what: &str,
    mut done: impl FnMut(&mut C, &BTreeMap<i32, Vec<(i64, String)>>) -> bool,
) {
    support::wait_until(what, BOUND, || {
        for r in consumer.poll(Duration::from_millis(50)).expect("poll") {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into();
            read.entry(r.partition).or_default().push((r.offset, value));
        }
        done(consumer, read)
    });
}

/// Polls (expecting nothing new) until the lag of every partition in `tps` is 0.
fn wait_for_no_lag<C: ClusterConsumer>(consumer: &mut C, tps: &[&TopicPartition], what: &str) {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let polled = consumer.poll(Duration::from_millis(50)).expect("poll");
        assert!(polled.is_empty(), "{what}: unexpected {polled:?}");
        let lags = tps
            .iter()
            .map(|tp| consumer.current_lag(tp).expect("lag"))
            .collect::<Vec<_>>();
        if lags.iter().all(|lag| *lag == Some(0)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: lags {lags:?}"
        );
    }
}

fn values(read: &BTreeMap<i32, Vec<(i64, String)>>, partition: i32) -> Vec<&str> {
    read.get(&partition)
        .map(|v| v.iter().map(|(_, s)| s.as_str()).collect())
        .unwrap_or_default()
}

fn contract<C: Cluster>(cluster: &C, writer: &mut dyn TxnWriter) {
    let topic = support::unique("seam");
    assert_eq!(cluster.partition_count(&topic).expect("count"), None);
    writer.create_topic(&topic, 2);
    assert_eq!(cluster.partition_count(&topic).expect("count"), Some(2));
    let (p0, p1) = (
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    );

    // p0: committed a0..a2, aborted b0 b1, committed c0, then d0 left open. p1: q0..q4.
    writer.begin();
    for v in ["a0", "a1", "a2"] {
        writer.send(&topic, 0, v);
    }
    for v in ["q0", "q1", "q2", "q3", "q4"] {
        writer.send(&topic, 1, v);
    }
    writer.commit();
    writer.begin();
    writer.send(&topic, 0, "b0");
    writer.send(&topic, 0, "b1");
    writer.abort();
    writer.begin();
    writer.send(&topic, 0, "c0");
    writer.commit();
    writer.begin();
    let open_at = writer.send(&topic, 0, "d0");

    assert_eq!(
        cluster
            .list_offset(&p1, OffsetAt::Earliest)
            .expect("earliest"),
        0
    );
    // Five records and the commit marker.
    assert_eq!(
        cluster.list_offset(&p1, OffsetAt::Latest).expect("latest"),
        6
    );
    assert_eq!(
        cluster.list_offset(&p0, OffsetAt::Latest).expect("latest"),
        open_at + 1
    );

    let spec = ConsumerSpec::read_committed(support::unique("seam-consumer"));
    let mut consumer = cluster.consumer(&spec).expect("consumer");
    consumer
        .assign(&[(p0.clone(), 0), (p1.clone(), 0)])
        .expect("assign");
    assert_eq!(consumer.position(&p0).expect("position"), 0);
    let mut read = BTreeMap::new();
    read_until(
        &mut consumer,
        &mut read,
        "the committed records and the LSO",
        |c, read| {
            read.values().map(Vec::len).sum::<usize>() >= 9
                && c.position(&p0).expect("position") == open_at
                && c.position(&p1).expect("position") == 6
        },
    );
    assert_eq!(
        values(&read, 0),
        ["a0", "a1", "a2", "c0"],
        "no aborted, no open record"
    );
    assert_eq!(values(&read, 1), ["q0", "q1", "q2", "q3", "q4"]);
    let offsets: Vec<i64> = read[&0].iter().map(|(o, _)| *o).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    // Lag is as of what the consumer last heard, so it is read between polls, as the
    // runtime does.
    wait_for_no_lag(
        &mut consumer,
        &[&p0, &p1],
        "no lag up to the last stable offset",
    );

    // The open transaction commits: d0 arrives, and the position passes its marker.
    writer.commit();
    read.clear();
    read_until(
        &mut consumer,
        &mut read,
        "the record of the transaction just committed",
        |c, read| !values(read, 0).is_empty() && c.position(&p0).expect("position") == open_at + 2,
    );
    assert_eq!(values(&read, 0), ["d0"]);
    assert!(values(&read, 1).is_empty());
    wait_for_no_lag(&mut consumer, &[&p0], "no lag after the commit");

    // Seek: p1 again from offset 2; p0 stays where it is.
    consumer.seek(&p1, 2).expect("seek");
    assert_eq!(consumer.position(&p1).expect("position"), 2);
    read.clear();
    read_until(&mut consumer, &mut read, "p1 from offset 2", |_, read| {
        values(read, 1).len() >= 3
    });
    assert_eq!(values(&read, 1), ["q2", "q3", "q4"]);
    assert!(values(&read, 0).is_empty(), "p0 kept its position");

    // Assign replaces the assignment; at most max_poll_records per poll.
    let mut small = cluster
        .consumer(&spec.clone().with_max_poll_records(2))
        .expect("consumer");
    small.assign(&[(p1.clone(), 1)]).expect("assign");
    read.clear();
    support::wait_until("p1 from offset 1, two at a time", BOUND, || {
        let batch = small.poll(Duration::from_millis(50)).expect("poll");
        assert!(batch.len() <= 2, "{} records in one poll", batch.len());
        for r in batch {
            assert_eq!(r.partition, 1);
            read.entry(1).or_default().push((r.offset, String::new()));
        }
        read.get(&1).map_or(0, Vec::len) >= 4
    });
    assert_eq!(
        read[&1].iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(small.position(&p0).is_err(), "p0 is not assigned to it");
    assert!(small.seek(&p0, 0).is_err(), "p0 is not assigned to it");

    // An out-of-range position with no reset policy is an error, not a silent restart.
    let mut strict = cluster
        .consumer(&spec.clone().with_reset(OffsetReset::None))
        .expect("consumer");
    strict.assign(&[(p1.clone(), 100)]).expect("assign");
    let mut failed = None;
    support::wait_until("the out-of-range error", BOUND, || {
        match strict.poll(Duration::from_millis(50)) {
            Ok(records) => assert!(records.is_empty(), "{records:?}"),
            Err(e) => failed = Some(e),
        }
        failed.is_some()
    });
    let failed = failed.expect("an error");
    assert!(!failed.is_unknown_topic(), "{failed}");
    // The error does not move the position past a record still to come.
    assert_eq!(strict.position(&p1).expect("position"), 100);

    // Internal topics: created once, found the second time, with the kind's configs.
    let changelog = support::unique("seam-changelog");
    let spec = InternalTopic {
        partitions: Some(3),
        kind: InternalTopicKind::Changelog,
    };
    cluster
        .create_internal_topic(&changelog, &spec)
        .expect("create");
    cluster
        .create_internal_topic(
            &changelog,
            &InternalTopic {
                partitions: Some(5),
                ..spec
            },
        )
        .expect("exists");
    assert_eq!(cluster.partition_count(&changelog).expect("count"), Some(3));
    let dead = support::unique("seam-dead-letter");
    let spec = InternalTopic {
        partitions: None,
        kind: InternalTopicKind::DeadLetter,
    };
    cluster
        .create_internal_topic(&dead, &spec)
        .expect("create with the default count");
    assert!(
        cluster
            .partition_count(&dead)
            .expect("count")
            .is_some_and(|n| n >= 1)
    );

    let unknown = TopicPartition::new(support::unique("seam-missing"), 0);
    let missing = cluster.list_offset(&unknown, OffsetAt::Latest);
    assert!(
        missing.as_ref().is_err_and(ClusterError::is_unknown_topic),
        "{missing:?}"
    );
}

#[test]
fn the_seam_on_the_embedded_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open");
    let producer = Producer::new(
        &broker,
        ProducerConfig::default()
            .with_transactional_id("seam-writer")
            .with_linger_ms(0),
    )
    .expect("producer");
    producer.init_transactions().expect("init");
    let mut writer = EmbeddedWriter {
        broker: broker.clone(),
        producer,
    };
    contract(&broker, &mut writer);
}

#[test]
fn the_seam_on_sluice_broker_over_kafka_protocol() {
    let sluice = support::SluiceBroker::start();
    let cluster = KafkaCluster::connect(KafkaConfig::new(&sluice.bootstrap)).expect("connect");
    let mut writer = KafkaWriter::new(&cluster);
    contract(&cluster, &mut writer);
}

#[test]
fn the_seam_on_apache_kafka() {
    let cluster =
        KafkaCluster::connect(KafkaConfig::new(support::kafka_bootstrap())).expect("connect");
    let mut writer = KafkaWriter::new(&cluster);
    contract(&cluster, &mut writer);
}
