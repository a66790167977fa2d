//! Joins with tables through the TopologyTestDriver against references that replay the
//! same input: stream-table joins (the row as of the record) and table-table joins (after
//! each update of either side the key's result is the join of the two current rows; a key
//! that stops matching is deleted downstream). Stream-stream joins: `stream_joins.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, OptionSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{StreamBuilder, Table};

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

fn stream_topic(topic: &str) -> TestInputTopic<String, i64> {
    TestInputTopic::new(topic, StringSerde, BigEndianSerde)
}

fn read_strings(d: &mut TopologyTestDriver, topic: &str) -> Vec<(String, String)> {
    let out = TestOutputTopic::new(topic, StringSerde, StringSerde);
    let records = d.read_output(&out).expect("read");
    records.into_iter().map(|r| (r.key, r.value)).collect()
}

/// A table's changes: the key and its new value, `None` (a null value) for a delete.
fn read_changes(d: &mut TopologyTestDriver, topic: &str) -> Vec<(String, Option<String>)> {
    let out = TestOutputTopic::new(
        topic,
        StringSerde,
        OptionSerde::<String>(Arc::new(StringSerde)),
    );
    let records = d.read_output(&out).expect("read");
    records.into_iter().map(|r| (r.key, r.value)).collect()
}

/// A step of a stream-table join's input: a stream record, or a table update (`None`:
/// delete).
#[derive(Debug, Clone)]
enum StreamOrTable {
    Stream(String, i64),
    Table(String, Option<i64>),
}

fn stream_or_table() -> impl Strategy<Value = StreamOrTable> {
    prop_oneof![
        ("[a-c]", -5i64..5).prop_map(|(k, v)| StreamOrTable::Stream(k, v)),
        ("[a-c]", prop::option::weighted(0.7, -5i64..5))
            .prop_map(|(k, v)| StreamOrTable::Table(k, v)),
    ]
}

fn table_join_values(l: Option<&i64>, r: Option<&i64>) -> [Option<String>; 3] {
    [
        l.zip(r).map(|(l, r)| format!("{l}+{r}")),
        l.map(|l| format!("{l}+{r:?}")),
        (l.is_some() || r.is_some()).then(|| format!("{l:?}+{r:?}")),
    ]
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn a_stream_record_joins_the_row_as_of_when_it_is_processed(
        ops in prop::collection::vec(stream_or_table(), 0..50),
    ) {
        let mut d = driver(|b| {
            let t: Table<String, i64> = b.table("t", "rows");
            let s = b.stream::<String, i64>("s");
            s.join_table(&t, |k, v, row| format!("{k}:{v}/{row}")).to("inner");
            s.left_join_table(&t, |k, v, row| format!("{k}:{v}/{row:?}")).to("left");
            // A stream whose key changed is repartitioned before the join.
            b.stream::<String, i64>("upper")
                .select_key(|k, _| k.to_lowercase())
                .join_table(&t, |k, v, row| format!("{k}:{v}/{row}"))
                .to("rekeyed");
            // A lazy derived table: its rows are those that pass, read through `rows`.
            let positive = t.filter(|_, v| *v > 0);
            s.left_join_table(&positive, |_, v, row| format!("{v}/{row:?}")).to("positive");
        });
        let (s, upper, t) = (stream_topic("s"), stream_topic("upper"), updates("t"));
        let mut rows: BTreeMap<String, i64> = BTreeMap::new();
        let (mut inner, mut left, mut positive) = (Vec::new(), Vec::new(), Vec::new());
        for (i, op) in ops.iter().enumerate() {
            match op {
                StreamOrTable::Stream(k, v) => {
                    d.pipe_input(&s, k.clone(), *v, i as i64).expect("pipe");
                    d.pipe_input(&upper, k.to_uppercase(), *v, i as i64).expect("pipe");
                    let row = rows.get(k);
                    inner.extend(row.map(|row| (k.clone(), format!("{k}:{v}/{row}"))));
                    left.push((k.clone(), format!("{k}:{v}/{row:?}")));
                    let row = row.filter(|row| **row > 0);
                    positive.push((k.clone(), format!("{v}/{row:?}")));
                }
                StreamOrTable::Table(k, v) => {
                    d.pipe_input(&t, k.clone(), *v, i as i64).expect("pipe");
                    match v {
                        Some(v) => rows.insert(k.clone(), *v),
                        None => rows.remove(k),
                    };
                }
            }
        }
        prop_assert_eq!(read_strings(&mut d, "inner"), inner.clone());
        prop_assert_eq!(read_strings(&mut d, "left"), left);
        prop_assert_eq!(read_strings(&mut d, "rekeyed"), inner);
        prop_assert_eq!(read_strings(&mut d, "positive"), positive);
    }

    #[test]
    fn a_table_join_result_is_the_join_of_the_current_rows_after_every_update(
        input in prop::collection::vec(
            (any::<bool>(), "[a-d]", prop::option::weighted(0.7, -5i64..5)), 0..40),
    ) {
        let mut d = driver(|b| {
            let l: Table<String, i64> = b.table("l", "left-rows");
            let r: Table<String, i64> = b.table("r", "right-rows");
            l.join("inner", &r, |_, l, r| format!("{l}+{r}")).to_stream().to("inner-out");
            l.left_join("left", &r, |_, l, r| format!("{l}+{r:?}")).to_stream().to("left-out");
            l.outer_join("outer", &r, |_, l, r| format!("{l:?}+{r:?}")).to_stream().to("outer-out");
        });
        let (lt, rt) = (updates("l"), updates("r"));
        let mut sides: [BTreeMap<String, i64>; 2] = Default::default();
        let mut results: [BTreeMap<String, String>; 3] = Default::default();
        let mut want: [Vec<(String, Option<String>)>; 3] = Default::default();
        for (i, (is_left, k, v)) in input.iter().enumerate() {
            d.pipe_input(if *is_left { &lt } else { &rt }, k.clone(), *v, i as i64).expect("pipe");
            let side = &mut sides[usize::from(!*is_left)];
            let changed = match v {
                Some(v) => {
                    side.insert(k.clone(), *v);
                    true
                }
                None => side.remove(k).is_some(),
            };
            if !changed {
                continue; // a delete of an absent row changes nothing downstream
            }
            let values = table_join_values(sides[0].get(k), sides[1].get(k));
            for (j, value) in values.into_iter().enumerate() {
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
        for (j, name) in ["inner", "left", "outer"].into_iter().enumerate() {
            prop_assert_eq!(read_changes(&mut d, &format!("{name}-out")), want[j].clone(), "{}", name);
            let stored: BTreeMap<String, String> =
                d.kv_store::<String, String>(name).expect("store").all().expect("all").collect::<Result<_, _>>().expect("read");
            prop_assert_eq!(&stored, &results[j], "{} store", name);
            // And the reference itself is the join of the final tables, from scratch.
            let keys: BTreeSet<&String> = sides[0].keys().chain(sides[1].keys()).collect();
            let scratch: BTreeMap<String, String> = keys
                .into_iter()
                .filter_map(|k| {
                    let value = table_join_values(sides[0].get(k), sides[1].get(k))[j].clone();
                    value.map(|v| (k.clone(), v))
                })
                .collect();
            prop_assert_eq!(stored, scratch, "{} from scratch", name);
        }
    }
}
