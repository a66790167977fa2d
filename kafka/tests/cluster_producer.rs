//! The seam's transactional producer (`sluice_log::cluster::TxnProducer`), one contract on
//! every backend: the embedded `Broker`, and `KafkaCluster` on `sluice broker` and on Apache
//! Kafka 4.4. A committed transaction's records (keys, headers) and group offsets become
//! visible together; an aborted one's never; a tracked record's offset is known after a
//! flush; a second producer with the same transactional id fences the first, whose error
//! (at the commit, or at each record sent in an open transaction) is classed `Fenced`; a record to a partition that does not exist fails, and the
//! transaction can then be aborted and the producer goes on.

mod support;

use std::time::Duration;

use bytes::Bytes;
use sluice_kafka::{KafkaCluster, KafkaConfig, KafkaConsumer};
use sluice_log::cluster::{
    Cluster, ClusterConsumer, ClusterError, ConsumerSpec, Delivery, ErrorClass, InternalTopic,
    InternalTopicKind, OffsetAt, ProducerSpec, TxnProducer,
};
use sluice_log::{
    Broker, BrokerConfig, ConsumerRecord, GroupMetadata, ProducerRecord, TopicPartition,
};

const BOUND: Duration = Duration::from_secs(60);

/// Everything read_committed from `tp` from offset 0, once the position reaches the end.
fn read_all<C: Cluster>(cluster: &C, tp: &TopicPartition) -> Vec<ConsumerRecord> {
    let end = cluster.list_offset(tp, OffsetAt::Latest).expect("end");
    let mut consumer = cluster
        .consumer(&ConsumerSpec::read_committed(support::unique("reader")))
        .expect("consumer");
    consumer.assign(&[(tp.clone(), 0)]).expect("assign");
    let mut records = Vec::new();
    support::wait_until("the reader to reach the end", BOUND, || {
        records.extend(consumer.poll(Duration::from_millis(50)).expect("poll"));
        consumer.position(tp).expect("position") >= end
    });
    records
}

fn values(records: &[ConsumerRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|r| std::str::from_utf8(r.value.as_deref().unwrap_or_default()).expect("utf-8"))
        .collect()
}

fn contract<C: Cluster>(
    cluster: &C,
    group: &<C::Producer as TxnProducer>::GroupMetadata,
    mut committed: impl FnMut(&TopicPartition) -> Option<i64>,
) {
    let topic = support::unique("txn-out");
    let spec = InternalTopic {
        partitions: Some(2),
        kind: InternalTopicKind::Repartition,
    };
    cluster
        .create_internal_topic(&topic, &spec)
        .expect("create");
    let out = TopicPartition::new(&topic, 0);
    let source = TopicPartition::new(support::unique("txn-in"), 0);
    // Offsets are committed only for partitions that exist.
    cluster
        .create_internal_topic(&source.topic, &spec)
        .expect("create");
    let transactional_id = support::unique("txn");
    let producer_spec = ProducerSpec::new(&transactional_id).with_linger(Duration::ZERO);

    let mut first = cluster.producer(&producer_spec).expect("producer");
    first.init_transactions().expect("init");
    first.begin_transaction().expect("begin");
    for v in ["r0", "r1"] {
        first
            .send(ProducerRecord::new(&topic, v).with_partition(0))
            .expect("send");
    }
    let tracked = first
        .send_tracked(
            ProducerRecord::new(&topic, "r2")
                .with_partition(0)
                .with_key("k2")
                .with_header("trace", "t-2"),
        )
        .expect("send");
    first.flush().expect("flush");
    assert_eq!(tracked.offset().expect("offset"), 2);
    // Read after the commit, as the runtime reads its changelog checkpoints.
    let last = first
        .send_tracked(ProducerRecord::new(&topic, "r2b").with_partition(1))
        .expect("send");
    first
        .send_offsets_to_transaction(&[(source.clone(), 42)], group)
        .expect("offsets");
    first.commit_transaction().expect("commit");
    assert_eq!(last.offset().expect("offset after the commit"), 0);
    let records = read_all(cluster, &out);
    assert_eq!(values(&records), ["r0", "r1", "r2"]);
    assert_eq!(records[2].key.as_deref(), Some(&b"k2"[..]));
    assert_eq!(records[2].headers.len(), 1);
    assert_eq!(records[2].headers[0].key, "trace");
    assert_eq!(
        records[2].headers[0].value,
        Some(Bytes::from_static(b"t-2"))
    );
    assert_eq!(committed(&source), Some(42));

    // Aborted: neither the record nor the offsets.
    first.begin_transaction().expect("begin");
    first
        .send(ProducerRecord::new(&topic, "x0").with_partition(0))
        .expect("send");
    first
        .send_offsets_to_transaction(&[(source.clone(), 50)], group)
        .expect("offsets");
    first.abort_transaction().expect("abort");
    assert_eq!(values(&read_all(cluster, &out)), ["r0", "r1", "r2"]);
    assert_eq!(committed(&source), Some(42));

    // A record to a partition that does not exist fails, at once or at the flush; the
    // transaction is aborted and the producer carries on.
    first.begin_transaction().expect("begin");
    let failed = first
        .send(ProducerRecord::new(&topic, "nowhere").with_partition(7))
        .and_then(|()| first.flush());
    assert!(failed.is_err(), "a record to partition 7 of 2 was accepted");
    first.abort_transaction().expect("abort after the failure");
    first.begin_transaction().expect("begin");
    first
        .send(ProducerRecord::new(&topic, "r3").with_partition(0))
        .expect("send");
    first.commit_transaction().expect("commit");

    // A second producer with the same id fences the first.
    let mut second = cluster.producer(&producer_spec).expect("producer");
    second.init_transactions().expect("init");
    let fenced = first
        .begin_transaction()
        .and_then(|()| first.send(ProducerRecord::new(&topic, "zombie").with_partition(0)))
        .and_then(|()| first.commit_transaction());
    let error = fenced.expect_err("the fenced producer committed");
    assert_eq!(error.class(), ErrorClass::Fenced, "{error}");
    second.begin_transaction().expect("begin");
    second
        .send(ProducerRecord::new(&topic, "r4").with_partition(0))
        .expect("send");
    second
        .send_offsets_to_transaction(&[(source.clone(), 60)], group)
        .expect("offsets");
    second.commit_transaction().expect("commit");
    assert_eq!(
        values(&read_all(cluster, &out)),
        ["r0", "r1", "r2", "r3", "r4"]
    );
    assert_eq!(committed(&source), Some(60));

    // Fenced with a transaction open: its records fail (at once or at the flush), every one
    // as `Fenced`, since a stream thread sends output between commits and only `Fenced`
    // renews its producer (librdkafka refuses every record of a fenced producer at once).
    second.begin_transaction().expect("begin");
    second
        .send(ProducerRecord::new(&topic, "before the fence").with_partition(0))
        .and_then(|()| second.flush())
        .expect("send before the fence");
    let mut third = cluster.producer(&producer_spec).expect("producer");
    third.init_transactions().expect("init");
    for value in ["after the fence", "and again"] {
        let error = second
            .send(ProducerRecord::new(&topic, value).with_partition(0))
            .and_then(|()| second.flush())
            .expect_err("the fenced producer took a record");
        assert_eq!(error.class(), ErrorClass::Fenced, "{value}: {error}");
    }
    assert_eq!(
        values(&read_all(cluster, &out)),
        ["r0", "r1", "r2", "r3", "r4"]
    );
    third.close().expect("close");
}

#[test]
fn the_producer_on_the_embedded_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open");
    let group = GroupMetadata {
        group_id: "txn-group".into(),
        generation: -1,
        member_id: String::new(),
    };
    contract(&broker, &group, |tp| {
        let answer = broker
            .offset_fetch("txn-group", std::slice::from_ref(tp), true)
            .expect("offset fetch");
        answer.into_iter().next().and_then(|(_, offset)| offset)
    });
}

fn on_kafka(bootstrap: &str) {
    let group_id = support::unique("txn-group");
    let config = KafkaConfig::new(bootstrap);
    let cluster = KafkaCluster::connect(config.clone()).expect("connect");
    let member = KafkaConsumer::new(
        &config.set("group.id", &group_id),
        &ConsumerSpec::read_committed("txn-group-reader"),
    )
    .expect("consumer");
    let group = member.group_metadata().expect("group metadata");
    contract(&cluster, &group, |tp| {
        let answer = member
            .committed(std::slice::from_ref(tp))
            .expect("committed");
        answer.into_iter().next().and_then(|(_, offset)| offset)
    });
}

#[test]
fn the_producer_on_sluice_broker_over_kafka_protocol() {
    let sluice = support::SluiceBroker::start();
    on_kafka(&sluice.bootstrap);
}

#[test]
fn the_producer_on_apache_kafka() {
    on_kafka(support::kafka_bootstrap());
}
