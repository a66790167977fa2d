//! An app on a Kafka cluster, end to end: the DSL word count (a repartition topic, a
//! RocksDB count with its changelog) started with `App::start(&KafkaCluster)`, on Apache
//! Kafka 4.4 and on `sluice broker` over the wire. One instance counts the first half of the
//! input; a second instance joins (the group rebalances its tasks between them) and the
//! rest is counted by both. Every word's last committed count must equal its count in the
//! input: nothing lost, nothing counted twice, across the rebalance; and the repartition
//! topic is purged up to what the group committed. (The examples on Kafka are run by
//! `tests/kafka_examples.rs`; `sluice perf eos` and `perf rebalance` with
//! `--bootstrap-server` by `cli/tests/kafka_perf.rs`.)

#[path = "../kafka/tests/support/mod.rs"]
mod support;

mod cluster_support;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_support::read_committed_to_end;
use sluice::prelude::*;
use sluice::runtime::app::AppState;
use sluice_kafka::{KafkaCluster, KafkaConfig};
use sluice_log::cluster::{
    Cluster, InternalTopic, InternalTopicKind, OffsetAt, ProducerSpec, TxnProducer,
};

const BOUND: Duration = Duration::from_secs(120);

fn lines(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| format!("w{} w{} common", i % 7, i % 13))
        .collect()
}

fn expected(lines: &[String]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in lines.iter().flat_map(|l| l.split(' ')) {
        *counts.entry(word.to_string()).or_default() += 1;
    }
    counts
}

fn produce<C: Cluster>(cluster: &C, topic: &str, lines: &[String]) {
    let mut producer = cluster
        .producer(&ProducerSpec::idempotent("kafka-app-input"))
        .expect("producer");
    for line in lines {
        producer
            .send(ProducerRecord::new(topic, line.clone()))
            .expect("send");
    }
    producer.flush().expect("flush");
    producer.close().expect("close");
}

/// The last committed count of every word in `topic`.
fn latest_counts<C: Cluster>(cluster: &C, topic: &str) -> BTreeMap<String, u64> {
    let mut latest = BTreeMap::new();
    for r in read_committed_to_end(cluster, topic, BOUND) {
        let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        let value =
            <[u8; 8]>::try_from(r.value.as_deref().unwrap_or_default()).expect("a u64 count");
        latest.insert(key, u64::from_be_bytes(value));
    }
    latest
}

fn word_count<C: Cluster>(cluster: &C) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let app_id = support::unique("kafka-wc");
    let (input, output) = (format!("{app_id}-in"), format!("{app_id}-out"));
    for topic in [&input, &output] {
        let spec = InternalTopic {
            partitions: Some(2),
            kind: InternalTopicKind::Repartition,
        };
        cluster.create_internal_topic(topic, &spec).expect("create");
    }
    let topology = || {
        let b = StreamBuilder::new();
        b.stream::<(), String>(&input)
            .flat_map_values(|line| line.split(' ').map(str::to_string).collect::<Vec<String>>())
            .group_by(|_, word| word.clone())
            .count("counts")
            .to_stream()
            .to(&output);
        b.build().expect("topology")
    };
    let state = tempfile::tempdir().expect("state dir");
    let config = |n: usize| {
        AppConfig::default()
            .with_state_dir(state.path().join(format!("instance-{n}")))
            .with_commit_interval(Duration::from_millis(100))
            .with_repartition_purge_interval(Duration::ZERO)
    };

    let first_half = lines(0, 300);
    produce(cluster, &input, &first_half);
    let first = App::new(&app_id, topology(), config(1))
        .expect("app")
        .start(cluster)
        .expect("start");
    assert!(
        first.wait_until_caught_up(BOUND).expect("first instance"),
        "the first instance did not catch up"
    );
    assert_eq!(latest_counts(cluster, &output), expected(&first_half));
    let before_join = first.metrics();
    assert_eq!(before_join.tasks_opened, 4, "{before_join:?}");

    let second = App::new(&app_id, topology(), config(2))
        .expect("app")
        .start(cluster)
        .expect("start");
    // Shared: each has some, and between them every task exactly once (the first may still
    // show all four before it has followed the group to the new generation).
    support::wait_until("both instances to share the tasks", BOUND, || {
        let (mine, theirs) = (first.tasks(), second.tasks());
        !mine.is_empty()
            && !theirs.is_empty()
            && mine.len() + theirs.len() == 4
            && first.state() == AppState::Running
            && second.state() == AppState::Running
    });
    // The first instance was idle when the second joined: it keeps the tasks it still
    // owns open (state, position, processors) and opens none.
    let after_join = first.metrics();
    assert!(
        after_join.tasks_retained - before_join.tasks_retained >= first.tasks().len() as u64,
        "{after_join:?}"
    );
    assert_eq!(after_join.tasks_opened, 4, "{after_join:?}");
    let all = lines(0, 600);
    produce(cluster, &input, &all[300..]);
    assert!(
        second.wait_until_caught_up(BOUND).expect("second instance"),
        "the two instances did not catch up"
    );
    assert_eq!(latest_counts(cluster, &output), expected(&all));
    second.shutdown().expect("second shutdown");
    first.shutdown().expect("first shutdown");

    // Each repartition partition was purged (DeleteRecords) after a commit, never past
    // what the group committed.
    let app = App::new(&app_id, topology(), config(1)).expect("app");
    let repartition = app.topology().internal_topics();
    assert_eq!(repartition.len(), 1, "{repartition:?}");
    for topic in &repartition {
        let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new(topic, p)).collect();
        let committed = cluster.committed_offsets(&app_id, &tps).expect("committed");
        for (tp, offset) in committed {
            let offset = offset.expect("a committed offset");
            let start = cluster
                .list_offset(&tp, OffsetAt::Earliest)
                .expect("log start");
            assert!(
                start > 0 && start <= offset,
                "{tp:?}: log start {start}, committed {offset}"
            );
        }
    }
}

#[test]
fn word_count_on_apache_kafka() {
    let cluster =
        KafkaCluster::connect(KafkaConfig::new(support::kafka_bootstrap())).expect("connect");
    word_count(&cluster);
}

#[test]
fn word_count_on_sluice_broker_over_kafka_protocol() {
    let sluice = support::SluiceBroker::start();
    let cluster = KafkaCluster::connect(KafkaConfig::new(&sluice.bootstrap)).expect("connect");
    word_count(&cluster);
}

#[test]
fn word_count_on_the_embedded_broker_through_the_same_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open");
    word_count(&broker);
}
