//! Global tables: a stream joined with a `GlobalTable` by a key taken from the record,
//! through the TopologyTestDriver (against a map replaying the same interleaving) and in a
//! real app on the embedded broker, where the table's topic has more partitions than the
//! stream's and every row must be visible to every task, across a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sluice_dsl::StreamBuilder;
use sluice_dsl::runtime::AppConfig;
use sluice_dsl::runtime::app::{App, AppState};
use sluice_dsl::runtime::log::{
    Broker, BrokerConfig, Consumer, ConsumerConfig, IsolationLevel, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
};
use sluice_dsl::runtime::serde::{OptionSerde, Serde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};

/// Orders (`order id` -> `customer id`) joined with customers (`id` -> name).
fn topology(left: bool) -> sluice_dsl::runtime::topology::Topology {
    let b = StreamBuilder::new();
    let customers = b.global_table::<String, String>("customers");
    let orders = b.stream::<String, String>("orders");
    if left {
        orders
            .left_join_global(
                &customers,
                |_, customer| customer.clone(),
                |_, c, name| format!("{c}:{}", name.unwrap_or_else(|| "?".into())),
            )
            .to("enriched");
    } else {
        orders
            .join_global(
                &customers,
                |_, customer| customer.clone(),
                |_, c, name| format!("{c}:{name}"),
            )
            .to("enriched");
    }
    b.build().expect("topology")
}

#[derive(Debug, Clone)]
enum Step {
    /// Customer `id` gets a name, or is deleted.
    Customer(u8, Option<u8>),
    /// An order of customer `id`.
    Order(u8),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (0u8..5, proptest::option::of(0u8..4)).prop_map(|(c, n)| Step::Customer(c, n)),
            (0u8..6).prop_map(Step::Order),
        ],
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(64)))]

    #[test]
    fn each_order_joins_the_customer_row_as_it_is_when_processed(steps in steps(), left in any::<bool>()) {
        let mut driver = TopologyTestDriver::new(topology(left)).expect("driver");
        let customers = TestInputTopic::new("customers", StringSerde, OptionSerde(Arc::new(StringSerde)));
        let orders = TestInputTopic::new("orders", StringSerde, StringSerde);
        let mut table: BTreeMap<String, String> = BTreeMap::new();
        let mut expected = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Customer(c, name) => {
                    let (id, name) = (format!("c{c}"), name.map(|n| format!("name{n}")));
                    match &name {
                        Some(n) => table.insert(id.clone(), n.clone()),
                        None => table.remove(&id),
                    };
                    driver.pipe_input(&customers, id, name, i as i64).expect("pipe");
                }
                Step::Order(c) => {
                    let id = format!("c{c}");
                    match (table.get(&id), left) {
                        (Some(n), _) => expected.push((format!("o{i}"), format!("{id}:{n}"))),
                        (None, true) => expected.push((format!("o{i}"), format!("{id}:?"))),
                        (None, false) => {}
                    }
                    driver.pipe_input(&orders, format!("o{i}"), id, i as i64).expect("pipe");
                }
            }
        }
        let out = driver
            .read_output(&TestOutputTopic::new("enriched", StringSerde, StringSerde))
            .expect("read");
        let got: Vec<(String, String)> = out.into_iter().map(|r| (r.key, r.value)).collect();
        prop_assert_eq!(got, expected);
    }
}

fn produce(broker: &Broker, topic: &str, records: &[(String, Option<String>)]) {
    let producer = Producer::new(broker, ProducerConfig::default()).expect("producer");
    for (k, v) in records {
        let mut record = ProducerRecord::new(topic, "").with_key(k.clone());
        record.value = v.clone().map(Into::into);
        producer.send(record).expect("send");
    }
    producer.flush().expect("flush");
}

/// The committed records of `topic` as (key, value) strings.
fn committed(broker: &Broker, topic: &str, partitions: i32) -> BTreeMap<String, String> {
    let mut consumer = Consumer::new(
        broker,
        ConsumerConfig::default()
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    );
    let tps = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(tps).expect("assign");
    let mut out = BTreeMap::new();
    loop {
        let records = consumer.poll(Duration::from_millis(50)).expect("poll");
        if records.is_empty() {
            return out;
        }
        for r in records {
            let text = |b: Option<&[u8]>| {
                StringSerde
                    .deserialize(b.unwrap_or_default())
                    .expect("utf-8")
            };
            out.insert(text(r.key.as_deref()), text(r.value.as_deref()));
        }
    }
}

fn run_until(broker: &Broker, dir: &std::path::Path, want: usize) -> BTreeMap<String, String> {
    let app = App::new(
        "global-join",
        topology(true),
        AppConfig::default().with_state_dir(dir.to_path_buf()),
    )
    .expect("app");
    let handle = app.start(broker).expect("start");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = BTreeMap::new();
    while Instant::now() < deadline {
        assert_ne!(handle.state(), AppState::Error, "{:?}", handle.error());
        out = committed(broker, "enriched", 2);
        if out.len() >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.shutdown().expect("shutdown");
    out
}

#[test]
fn an_app_sees_every_partition_of_the_global_topic_and_follows_it_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    broker
        .create_topic("customers", TopicConfig::default().with_partitions(3))
        .expect("topic");
    broker
        .create_topic("orders", TopicConfig::default().with_partitions(2))
        .expect("topic");
    broker
        .create_topic("enriched", TopicConfig::default().with_partitions(2))
        .expect("topic");
    let customers: Vec<(String, Option<String>)> = (0..30)
        .map(|c| (format!("c{c}"), Some(format!("name{c}"))))
        .collect();
    produce(&broker, "customers", &customers);
    let orders: Vec<(String, Option<String>)> = (0..60)
        .map(|o| (format!("o{o:02}"), Some(format!("c{}", o % 30))))
        .collect();
    produce(&broker, "orders", &orders);
    let first = run_until(&broker, &dir.path().join("state"), 60);
    assert_eq!(first.len(), 60);
    for o in 0..60 {
        let c = o % 30;
        assert_eq!(
            first[&format!("o{o:02}")],
            format!("c{c}:name{c}"),
            "order o{o:02}"
        );
    }

    // Renames and deletes while the app is down; the restarted app reads them first.
    let updates: Vec<(String, Option<String>)> = (0..30)
        .map(|c| match c % 3 {
            0 => (format!("c{c}"), None),
            _ => (format!("c{c}"), Some(format!("new{c}"))),
        })
        .collect();
    produce(&broker, "customers", &updates);
    let more: Vec<(String, Option<String>)> = (60..90)
        .map(|o| (format!("o{o:02}"), Some(format!("c{}", o % 30))))
        .collect();
    produce(&broker, "orders", &more);
    let second = run_until(&broker, &dir.path().join("state"), 90);
    assert_eq!(second.len(), 90);
    for o in 60..90 {
        let c = o % 30;
        let expected = if c % 3 == 0 {
            format!("c{c}:?")
        } else {
            format!("c{c}:new{c}")
        };
        assert_eq!(second[&format!("o{o:02}")], expected, "order o{o:02}");
    }
}

#[test]
fn a_global_store_starts_from_what_its_topic_still_holds_and_rebuilds_when_it_fell_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    let small = TopicConfig::default()
        .with_segment_bytes(1024)
        .with_retention_bytes(Some(3000));
    broker.create_topic("customers", small).expect("topic");
    for topic in ["orders", "enriched"] {
        broker
            .create_topic(topic, TopicConfig::default().with_partitions(2))
            .expect("topic");
    }
    // Long names, so that 200 customers fill many segments.
    let name = |tag: &str, c: usize| format!("{tag}{c}-{}", "x".repeat(40));
    let names = |tag: &str| -> Vec<(String, Option<String>)> {
        (0..200)
            .map(|c| (format!("c{c}"), Some(name(tag, c))))
            .collect()
    };
    let log_start = |b: &Broker| {
        b.topic_metadata("customers").expect("meta").partitions[0].log_start_offset as usize
    };
    // One batch each (a producer flushes once), so the records fill many segments.
    let produce_each = |records: Vec<(String, Option<String>)>| {
        for chunk in records.chunks(10) {
            produce(&broker, "customers", chunk);
        }
    };
    produce_each(names("n"));
    assert!(broker.run_retention().expect("retention") > 0);
    let first_kept = log_start(&broker);
    assert!(
        first_kept > 0 && first_kept < 199,
        "retention moved the log start"
    );
    // No checkpoint yet: the store starts at the log start instead of failing at offset 0.
    let order = |o: usize, c: usize| (format!("o{o:03}"), Some(format!("c{c}")));
    produce(&broker, "orders", &[order(0, 0), order(1, 199)]);
    let out = run_until(&broker, &dir.path().join("state"), 2);
    assert_eq!(out["o000"], "c0:?", "c0 is gone from the topic");
    assert_eq!(out["o001"], format!("c199:{}", name("n", 199)));

    // While the app is down the topic moves on past its checkpoint (200): the store is
    // rebuilt from what the topic holds, with no row left from before.
    produce_each(names("m"));
    broker.run_retention().expect("retention");
    let second_kept = log_start(&broker);
    assert!(
        second_kept > 200,
        "the old checkpoint is below the log start"
    );
    let gone = second_kept - 200 - 1; // renamed, but that record is gone again
    produce(&broker, "orders", &[order(2, gone), order(3, 199)]);
    let out = run_until(&broker, &dir.path().join("state"), 4);
    assert_eq!(
        out["o002"],
        format!("c{gone}:?"),
        "no stale row survives the rebuild"
    );
    assert_eq!(out["o003"], format!("c199:{}", name("m", 199)));
}
