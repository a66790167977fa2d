//! A task with several input partitions processes them in timestamp order even when the
//! consumer hands it one partition's records first (Kafka's `max.task.idle.ms`, KIP-695):
//! a drained input with records on the broker makes the task wait for them. Without that,
//! a stream-table join would see the table as of whichever topic happened to be fetched
//! first.

mod common;

use std::time::Duration;

use common::{eventually, read_committed};
use sluice_log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use sluice_runtime::AppConfig;
use sluice_runtime::app::App;
use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::StringSerde;
use sluice_runtime::topology::{Topology, TopologyBuilder};

/// Forwards each record, its value tagged with the record's timestamp.
struct Stamp;

impl Processor<String, String> for Stamp {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> ProcessResult {
        let stamped = format!("{}@{}", r.value, r.timestamp);
        ctx.forward(r.with_value(stamped))?;
        Ok(())
    }
}

fn produce(broker: &Broker, topic: &str, name: &str, timestamps: impl Iterator<Item = i64>) {
    let producer = Producer::new(broker, ProducerConfig::default()).expect("producer");
    for (i, ts) in timestamps.enumerate() {
        let record = ProducerRecord::new(topic, format!("{name}{i}"))
            .with_key("k")
            .with_timestamp(ts);
        producer.send(record).expect("send");
    }
    producer.flush().expect("flush");
}

/// A broker with the topics `alpha`, `omega` (inputs) and `merged` (output).
fn broker() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    for topic in ["alpha", "omega", "merged"] {
        broker
            .create_topic(topic, TopicConfig::default())
            .expect("topic");
    }
    (dir, broker)
}

/// `alpha` and `omega` merged through `Stamp` into `merged`, in one task.
fn merging() -> Topology {
    let mut b = TopologyBuilder::new();
    b.add_source("alpha", &["alpha"], StringSerde, StringSerde)
        .expect("source");
    b.add_source("omega", &["omega"], StringSerde, StringSerde)
        .expect("source");
    b.add_processor("stamp", &["alpha", "omega"], || Stamp)
        .expect("processor");
    b.add_sink::<String, String>("out", "merged", &["stamp"], StringSerde, StringSerde)
        .expect("sink");
    b.build().expect("topology")
}

fn run(max_task_idle: Duration) -> Vec<i64> {
    let (dir, broker) = broker();
    // The newer records are in the log first, and fetched first (assignments are in
    // topic order).
    produce(&broker, "alpha", "l", (0..30).map(|i| 1_000 + i));
    produce(&broker, "omega", "e", 0..30);
    let config = AppConfig::default()
        .with_state_dir(dir.path().join("state"))
        .with_max_poll_records(1)
        .with_max_task_idle(max_task_idle);
    let app = App::new("idle", merging(), config).expect("app");
    let handle = app.start(&broker).expect("start");
    assert!(eventually(Duration::from_secs(60), || read_committed(
        &broker, "merged"
    )
    .len()
        == 60));
    handle.shutdown().expect("shutdown");
    read_committed(&broker, "merged")
        .into_iter()
        .map(|r| r.timestamp)
        .collect()
}

#[test]
fn co_partitioned_inputs_are_merged_in_timestamp_order() {
    for idle in [Duration::ZERO, Duration::from_millis(50)] {
        let timestamps = run(idle);
        let mut sorted = timestamps.clone();
        sorted.sort_unstable();
        assert_eq!(timestamps, sorted, "max_task_idle {idle:?}");
    }
}

#[test]
fn after_its_idle_wait_a_task_keeps_processing_while_an_input_stays_empty() {
    let (dir, broker) = broker();
    // `omega` stays empty: the task waits `max_task_idle` once, then must not wait before
    // every record (2,000 records after 500 ms waits each would take over 16 minutes).
    produce(&broker, "alpha", "a", 0..2_000);
    let config = AppConfig::default()
        .with_state_dir(dir.path().join("state"))
        .with_max_poll_records(100)
        .with_max_task_idle(Duration::from_millis(500));
    let app = App::new("idle-once", merging(), config).expect("app");
    let handle = app.start(&broker).expect("start");
    let all = eventually(Duration::from_secs(60), || {
        read_committed(&broker, "merged").len() == 2_000
    });
    handle.shutdown().expect("shutdown");
    assert!(
        all,
        "{} of 2000 processed",
        read_committed(&broker, "merged").len()
    );
}
