//! Grouping and aggregation through the TopologyTestDriver against a fold over the input:
//! count, reduce and aggregate per key, with and without a repartition, the table's update
//! stream and its store; the word count of docs/architecture.md §4.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, StringSerde, UnitSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{Stream, StreamBuilder};

type Rec = (String, i64);

fn driver(shape: impl FnOnce(Stream<String, i64>)) -> TopologyTestDriver {
    let b = StreamBuilder::new();
    shape(b.stream::<String, i64>("in"));
    TopologyTestDriver::new(b.build().expect("topology")).expect("driver")
}

fn pipe(driver: &mut TopologyTestDriver, input: &[Rec]) {
    let topic = TestInputTopic::new("in", StringSerde, BigEndianSerde);
    for (i, (k, v)) in input.iter().enumerate() {
        driver
            .pipe_input(&topic, k.clone(), *v, i as i64)
            .expect("pipe");
    }
}

fn read<V: 'static>(
    driver: &mut TopologyTestDriver,
    topic: &str,
    values: impl sluice_dsl::runtime::serde::Serde<V> + 'static,
) -> Vec<(String, V)> {
    let out = TestOutputTopic::new(topic, StringSerde, values);
    driver
        .read_output(&out)
        .expect("read")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

/// The reference: each record's key, then the fold of that key's values so far.
fn running<A: Clone>(
    input: &[Rec],
    key: impl Fn(&Rec) -> String,
    init: A,
    fold: impl Fn(A, i64) -> A,
) -> (Vec<(String, A)>, BTreeMap<String, A>) {
    let mut state: BTreeMap<String, A> = BTreeMap::new();
    let mut out = Vec::new();
    for r in input {
        let k = key(r);
        let next = fold(state.get(&k).cloned().unwrap_or_else(|| init.clone()), r.1);
        state.insert(k.clone(), next.clone());
        out.push((k, next));
    }
    (out, state)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(48)))]

    #[test]
    fn count_reduce_and_aggregate_equal_a_fold_over_the_input(
        input in prop::collection::vec(("[a-e]", -100i64..100), 0..40),
    ) {
        let mut d = driver(|s| {
            let grouped = s.group_by_key();
            grouped.count("counts").to_stream().to("counts-out");
            grouped.reduce("maxima", i64::max).to_stream().to("max-out");
            grouped
                .aggregate("sums", || 0i64, |_, v, acc| acc + v)
                .to_stream()
                .to("sums-out");
        });
        pipe(&mut d, &input);
        let key = |r: &Rec| r.0.clone();
        let (counts, final_counts) = running(&input, key, 0u64, |n, _| n + 1);
        prop_assert_eq!(read::<u64>(&mut d, "counts-out", BigEndianSerde), counts);
        let (maxima, _) = running(&input, key, i64::MIN, i64::max);
        prop_assert_eq!(read::<i64>(&mut d, "max-out", BigEndianSerde), maxima);
        let (sums, final_sums) = running(&input, key, 0i64, |a, v| a + v);
        prop_assert_eq!(read::<i64>(&mut d, "sums-out", BigEndianSerde), sums);
        let stored: BTreeMap<String, u64> = d.kv_store::<String, u64>("counts").expect("store").all().expect("all").collect::<Result<_, _>>().expect("read");
        prop_assert_eq!(stored, final_counts);
        let stored: BTreeMap<String, i64> = d.kv_store::<String, i64>("sums").expect("store").all().expect("all").collect::<Result<_, _>>().expect("read");
        prop_assert_eq!(stored, final_sums);
    }

    #[test]
    fn group_by_a_new_key_repartitions_and_aggregates_by_it(
        input in prop::collection::vec(("[a-e]", -100i64..100), 0..40),
    ) {
        let mut d = driver(|s| {
            s.group_by(|_, v| if *v >= 0 { "pos".to_string() } else { "neg".to_string() })
                .aggregate("sign-sums", || 0i64, |_, v, acc| acc + v)
                .to_stream()
                .to("out");
        });
        pipe(&mut d, &input);
        let sign = |r: &Rec| if r.1 >= 0 { "pos".to_string() } else { "neg".to_string() };
        let (want, _) = running(&input, sign, 0i64, |a, v| a + v);
        prop_assert_eq!(read::<i64>(&mut d, "out", BigEndianSerde), want);
    }
}

#[test]
fn a_group_by_adds_a_repartition_topic_and_group_by_key_does_not() {
    let b = StreamBuilder::new();
    let s = b.stream::<String, i64>("in");
    s.group_by_key().count("by-key");
    s.group_by(|_, v| v.to_string()).count("by-value");
    s.map_values(|v| v * 2)
        .group_by_key()
        .count("after-map-values");
    let topology = b.build().expect("topology");
    let internal: Vec<String> = topology.internal_topics().into_iter().collect();
    assert_eq!(internal, vec!["by-value-repartition".to_string()]);
}

#[test]
fn the_word_count_of_the_design() {
    let b = StreamBuilder::new();
    b.stream::<(), String>("text-input")
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count("word-counts")
        .to_stream()
        .to("word-counts-output");
    let mut d = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
    let lines = TestInputTopic::new("text-input", UnitSerde, StringSerde);
    for line in ["the cat", "The dog", "a cat and THE dog"] {
        d.pipe_input(&lines, (), line.to_string(), 0).expect("pipe");
    }
    let counts = read::<u64>(&mut d, "word-counts-output", BigEndianSerde);
    let last: BTreeMap<String, u64> = counts.into_iter().collect();
    let want: BTreeMap<String, u64> = [("a", 1), ("and", 1), ("cat", 2), ("dog", 2), ("the", 3)]
        .iter()
        .map(|(w, n)| (w.to_string(), *n))
        .collect();
    assert_eq!(last, want);
}
