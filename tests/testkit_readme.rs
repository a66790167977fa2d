//! The README's testkit example, as a test: a DSL topology (running balance per account)
//! checked two ways: its semantics with the `TopologyTestDriver`, and its delivery
//! guarantee with the `FaultHarness`, which runs it on a real broker through crashes at
//! every step of the commit, zombies and rebalances, and compares output, store and offsets
//! with a model written as a plain function. Keep it in step with README.md.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice::dsl::StreamBuilder;
use sluice::runtime::config::CrashPoint;
use sluice::runtime::serde::{BigEndianSerde, StringSerde};
use sluice::runtime::testkit::{
    Expected, Fault, FaultHarness, Step, TestInputTopic, TestOutputTopic, TopologyTestDriver,
};
use sluice::runtime::topology::Topology;

/// The topology under test: the running balance of each account.
fn balances() -> Topology {
    let b = StreamBuilder::new();
    b.stream::<String, i64>("deposits")
        .group_by_key()
        .aggregate("balances", || 0i64, |_, amount, balance| balance + amount)
        .to_value_stream()
        .to("balances-out");
    b.build().expect("a valid topology")
}

/// The model: each deposit's effect once, in order, per account.
fn model(deposits: &[(String, i64)]) -> Expected<String, i64> {
    let mut outputs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut store: BTreeMap<String, i64> = BTreeMap::new();
    for (account, amount) in deposits {
        let balance = store.entry(account.clone()).or_default();
        *balance += amount;
        outputs.entry(account.clone()).or_default().push(*balance);
    }
    Expected { outputs, store }
}

/// The README's quickstart topology: it builds, and counts clicks per key and minute.
#[test]
fn the_quickstart_counts_clicks_per_minute() {
    use sluice::dsl::TimeWindows;
    use std::time::Duration;
    let b = StreamBuilder::new();
    b.stream::<String, String>("clicks")
        .filter(|_, page| !page.starts_with("/health"))
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_secs(60)).grace(Duration::from_secs(5)))
        .count("clicks-per-minute-store")
        .to_value_stream()
        .map(|w, n| (format!("{}@{}", w.key, w.start), n))
        .to("clicks-per-minute");
    let mut driver = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
    let clicks = TestInputTopic::new("clicks", StringSerde, StringSerde);
    for (user, page, at) in [
        ("ann", "/a", 1_000),
        ("ann", "/health", 2_000),
        ("ann", "/b", 61_000),
    ] {
        driver
            .pipe_input(&clicks, user.into(), page.into(), at)
            .expect("pipe");
    }
    let out = driver
        .read_output(&TestOutputTopic::new(
            "clicks-per-minute",
            StringSerde,
            BigEndianSerde,
        ))
        .expect("read");
    let got: Vec<(String, u64)> = out.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(got, [("ann@0".into(), 1), ("ann@60000".into(), 1)]);
}

#[test]
fn the_driver_shows_the_semantics() {
    let mut driver = TopologyTestDriver::new(balances()).expect("driver");
    let input = TestInputTopic::new("deposits", StringSerde, BigEndianSerde);
    for (i, (account, amount)) in [("alice", 10i64), ("bob", 5), ("alice", -3)]
        .into_iter()
        .enumerate()
    {
        driver
            .pipe_input(&input, account.to_string(), amount, i as i64)
            .expect("pipe");
    }
    let out = driver
        .read_output(&TestOutputTopic::new(
            "balances-out",
            StringSerde,
            BigEndianSerde,
        ))
        .expect("read");
    let got: Vec<(String, i64)> = out.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(
        got,
        [("alice".into(), 10), ("bob".into(), 5), ("alice".into(), 7)]
    );
}

fn step() -> impl Strategy<Value = Step<String, i64>> {
    let deposit = ("[a-d]", -50i64..50);
    prop_oneof![
        3 => prop::collection::vec(deposit, 1..10).prop_map(Step::Produce),
        2 => prop::sample::select(CrashPoint::ALL.to_vec()).prop_map(|p| Step::Fault(Fault::Crash(p))),
        1 => Just(Step::Fault(Fault::Zombie)),
        1 => Just(Step::Fault(Fault::SecondJoins)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice::runtime::testkit::proptest_cases(8)))]

    #[test]
    fn every_deposit_counts_exactly_once_through_crashes(scenario in prop::collection::vec(step(), 1..5)) {
        let harness = FaultHarness::new(
            "balances",
            balances(),
            ("deposits", StringSerde, BigEndianSerde),
            ("balances-out", StringSerde, BigEndianSerde),
            2,
        )
        .with_store("balances", StringSerde, BigEndianSerde);
        let mut steps = scenario;
        steps.push(Step::Produce(vec![("a".into(), 1)]));
        if let Err(failure) = harness.run(&steps, model) {
            prop_assert!(false, "{failure}");
        }
    }
}
