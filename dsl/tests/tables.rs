//! Tables through the TopologyTestDriver against a `BTreeMap` reference: a source table
//! (upserts, deletes as null values), `Stream::to_table`, the lazy `filter` / `filter_not` /
//! `map_values` and their `materialized_as` copies (a row that stops passing is deleted
//! downstream; lazy tables: `lazy_tables.rs`), and `group_by` with
//! `count`, `aggregate` and `reduce`, whose result after every update equals the aggregate
//! recomputed from scratch over the source's current rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, BincodeSerde, OptionSerde, Serde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{StreamBuilder, Table};

/// One update of a table's changelog: the key's new value, or `None` to delete it.
type Update = (String, Option<i64>);
/// One change a table emits: the key and its new value (`None`: deleted).
type Change<V> = (String, Option<V>);

/// `cases` cases, or as many as the environment's `PROPTEST_CASES` asks for.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(cases))
}

fn driver(shape: impl FnOnce(&StreamBuilder)) -> TopologyTestDriver {
    let b = StreamBuilder::new();
    shape(&b);
    TopologyTestDriver::new(b.build().expect("topology")).expect("driver")
}

fn updates(topic: &str) -> TestInputTopic<String, Option<i64>> {
    TestInputTopic::new(
        topic,
        StringSerde,
        OptionSerde::<i64>(Arc::new(BigEndianSerde)),
    )
}

fn pipe(d: &mut TopologyTestDriver, topic: &str, input: &[Update]) {
    let topic = updates(topic);
    for (i, (k, v)) in input.iter().enumerate() {
        d.pipe_input(&topic, k.clone(), *v, i as i64).expect("pipe");
    }
}

/// What reached `topic` so far, a null value read as `None`.
fn changes<V: 'static>(
    d: &mut TopologyTestDriver,
    topic: &str,
    values: impl Serde<V> + 'static,
) -> Vec<Change<V>> {
    let out = TestOutputTopic::new(topic, StringSerde, OptionSerde::<V>(Arc::new(values)));
    let records = d.read_output(&out).expect("read");
    records.into_iter().map(|r| (r.key, r.value)).collect()
}

fn store<V: 'static>(d: &mut TopologyTestDriver, name: &str) -> BTreeMap<String, V> {
    let store = d.kv_store::<String, V>(name).expect("store");
    store
        .all()
        .expect("all")
        .collect::<Result<_, _>>()
        .expect("read")
}

/// Sets `key` to `new` in the reference table `rows` (`None`: removes it); the change the
/// table emits, if any (removing an absent key changes nothing).
fn set<V: Clone>(rows: &mut BTreeMap<String, V>, key: &str, new: Option<V>) -> Option<Change<V>> {
    match new {
        Some(v) => {
            rows.insert(key.to_string(), v.clone());
            Some((key.to_string(), Some(v)))
        }
        None => rows.remove(key).map(|_| (key.to_string(), None)),
    }
}

fn update_strategy(keys: &'static str, len: usize) -> impl Strategy<Value = Vec<Update>> {
    prop::collection::vec((keys, prop::option::weighted(0.7, -6i64..6)), 0..len)
}

fn odd(v: i64) -> bool {
    v.rem_euclid(2) == 1
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn a_source_table_upserts_and_deletes_and_emits_each_effective_change(
        input in update_strategy("[a-e]", 50),
    ) {
        let mut d = driver(|b| b.table::<String, i64>("t", "rows").to_stream().to("out"));
        pipe(&mut d, "t", &input);
        let mut rows = BTreeMap::new();
        let want: Vec<Change<i64>> =
            input.iter().filter_map(|(k, v)| set(&mut rows, k, *v)).collect();
        prop_assert_eq!(changes(&mut d, "out", BigEndianSerde), want);
        prop_assert_eq!(store::<i64>(&mut d, "rows"), rows);
    }

    #[test]
    fn filter_filter_not_and_map_values_follow_each_update_and_delete_what_stops_passing(
        input in update_strategy("[a-e]", 50),
    ) {
        let mut d = driver(|b| {
            let t: Table<String, i64> = b.table("t", "rows");
            // Lazy tables (no store), and the same tables materialized: both forward the
            // same changes.
            let odds = t.filter(|_, v| odd(*v));
            odds.to_stream().to("odd-out");
            odds.materialized_as("odd").to_stream().to("odd-materialized-out");
            let evens = t.filter_not(|_, v| odd(*v));
            evens.to_stream().to("even-out");
            evens.materialized_as("even");
            let labels = t.map_values(|k, v| format!("{k}={v}"));
            labels.to_stream().to("labels-out");
            labels.materialized_as("labels");
            // Derived from a derived table: a row leaves when it stops passing upstream.
            let negated = t.filter(|_, v| *v > 0).map_values(|_, v| -v);
            negated.to_stream().to("negated-out");
            negated.materialized_as("negated").to_stream().to("negated-materialized-out");
        });
        pipe(&mut d, "t", &input);

        let mut rows = BTreeMap::new();
        let (mut odds, mut evens, mut labels, mut negated) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut want: [Vec<Change<i64>>; 3] = Default::default();
        let mut want_labels = Vec::new();
        for (k, v) in &input {
            let Some((_, new)) = set(&mut rows, k, *v) else { continue };
            // A derived table's key gets the mapped new value, `None` if filtered out.
            want[0].extend(set(&mut odds, k, new.filter(|v| odd(*v))));
            want[1].extend(set(&mut evens, k, new.filter(|v| !odd(*v))));
            want[2].extend(set(&mut negated, k, new.filter(|v| *v > 0).map(|v| -v)));
            want_labels.extend(set(&mut labels, k, new.map(|v| format!("{k}={v}"))));
        }
        prop_assert_eq!(changes(&mut d, "odd-out", BigEndianSerde), want[0].clone());
        prop_assert_eq!(changes(&mut d, "odd-materialized-out", BigEndianSerde), want[0].clone());
        prop_assert_eq!(changes(&mut d, "negated-materialized-out", BigEndianSerde), want[2].clone());
        prop_assert_eq!(changes(&mut d, "even-out", BigEndianSerde), want[1].clone());
        prop_assert_eq!(changes(&mut d, "negated-out", BigEndianSerde), want[2].clone());
        prop_assert_eq!(changes(&mut d, "labels-out", StringSerde), want_labels);
        prop_assert_eq!(store::<i64>(&mut d, "odd"), odds);
        prop_assert_eq!(store::<i64>(&mut d, "even"), evens);
        prop_assert_eq!(store::<i64>(&mut d, "negated"), negated);
        prop_assert_eq!(store::<String>(&mut d, "labels"), labels);
    }

    #[test]
    fn a_stream_as_a_table_keeps_the_last_value_per_key_with_and_without_a_new_key(
        input in prop::collection::vec(("[a-d]", -6i64..6), 0..40),
    ) {
        let mut d = driver(|b| {
            let s = b.stream::<String, i64>("s");
            s.to_table("latest").to_stream().to("latest-out");
            s.select_key(|k, v| format!("{k}{}", v.rem_euclid(2)))
                .to_table("rekeyed")
                .to_stream()
                .to("rekeyed-out");
        });
        let topic = TestInputTopic::new("s", StringSerde, BigEndianSerde);
        for (i, (k, v)) in input.iter().enumerate() {
            d.pipe_input(&topic, k.clone(), *v, i as i64).expect("pipe");
        }
        let (mut latest, mut rekeyed) = (BTreeMap::new(), BTreeMap::new());
        let mut want: [Vec<Change<i64>>; 2] = Default::default();
        for (k, v) in &input {
            want[0].extend(set(&mut latest, k, Some(*v)));
            want[1].extend(set(&mut rekeyed, &format!("{k}{}", v.rem_euclid(2)), Some(*v)));
        }
        prop_assert_eq!(changes(&mut d, "latest-out", BigEndianSerde), want[0].clone());
        prop_assert_eq!(changes(&mut d, "rekeyed-out", BigEndianSerde), want[1].clone());
        prop_assert_eq!(store::<i64>(&mut d, "latest"), latest);
        prop_assert_eq!(store::<i64>(&mut d, "rekeyed"), rekeyed);
    }

    #[test]
    fn group_by_aggregations_equal_a_recomputation_over_the_current_rows_after_every_update(
        input in update_strategy("[a-f]", 60),
    ) {
        let mut d = driver(|b| {
            let t: Table<String, i64> = b.table("t", "rows");
            let by_residue = t.group_by(|_, v| (residue(*v), *v));
            by_residue.count("counts").to_stream().to("counts-out");
            by_residue
                .aggregate("count-sums", || (0i64, 0i64), |_, v, (n, s)| (n + 1, s + v), |_, v, (n, s)| (n - 1, s - v))
                .to_stream()
                .to("count-sums-out");
            by_residue.reduce("sums", |a, v| a + v, |a, v| a - v).to_stream().to("sums-out");
            // Grouped by the key, after a filter: a row leaves its group when it stops passing.
            t.filter(|_, v| *v > 0)
                .group_by(|k, v| (half(k), *v))
                .reduce("positive-sums", |a, v| a + v, |a, v| a - v)
                .to_stream()
                .to("positive-sums-out");
        });
        let topic = updates("t");
        let mut rows: BTreeMap<String, i64> = BTreeMap::new();
        let (mut seen, mut seen_positive) = (BTreeSet::new(), BTreeSet::new());
        let mut views = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (i, (k, v)) in input.iter().enumerate() {
            d.pipe_input(&topic, k.clone(), *v, i as i64).expect("pipe");
            set(&mut rows, k, *v);
            // The reference, from scratch: every group that ever had a row, with the rows
            // it has now (none: count 0, sum 0).
            let groups = regroup(rows.values().map(|v| (residue(*v), *v)), &mut seen);
            let positive = rows.iter().filter(|(_, v)| **v > 0).map(|(k, v)| (half(k), *v));
            let positive = regroup(positive, &mut seen_positive);

            fold(&mut views.0, changes(&mut d, "counts-out", BigEndianSerde))?;
            fold(&mut views.1, changes(&mut d, "count-sums-out", BincodeSerde::<(i64, i64)>::default()))?;
            fold(&mut views.2, changes(&mut d, "sums-out", BigEndianSerde))?;
            fold(&mut views.3, changes(&mut d, "positive-sums-out", BigEndianSerde))?;
            let counts: BTreeMap<String, u64> =
                groups.iter().map(|(g, (n, _))| (g.clone(), *n as u64)).collect();
            let sums: BTreeMap<String, i64> = groups.iter().map(|(g, (_, s))| (g.clone(), *s)).collect();
            prop_assert_eq!(&views.0, &counts, "counts after update {}", i);
            prop_assert_eq!(&views.1, &groups, "counts and sums after update {}", i);
            prop_assert_eq!(&views.2, &sums, "sums after update {}", i);
            let positive: BTreeMap<String, i64> =
                positive.into_iter().map(|(g, (_, s))| (g, s)).collect();
            prop_assert_eq!(&views.3, &positive, "positive sums after update {}", i);
        }
        prop_assert_eq!(store::<u64>(&mut d, "counts"), views.0);
        prop_assert_eq!(store::<(i64, i64)>(&mut d, "count-sums"), views.1);
        prop_assert_eq!(store::<i64>(&mut d, "sums"), views.2);
        prop_assert_eq!(store::<i64>(&mut d, "positive-sums"), views.3);
    }
}

fn residue(v: i64) -> String {
    format!("r{}", v.rem_euclid(3))
}

fn half(k: &str) -> String {
    if k <= "c" { "abc" } else { "def" }.to_string()
}

/// Groups `rows` (group, value) into (count, sum) per group, every group of `seen` (which
/// gains the groups of `rows`) present.
fn regroup(
    rows: impl Iterator<Item = (String, i64)>,
    seen: &mut BTreeSet<String>,
) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (g, v) in rows {
        seen.insert(g.clone());
        let (n, s) = out.entry(g).or_default();
        *n += 1;
        *s += v;
    }
    for g in seen.iter() {
        out.entry(g.clone()).or_default();
    }
    out
}

/// Applies an aggregation's updates to `view` (the last value per group); an aggregation
/// never deletes.
fn fold<V: std::fmt::Debug>(
    view: &mut BTreeMap<String, V>,
    updates: Vec<Change<V>>,
) -> Result<(), TestCaseError> {
    for (k, v) in updates {
        let Some(v) = v else {
            return Err(TestCaseError::fail(format!("an aggregation deleted {k}")));
        };
        view.insert(k, v);
    }
    Ok(())
}

#[test]
fn a_delete_of_an_absent_key_emits_nothing_and_a_group_that_loses_its_last_row_counts_zero() {
    let mut d = driver(|b| {
        let t: Table<String, i64> = b.table("t", "rows");
        t.to_stream().to("out");
        t.group_by(|_, v| (residue(*v), *v))
            .count("counts")
            .to_stream()
            .to("counts-out");
    });
    let input: Vec<Update> = [
        ("a", Some(1)),
        ("x", None),
        ("a", Some(4)), // r1 -> r1: subtract then add
        ("b", Some(2)),
        ("a", Some(3)), // r1 -> r0: r1 loses its last row
        ("a", None),
        ("a", None),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    pipe(&mut d, "t", &input);
    let s = |k: &str| k.to_string();
    assert_eq!(
        changes(&mut d, "out", BigEndianSerde),
        vec![
            (s("a"), Some(1i64)),
            (s("a"), Some(4)),
            (s("b"), Some(2)),
            (s("a"), Some(3)),
            (s("a"), None),
        ]
    );
    assert_eq!(
        changes(&mut d, "counts-out", BigEndianSerde),
        vec![
            (s("r1"), Some(1u64)),
            (s("r1"), Some(0)),
            (s("r1"), Some(1)),
            (s("r2"), Some(1)),
            (s("r1"), Some(0)),
            (s("r0"), Some(1)),
            (s("r0"), Some(0)),
        ]
    );
    let want: BTreeMap<String, u64> = [(s("r0"), 0), (s("r1"), 0), (s("r2"), 1)].into();
    assert_eq!(store::<u64>(&mut d, "counts"), want);
    assert_eq!(store::<i64>(&mut d, "rows"), [(s("b"), 2)].into());
}

#[test]
fn a_table_operator_on_a_new_key_repartitions_only_where_it_must() {
    let b = StreamBuilder::new();
    let t: Table<String, i64> = b.table("t", "rows");
    t.filter(|_, v| *v > 0).map_values(|_, v| v * 2);
    t.group_by(|_, v| (residue(*v), *v)).count("counts");
    let s = b.stream::<String, i64>("s");
    s.to_table("same-key");
    s.select_key(|_, v| v.to_string()).to_table("new-key");
    let topology = b.build().expect("topology");
    let internal: Vec<String> = topology.internal_topics().into_iter().collect();
    assert_eq!(
        internal,
        vec![
            "counts-repartition".to_string(),
            "new-key-repartition".to_string()
        ]
    );
}
