//! The admin calls of `KafkaCluster`, the same scenario on Apache Kafka 4.4 and on `sluice
//! broker`: partition counts, creating topics with configs (twice: the second finds it),
//! offsets, refusals with the cluster's own error code, deleting records (the repartition
//! purge) and topics, and a wrong address or property failing at connect.

mod support;

use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;
use sluice_kafka::{
    Created, KafkaCluster, KafkaClusterError, KafkaConfig, TopicSpec, internal_topic_spec,
};
use sluice_log::ProducerRecord;
use sluice_log::cluster::{Cluster, InternalTopicKind, ProducerSpec, TxnProducer};

/// A repartition topic: no time retention (records with old timestamps stay until the app
/// purges them), and DeleteRecords moves its log start, never past the high watermark.
fn repartition_purge(cluster: &KafkaCluster) {
    let topic = support::unique("admin-repartition");
    let spec = internal_topic_spec(InternalTopicKind::Repartition, 1);
    cluster.create_topic(&topic, &spec).expect("create");
    let configs = cluster.topic_configs(&topic).expect("configs");
    assert_eq!(configs.get("retention.ms").map(String::as_str), Some("-1"));
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );
    let spec = ProducerSpec::idempotent(support::unique("admin-purger"));
    let mut producer = Cluster::producer(cluster, &spec).expect("producer");
    for i in 0..5 {
        let record = ProducerRecord::new(topic.as_str(), format!("r{i}")).with_partition(0);
        TxnProducer::send(&mut producer, record).expect("send");
    }
    TxnProducer::flush(&mut producer).expect("flush");
    TxnProducer::close(producer).expect("close");
    assert_eq!(cluster.delete_records(&topic, 0, 3).expect("delete"), 3);
    let offsets = cluster.offsets(&topic, 0).expect("offsets");
    assert_eq!((offsets.earliest, offsets.latest), (3, 5));
    let refused = cluster.delete_records(&topic, 0, 9);
    assert_eq!(
        refused.as_ref().err().and_then(KafkaClusterError::code),
        Some(RDKafkaErrorCode::OffsetOutOfRange),
        "{refused:?}"
    );
    cluster.delete_topic(&topic).expect("delete topic");
}

fn scenario(bootstrap: &str) {
    let cluster = KafkaCluster::connect(KafkaConfig::new(bootstrap)).expect("connect");
    let topic = support::unique("admin-changelog");
    assert_eq!(cluster.partition_count(&topic).expect("count"), None);

    let spec = TopicSpec::changelog(3).with_config("retention.ms", "-1");
    assert_eq!(
        cluster.create_topic(&topic, &spec).expect("create"),
        Created::New
    );
    assert_eq!(
        cluster
            .create_topic(&topic, &TopicSpec::new(5))
            .expect("again"),
        Created::Existed
    );
    assert_eq!(cluster.partition_count(&topic).expect("count"), Some(3));
    let configs = cluster.topic_configs(&topic).expect("configs");
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert_eq!(configs.get("retention.ms").map(String::as_str), Some("-1"));
    for partition in 0..3 {
        let offsets = cluster.offsets(&topic, partition).expect("offsets");
        assert_eq!((offsets.earliest, offsets.latest), (0, 0));
    }

    let bad = support::unique("admin-bad");
    let refused = cluster.create_topic(
        &bad,
        &TopicSpec::new(1).with_config("cleanup.policy", "shred"),
    );
    assert!(
        matches!(
            refused,
            Err(KafkaClusterError::Topic {
                code: RDKafkaErrorCode::InvalidConfig,
                ..
            })
        ),
        "{refused:?}"
    );
    let refused = cluster.create_topic(&bad, &TopicSpec::new(0));
    assert_eq!(
        refused.as_ref().err().and_then(KafkaClusterError::code),
        Some(RDKafkaErrorCode::InvalidPartitions),
        "{refused:?}"
    );
    assert_eq!(cluster.partition_count(&bad).expect("count"), None);
    repartition_purge(&cluster);

    cluster.delete_topic(&topic).expect("delete");
    // Kafka deletes a topic asynchronously: its metadata goes away soon after the answer.
    support::wait_until(
        "the deleted topic to leave the metadata",
        Duration::from_secs(60),
        || cluster.partition_count(&topic).expect("count").is_none(),
    );
    let again = cluster.delete_topic(&topic);
    assert_eq!(
        again.as_ref().err().and_then(KafkaClusterError::code),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition),
        "{again:?}"
    );
}

#[test]
fn admin_on_sluice_broker() {
    let sluice = support::SluiceBroker::start();
    scenario(&sluice.bootstrap);
}

#[test]
fn admin_on_apache_kafka() {
    scenario(support::kafka_bootstrap());
}

#[test]
fn a_bad_property_or_an_unreachable_cluster_fails_at_connect() {
    let bad = KafkaCluster::connect(KafkaConfig::new("127.0.0.1:9").set("no.such.property", "1"));
    assert!(matches!(bad, Err(KafkaClusterError::Config(_))), "{bad:?}");

    // Port 9 (discard) on loopback: nothing listens, so every connection is refused.
    let unreachable =
        KafkaCluster::connect(KafkaConfig::new("127.0.0.1:9").with_timeout(Duration::from_secs(2)));
    match unreachable {
        Err(e @ KafkaClusterError::Client { .. }) => {
            assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
        }
        other => panic!("expected a client error, got {other:?}"),
    }
}
