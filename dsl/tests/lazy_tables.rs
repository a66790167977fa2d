//! Lazy tables: `filter`, `filter_not` and `map_values` make tables without a store, read
//! through their nearest materialized ancestor. Checked here: a chain `filter` +
//! `map_values` joined with a stream, with tables and by foreign key gives what a
//! reference replaying the input says, and the same as the chain materialized with
//! `materialized_as`; a lazy table adds no store (so no changelog topic) and
//! `materialized_as` adds one; a filter that stops passing a key sends a tombstone, and
//! nothing when neither the old nor the new value passes; an app joining through a lazy
//! table restores the ancestor's store from its changelog and joins as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use sluice_dsl::runtime::app::App;
use sluice_dsl::runtime::log::{
    Broker, BrokerConfig, Consumer, ConsumerConfig, IsolationLevel, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
};
use sluice_dsl::runtime::serde::{BigEndianSerde, OptionSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::runtime::topology::Topology;
use sluice_dsl::runtime::{AppConfig, ProcessingGuarantee};
use sluice_dsl::{StreamBuilder, Table};

/// The chain under test: rows whose value is not a multiple of 3, times 10.
fn chain(v: i64) -> Option<i64> {
    (v.rem_euclid(3) != 0).then_some(v * 10)
}

/// The foreign key of a chain value.
fn fk(v: &i64) -> String {
    if *v > 0 { "p".into() } else { "n".into() }
}

/// The table-table joins' values for one key: inner, left (chain on the left), outer (the
/// other table on the left).
fn table_joins(c: Option<&i64>, o: Option<&i64>) -> [Option<String>; 3] {
    [
        c.zip(o).map(|(c, o)| format!("{c}+{o}")),
        c.map(|c| format!("{c}+{o:?}")),
        (c.is_some() || o.is_some()).then(|| format!("{o:?}+{c:?}")),
    ]
}

/// A stream (`s`) and two tables (`t`, `o`); `t` filtered and mapped (lazily, or
/// materialized as `chain` when `materialize`) and joined every way.
fn topology(materialize: bool) -> Topology {
    let b = StreamBuilder::new();
    let t: Table<String, i64> = b.table("t", "t-rows");
    let o: Table<String, i64> = b.table("o", "o-rows");
    let mut c = t
        .filter_not(|_, v| v.rem_euclid(3) == 0)
        .map_values(|_, v| v * 10);
    if materialize {
        c = c.materialized_as("chain");
    }
    let s = b.stream::<String, i64>("s");
    s.join_table(&c, |_, v, row| format!("{v}/{row}"))
        .to("stream-inner");
    s.left_join_table(&c, |_, v, row| format!("{v}/{row:?}"))
        .to("stream-left");
    c.join("inner", &o, |_, c, o| format!("{c}+{o}"))
        .to_stream()
        .to("inner-out");
    c.left_join("left", &o, |_, c, o| format!("{c}+{o:?}"))
        .to_stream()
        .to("left-out");
    o.outer_join("outer", &c, |_, o, c| format!("{o:?}+{c:?}"))
        .to_stream()
        .to("outer-out");
    // By foreign key, into a lazy table keyed by `p` / `n`.
    let f: Table<String, i64> = b.table("f", "f-rows");
    let f = f.filter(|_, v| *v != 0);
    c.join_foreign("by-fk", &f, fk, |_, c, f| format!("{c}@{f}"))
        .to_stream()
        .to("fk-out");
    b.build().expect("topology")
}

#[derive(Debug, Clone)]
enum Step {
    Stream(String, i64),
    /// An update of `t`, `o` or `f` (0, 1, 2); `None` deletes.
    Table(u8, String, Option<i64>),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let update = prop::option::weighted(0.75, -6i64..6);
    prop::collection::vec(
        prop_oneof![
            ("[a-c]", -5i64..5).prop_map(|(k, v)| Step::Stream(k, v)),
            (0u8..2, "[a-c]", update.clone()).prop_map(|(t, k, v)| Step::Table(t, k, v)),
            ("[pn]", update).prop_map(|(k, v)| Step::Table(2, k, v)),
        ],
        0..60,
    )
}

fn read<V: 'static>(
    d: &mut TopologyTestDriver,
    topic: &str,
    values: impl sluice_dsl::runtime::serde::Serde<V> + 'static,
) -> Vec<(String, V)> {
    let out = TestOutputTopic::new(topic, StringSerde, values);
    let records = d.read_output(&out).expect("read");
    records.into_iter().map(|r| (r.key, r.value)).collect()
}

fn optional_strings() -> OptionSerde<String> {
    OptionSerde(Arc::new(StringSerde))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(48)))]

    #[test]
    fn a_filtered_and_mapped_table_joins_a_stream_tables_and_a_foreign_key_as_the_reference_says(
        steps in steps(),
        materialize in any::<bool>(),
    ) {
        let mut d = TopologyTestDriver::new(topology(materialize)).expect("driver");
        let s = TestInputTopic::new("s", StringSerde, BigEndianSerde);
        let tables: Vec<TestInputTopic<String, Option<i64>>> = ["t", "o", "f"]
            .into_iter()
            .map(|t| TestInputTopic::new(t, StringSerde, OptionSerde::<i64>(Arc::new(BigEndianSerde))))
            .collect();
        let mut rows: [BTreeMap<String, i64>; 3] = Default::default();
        let chained = |rows: &BTreeMap<String, i64>, k: &str| rows.get(k).copied().and_then(chain);
        let (mut stream_inner, mut stream_left) = (Vec::new(), Vec::new());
        let mut results: [BTreeMap<String, String>; 3] = Default::default();
        let mut want: [Vec<(String, Option<String>)>; 3] = Default::default();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Stream(k, v) => {
                    d.pipe_input(&s, k.clone(), *v, i as i64).expect("pipe");
                    let row = chained(&rows[0], k);
                    stream_inner.extend(row.map(|row| (k.clone(), format!("{v}/{row}"))));
                    stream_left.push((k.clone(), format!("{v}/{row:?}")));
                }
                Step::Table(t, k, v) => {
                    d.pipe_input(&tables[*t as usize], k.clone(), *v, i as i64).expect("pipe");
                    let table = &mut rows[*t as usize];
                    let before = table.get(k).copied();
                    match v {
                        Some(v) => table.insert(k.clone(), *v),
                        None => table.remove(k),
                    };
                    // Which side of the table joins sees a change: the chain's when its
                    // value was or is a row; `o`'s when its source table changed.
                    let changed = match t {
                        0 => before.and_then(chain).is_some() || chained(&rows[0], k).is_some(),
                        1 => before.is_some() || v.is_some(),
                        _ => false,
                    };
                    if !changed {
                        continue;
                    }
                    let joined = table_joins(chained(&rows[0], k).as_ref(), rows[1].get(k));
                    for (j, value) in joined.into_iter().enumerate() {
                        match value {
                            Some(v) => {
                                results[j].insert(k.clone(), v.clone());
                                want[j].push((k.clone(), Some(v)));
                            }
                            None if results[j].remove(k).is_some() => want[j].push((k.clone(), None)),
                            None => {}
                        }
                    }
                }
            }
            // The foreign-key join's result after every step: each chain row with the
            // (filtered) `f` row at its foreign key.
            let by_fk: BTreeMap<String, String> = rows[0]
                .keys()
                .filter_map(|k| {
                    let c = chained(&rows[0], k)?;
                    let f = rows[2].get(&fk(&c)).filter(|f| **f != 0)?;
                    Some((k.clone(), format!("{c}@{f}")))
                })
                .collect();
            let got: BTreeMap<String, String> =
                d.kv_store::<String, String>("by-fk").expect("store").all().expect("all").collect::<Result<_, _>>().expect("read");
            prop_assert_eq!(got, by_fk, "foreign-key join after step {} {:?}", i, step);
        }
        prop_assert_eq!(read(&mut d, "stream-inner", StringSerde), stream_inner);
        prop_assert_eq!(read(&mut d, "stream-left", StringSerde), stream_left);
        for (j, name) in ["inner", "left", "outer"].into_iter().enumerate() {
            prop_assert_eq!(read(&mut d, &format!("{name}-out"), optional_strings()), want[j].clone(), "{}", name);
        }
        if materialize {
            let stored: BTreeMap<String, i64> =
                d.kv_store::<String, i64>("chain").expect("store").all().expect("all").collect::<Result<_, _>>().expect("read");
            let reference: BTreeMap<String, i64> =
                rows[0].iter().filter_map(|(k, v)| Some((k.clone(), chain(*v)?))).collect();
            prop_assert_eq!(stored, reference);
        }
    }
}

/// Every store of the topology.
fn stores(topology: &Topology) -> BTreeSet<String> {
    topology
        .sub_topologies()
        .iter()
        .flat_map(|s| s.stores.iter().cloned())
        .collect()
}

#[test]
fn a_lazy_table_has_no_store_and_materialized_as_gives_it_one() {
    let b = StreamBuilder::new();
    let t: Table<String, i64> = b.table("t", "rows");
    let lazy = t
        .named("keep-positive")
        .filter(|_, v| *v > 0)
        .map_values(|_, v| v * 2);
    assert_eq!(lazy.store_name(), None);
    assert_eq!(t.store_name(), Some("rows"));
    b.stream::<String, i64>("s")
        .named("enrich")
        .join_table(&lazy, |_, v, row| v + row)
        .to("out");
    let topology = b.build().expect("topology");
    assert_eq!(stores(&topology), BTreeSet::from(["rows".to_string()]));
    let described = topology.describe();
    // The filter took the name; the join reads the ancestor's store.
    assert!(
        described.contains("Processor: keep-positive (stores: [])"),
        "{described}"
    );
    assert!(
        described.contains("Processor: enrich (stores: [rows])"),
        "{described}"
    );

    let b = StreamBuilder::new();
    let t: Table<String, i64> = b.table("t", "rows");
    let kept = t.filter(|_, v| *v > 0).materialized_as("kept");
    assert_eq!(kept.store_name(), Some("kept"));
    b.stream::<String, i64>("s")
        .named("enrich")
        .join_table(&kept.map_values(|_, v| v * 2), |_, v, row| v + row)
        .to("out");
    let topology = b.build().expect("topology");
    let want: BTreeSet<String> = ["kept".to_string(), "rows".to_string()].into();
    assert_eq!(stores(&topology), want);
    let described = topology.describe();
    assert!(
        described.contains("Processor: enrich (stores: [kept])"),
        "{described}"
    );
}

#[test]
fn a_filter_sends_a_tombstone_when_a_key_stops_passing_and_nothing_when_it_never_passed() {
    for materialize in [false, true] {
        let b = StreamBuilder::new();
        let t: Table<String, i64> = b.table("t", "rows");
        let mut positive = t.filter(|_, v| *v > 0);
        if materialize {
            positive = positive.materialized_as("positive");
        }
        positive.to_stream().to("out");
        let mut d = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
        let input = TestInputTopic::new(
            "t",
            StringSerde,
            OptionSerde::<i64>(Arc::new(BigEndianSerde)),
        );
        let a = || "a".to_string();
        for (i, v) in [
            Some(1),
            Some(-1),
            Some(-2),
            None,
            Some(3),
            Some(3),
            None,
            None,
        ]
        .into_iter()
        .enumerate()
        {
            d.pipe_input(&input, a(), v, i as i64).expect("pipe");
        }
        let got = read(&mut d, "out", OptionSerde::<i64>(Arc::new(BigEndianSerde)));
        let want = vec![
            (a(), Some(1)),
            (a(), None), // 1 -> -1: stops passing, a tombstone
            // -1 -> -2 and -2 -> deleted: neither side passes, nothing
            (a(), Some(3)),
            (a(), Some(3)),
            (a(), None), // deleted while passing
                         // deleted again: absent, nothing
        ];
        assert_eq!(got, want, "materialized: {materialize}");
    }
}

fn produce(broker: &Broker, records: Vec<ProducerRecord>) {
    let producer = Producer::new(broker, ProducerConfig::default()).expect("producer");
    for record in records {
        producer.send(record).expect("send");
    }
    producer.flush().expect("flush");
}

/// Every committed record of `topic` (2 partitions), as (key, value), sorted.
fn committed(broker: &Broker, topic: &str) -> Vec<(String, i64)> {
    let mut consumer = Consumer::new(
        broker,
        ConsumerConfig::default()
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    );
    let partitions: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.assign(partitions.clone()).expect("assign");
    let mut out = Vec::new();
    loop {
        for r in consumer.poll(Duration::from_millis(100)).expect("poll") {
            let key = String::from_utf8(r.key.expect("a key").to_vec()).expect("utf-8");
            let value: [u8; 8] = r.value.expect("a value").as_ref().try_into().expect("i64");
            out.push((key, i64::from_be_bytes(value)));
        }
        let caught_up = partitions
            .iter()
            .all(|tp| consumer.current_lag(tp).expect("lag") == Some(0));
        if caught_up {
            out.sort();
            return out;
        }
    }
}

#[test]
fn an_app_joining_through_a_lazy_table_restores_the_ancestor_store_and_joins_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    for topic in ["t", "s", "out"] {
        broker
            .create_topic(topic, TopicConfig::default().with_partitions(2))
            .expect("topic");
    }
    let topology = || {
        let b = StreamBuilder::new();
        let t: Table<String, i64> = b.table("t", "rows");
        let lazy = t.filter(|_, v| v % 2 == 1).map_values(|_, v| v * 100);
        b.stream::<String, i64>("s")
            .join_table(&lazy, |_, v, row| v + row)
            .to("out");
        b.build().expect("topology")
    };
    let state = dir.path().join("state");
    let start = || {
        let config = AppConfig::default()
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
            .with_state_dir(state.clone());
        App::new("lazy", topology(), config)
            .expect("app")
            .start(&broker)
            .expect("start")
    };
    let key = |i: i64| format!("k{i}");
    let value = |v: i64| v.to_be_bytes().to_vec();
    // Rows k0..k9 = 0..9, then k0 deleted: the odd ones (k1, k3, ...) pass.
    let mut rows: Vec<ProducerRecord> = (0..10)
        .map(|i| ProducerRecord::new("t", value(i)).with_key(key(i)))
        .collect();
    rows.push(ProducerRecord::tombstone("t", key(0)));
    produce(&broker, rows);
    let first = start();
    assert!(
        first
            .wait_until_caught_up(Duration::from_secs(60))
            .expect("progress")
    );
    let stream = |from: i64| -> Vec<ProducerRecord> {
        (0..10)
            .map(|i| ProducerRecord::new("s", value(from + i)).with_key(key(i)))
            .collect()
    };
    produce(&broker, stream(1_000));
    assert!(
        first
            .wait_until_caught_up(Duration::from_secs(60))
            .expect("progress")
    );
    assert!(first.metrics().state_bytes_written > 0);
    first.shutdown().expect("shutdown");

    // Only the source table's store has a changelog.
    let changelogs: Vec<String> = broker
        .metadata()
        .into_iter()
        .map(|t| t.name)
        .filter(|t| t.ends_with("-changelog"))
        .collect();
    assert_eq!(changelogs, vec!["lazy-rows-changelog".to_string()]);

    // A restart without the state directory restores `rows` from its changelog.
    std::fs::remove_dir_all(&state).expect("wipe the state");
    let second = start();
    produce(&broker, stream(2_000));
    assert!(
        second
            .wait_until_caught_up(Duration::from_secs(60))
            .expect("progress")
    );
    assert!(second.metrics().records_restored > 0);
    second.shutdown().expect("shutdown");

    let mut want: Vec<(String, i64)> = [1_000, 2_000]
        .into_iter()
        .flat_map(|from| {
            (1..10)
                .filter(|i| i % 2 == 1)
                .map(move |i| (key(i), from + i + i * 100))
        })
        .collect();
    want.sort();
    assert_eq!(committed(&broker, "out"), want);
}

/// A join must not read a suppressed table (or a lazy view of one) through the store under
/// it: that store holds the updates not yet emitted, not the table. The build refuses it.
#[test]
fn a_lazy_table_over_a_suppressed_one_cannot_be_joined() {
    let b = StreamBuilder::new();
    let held = b
        .stream::<String, String>("clicks")
        .group_by_key()
        .count("counts")
        .suppress(sluice_dsl::Suppressed::until_time_limit(
            Duration::from_secs(1),
            sluice_dsl::BufferConfig::unbounded(),
        ));
    b.stream::<String, String>("orders")
        .join_table(&held.filter(|_, n| *n > 1), |_, order, n| {
            format!("{order}:{n}")
        })
        .to("out");
    let error = b.build().expect_err("a join through a suppressed table");
    let message = error.to_string();
    assert!(
        message.contains("cannot be read by key") && message.contains("suppress"),
        "{message}"
    );
}
