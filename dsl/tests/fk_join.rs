//! Foreign-key table joins (KIP-213): after every update of either table, the result store
//! equals the join recomputed from scratch over the two tables as they are (through the
//! TopologyTestDriver, against BTreeMaps), and in a real app whose two tables have
//! different partition counts the final result is the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sluice_dsl::StreamBuilder;
use sluice_dsl::runtime::AppConfig;
use sluice_dsl::runtime::app::{App, AppState};
use sluice_dsl::runtime::log::{
    Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig,
};
use sluice_dsl::runtime::serde::{OptionSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TopologyTestDriver};
use sluice_dsl::runtime::topology::Topology;

/// Orders (`order` -> `customer id`) joined with customers (`customer id` -> name).
fn topology(left: bool) -> Topology {
    let b = StreamBuilder::new();
    let orders = b.table::<String, String>("orders", "orders-store");
    let customers = b.table::<String, String>("customers", "customers-store");
    let fk = |customer: &String| customer.clone();
    let joined = if left {
        orders.left_join_foreign("joined", &customers, fk, |_, c, name| {
            format!("{c}:{}", name.map_or("?", String::as_str))
        })
    } else {
        orders.join_foreign("joined", &customers, fk, |_, c, name| format!("{c}:{name}"))
    };
    joined.to_stream().to("joined-out");
    b.build().expect("topology")
}

/// The join of the two tables as they are.
fn reference(
    orders: &BTreeMap<String, String>,
    customers: &BTreeMap<String, String>,
    left: bool,
) -> BTreeMap<String, String> {
    orders
        .iter()
        .filter_map(|(o, c)| match (customers.get(c), left) {
            (Some(name), _) => Some((o.clone(), format!("{c}:{name}"))),
            (None, true) => Some((o.clone(), format!("{c}:?"))),
            (None, false) => None,
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Step {
    /// Order `o` now belongs to customer `c`, or is deleted.
    Order(u8, Option<u8>),
    /// Customer `c` gets name `n`, or is deleted.
    Customer(u8, Option<u8>),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let some = |n: u8| proptest::option::weighted(0.8, 0..n);
    prop::collection::vec(
        prop_oneof![
            (0u8..6, some(4)).prop_map(|(o, c)| Step::Order(o, c)),
            (0u8..4, some(3)).prop_map(|(c, n)| Step::Customer(c, n)),
        ],
        1..50,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(64)))]

    #[test]
    fn the_result_is_the_join_of_the_tables_after_every_update(steps in steps(), left in any::<bool>()) {
        let mut driver = TopologyTestDriver::new(topology(left)).expect("driver");
        let input = |t| TestInputTopic::new(t, StringSerde, OptionSerde(Arc::new(StringSerde)));
        let (order_topic, customer_topic) = (input("orders"), input("customers"));
        let mut orders = BTreeMap::new();
        let mut customers = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            let (topic, table, key, value) = match step {
                Step::Order(o, c) => (&order_topic, &mut orders, format!("o{o}"), c.map(|c| format!("c{c}"))),
                Step::Customer(c, n) => (&customer_topic, &mut customers, format!("c{c}"), n.map(|n| format!("n{n}"))),
            };
            match &value {
                Some(v) => table.insert(key.clone(), v.clone()),
                None => table.remove(&key),
            };
            driver.pipe_input(topic, key, value, i as i64).expect("pipe");
            let got: BTreeMap<String, String> = driver
                .kv_store::<String, String>("joined")
                .expect("store")
                .all()
                .expect("scan")
                .collect::<Result<_, _>>()
                .expect("read");
            prop_assert_eq!(&got, &reference(&orders, &customers, left), "after step {} {:?}", i, step);
        }
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

#[test]
fn an_app_joins_tables_with_different_partition_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    for (topic, partitions) in [("orders", 2), ("customers", 3), ("joined-out", 2)] {
        broker
            .create_topic(topic, TopicConfig::default().with_partitions(partitions))
            .expect("topic");
    }
    let mut orders = BTreeMap::new();
    let mut customers = BTreeMap::new();
    let mut order_log = Vec::new();
    let mut customer_log = Vec::new();
    for c in 0..20 {
        let (k, v) = (format!("c{c}"), format!("n{c}"));
        customers.insert(k.clone(), v.clone());
        customer_log.push((k, Some(v)));
    }
    for o in 0..80 {
        let (k, v) = (format!("o{o}"), format!("c{}", (o * 7) % 25));
        orders.insert(k.clone(), v.clone());
        order_log.push((k, Some(v)));
    }
    // Some customers renamed or gone, some orders moved or cancelled.
    for c in (0..20).step_by(4) {
        customers.remove(&format!("c{c}"));
        customer_log.push((format!("c{c}"), None));
    }
    for c in (1..20).step_by(4) {
        customers.insert(format!("c{c}"), format!("renamed{c}"));
        customer_log.push((format!("c{c}"), Some(format!("renamed{c}"))));
    }
    for o in (0..80).step_by(5) {
        orders.insert(format!("o{o}"), "c3".into());
        order_log.push((format!("o{o}"), Some("c3".into())));
    }
    for o in (2..80).step_by(9) {
        orders.remove(&format!("o{o}"));
        order_log.push((format!("o{o}"), None));
    }
    produce(&broker, "customers", &customer_log);
    produce(&broker, "orders", &order_log);
    let expected = reference(&orders, &customers, false);

    let app = App::new(
        "fk-join",
        topology(false),
        AppConfig::default().with_state_dir(dir.path().join("state")),
    )
    .expect("app");
    let handle = app.start(&broker).expect("start");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert_ne!(handle.state(), AppState::Error, "{:?}", handle.error());
        let latest = read_latest(&broker);
        let joined: BTreeMap<String, String> = latest
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        if joined == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "got {joined:?}, want {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    handle.shutdown().expect("shutdown");
}

/// The latest committed value per key of `joined-out` (`None`: deleted).
fn read_latest(broker: &Broker) -> BTreeMap<String, Option<String>> {
    use sluice_dsl::runtime::log::{
        Consumer, ConsumerConfig, IsolationLevel, OffsetReset, TopicPartition,
    };
    let mut consumer = Consumer::new(
        broker,
        ConsumerConfig::default()
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    );
    let tps = (0..2)
        .map(|p| TopicPartition::new("joined-out", p))
        .collect();
    consumer.assign(tps).expect("assign");
    let mut out = BTreeMap::new();
    loop {
        let records = consumer.poll(Duration::from_millis(50)).expect("poll");
        if records.is_empty() {
            return out;
        }
        for r in records {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let value = r.value.map(|v| String::from_utf8_lossy(&v).into_owned());
            out.insert(key, value);
        }
    }
}
