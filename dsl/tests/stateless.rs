//! The stateless operators through the TopologyTestDriver, each against a reference written
//! with plain iterators; a property runs random input through a chain of them.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{Stream, StreamBuilder};

type Rec = (String, i64);

/// Builds a topology reading `in` (String -> i64) with `shape`, pipes `input` and returns
/// what reached each of `outputs` (String -> i64), as (key, value) in order.
fn run(shape: impl FnOnce(Stream<String, i64>), input: &[Rec], outputs: &[&str]) -> Vec<Vec<Rec>> {
    let b = StreamBuilder::new();
    shape(b.stream::<String, i64>("in"));
    let mut driver = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
    let topic = TestInputTopic::new("in", StringSerde, BigEndianSerde);
    for (i, (k, v)) in input.iter().enumerate() {
        driver
            .pipe_input(&topic, k.clone(), *v, i as i64)
            .expect("pipe");
    }
    outputs
        .iter()
        .map(|name| {
            let out = TestOutputTopic::<String, i64>::new(name, StringSerde, BigEndianSerde);
            driver
                .read_output(&out)
                .expect("read")
                .into_iter()
                .map(|r| (r.key, r.value))
                .collect()
        })
        .collect()
}

fn input() -> Vec<Rec> {
    [
        ("a", 1),
        ("b", -2),
        ("a", 3),
        ("c", 40),
        ("b", 5),
        ("d", -60),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

#[test]
fn filter_and_filter_not_split_the_input_between_them() {
    let out = run(
        |s| {
            s.filter(|_, v| *v > 0).to("kept");
            s.filter_not(|_, v| *v > 0).to("dropped");
        },
        &input(),
        &["kept", "dropped"],
    );
    let want: Vec<Rec> = input().into_iter().filter(|(_, v)| *v > 0).collect();
    let rest: Vec<Rec> = input().into_iter().filter(|(_, v)| *v <= 0).collect();
    assert_eq!(out, vec![want, rest]);
}

#[test]
fn map_map_values_select_key_and_flat_maps_transform_each_record() {
    let out = run(
        |s| {
            s.map(|k, v| (format!("{k}{k}"), v * 2)).to("map");
            s.map_values(|v| v + 100).to("map-values");
            s.select_key(|k, v| format!("{k}:{}", v.signum()))
                .to("select-key");
            s.flat_map(|k, v| (0..v.rem_euclid(3)).map(move |i| (format!("{k}{i}"), v)))
                .to("flat-map");
            s.flat_map_values(|v| vec![v, -v]).to("flat-map-values");
        },
        &input(),
        &[
            "map",
            "map-values",
            "select-key",
            "flat-map",
            "flat-map-values",
        ],
    );
    let i = input();
    assert_eq!(
        out[0],
        i.iter()
            .map(|(k, v)| (format!("{k}{k}"), v * 2))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out[1],
        i.iter()
            .map(|(k, v)| (k.clone(), v + 100))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out[2],
        i.iter()
            .map(|(k, v)| (format!("{k}:{}", v.signum()), *v))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out[3],
        i.iter()
            .flat_map(|(k, v)| (0..v.rem_euclid(3)).map(move |n| (format!("{k}{n}"), *v)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out[4],
        i.iter()
            .flat_map(|(k, v)| [(k.clone(), *v), (k.clone(), -v)])
            .collect::<Vec<_>>()
    );
}

#[test]
fn peek_and_foreach_see_every_record_and_merge_joins_two_streams() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (peeked, each) = (seen.clone(), seen.clone());
    let out = run(
        move |s| {
            let positives = s.filter(|_, v| *v > 0);
            let negatives = s.filter(|_, v| *v < 0).map_values(|v| v * 10);
            positives
                .merge(&negatives)
                .peek(move |k, v| peeked.lock().expect("lock").push(format!("peek {k}={v}")))
                .to("merged");
            s.foreach(move |k, v| each.lock().expect("lock").push(format!("each {k}={v}")));
        },
        &input(),
        &["merged"],
    );
    let want: Vec<Rec> = input()
        .into_iter()
        .map(|(k, v)| (k, if v < 0 { v * 10 } else { v }))
        .collect();
    assert_eq!(out[0], want);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.iter().filter(|s| s.starts_with("peek")).count(), 6);
    assert_eq!(seen.iter().filter(|s| s.starts_with("each")).count(), 6);
}

#[test]
fn split_sends_each_record_to_its_first_matching_branch() {
    let out = run(
        |s| {
            let branches = s
                .split()
                .branch("big", |_, v| v.abs() >= 10)
                .branch("a", |k, _| k == "a")
                .default_branch("rest");
            for (name, stream) in branches {
                stream.to(&name);
            }
        },
        &input(),
        &["big", "a", "rest"],
    );
    let i = input();
    let big: Vec<Rec> = i.iter().filter(|(_, v)| v.abs() >= 10).cloned().collect();
    let a: Vec<Rec> = i
        .iter()
        .filter(|(k, v)| v.abs() < 10 && k == "a")
        .cloned()
        .collect();
    let rest: Vec<Rec> = i
        .iter()
        .filter(|(k, v)| v.abs() < 10 && k != "a")
        .cloned()
        .collect();
    assert_eq!(out, vec![big, a, rest]);
}

#[test]
fn repartition_and_to_with_partitioner_route_by_key() {
    let b = StreamBuilder::new();
    let s = b.stream::<String, i64>("in");
    s.select_key(|_, v| v.to_string())
        .repartition("by-value")
        .to("out");
    s.to_with_partitioner("fixed", |_, _, partitions| partitions - 1);
    let topology = b.build().expect("topology");
    assert_eq!(topology.sub_topologies().len(), 2);
    assert!(topology.internal_topics().contains("by-value"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(64)))]

    #[test]
    fn a_chain_of_operators_equals_its_iterator_reference(
        records in prop::collection::vec(("[a-d]", -50i64..50), 0..40),
        threshold in -20i64..20,
        fan in 0i64..3,
    ) {
        let input: Vec<Rec> = records;
        let out = run(
            move |s| {
                s.filter(move |_, v| *v >= threshold)
                    .map_values(|v| v * 3)
                    .flat_map_values(move |v| (0..fan).map(move |i| v + i))
                    .select_key(|k, v| format!("{k}{}", v.rem_euclid(2)))
                    .to("out");
            },
            &input,
            &["out"],
        );
        let want: Vec<Rec> = input
            .iter()
            .filter(|(_, v)| *v >= threshold)
            .map(|(k, v)| (k.clone(), v * 3))
            .flat_map(|(k, v)| (0..fan).map(move |i| (k.clone(), v + i)))
            .map(|(k, v)| (format!("{k}{}", v.rem_euclid(2)), v))
            .collect();
        prop_assert_eq!(&out[0], &want);
    }
}
