//! The fault-injection harness on a real cluster (`FaultHarness::run_on`): a stateful
//! exactly-once app (a running balance per account, with a changelogged store) runs on
//! Apache Kafka 4.4 and on `sluice broker` through the faults real processes show: an
//! instance dying at each step of the commit protocol and in the middle of a restore (then
//! restarting from its state directory), a second instance joining, crashing and leaving,
//! and a zombie (it stops serving its membership until the group has given its tasks away,
//! then carries on). Output per key, the store (in RocksDB and in its changelog) and the
//! committed offsets must equal the model's: each deposit's effect exactly once.
//!
//! Kafka refuses sessions under 6 s, so its zombie takes a 6 s poll interval to lose its
//! tasks; `AfterPrepareCommit` cannot stop a remote commit halfway, so there the instance
//! dies just after the commit. Every run gets its own topics and group
//! (`FaultHarness::new_per_run`). Every crash point runs on Kafka (the embedded log's runs
//! are `runtime/tests/eos_harness.rs`); `sluice broker` gets the rebalances and the zombie
//! (its transactions are proven by the kill test and the client suites). The property over random scenarios runs
//! `PROPTEST_CASES` cases (default 2, each about half a minute on Kafka).

#[path = "../kafka/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use sluice::dsl::StreamBuilder;
use sluice::log::cluster::Cluster;
use sluice::log::testing::proptest_cases;
use sluice::runtime::AppConfig;
use sluice::runtime::config::CrashPoint;
use sluice::runtime::serde::{BigEndianSerde, StringSerde};
use sluice::runtime::testkit::{Expected, Fault, FaultHarness, Step};
use sluice::runtime::topology::Topology;
use sluice_kafka::{KafkaCluster, KafkaConfig};

type Harness = FaultHarness<String, i64, String, i64>;

/// The app under test: each account's running balance, every new one to `output`.
fn balances(input: &str, output: &str) -> Topology {
    let b = StreamBuilder::new();
    b.stream::<String, i64>(input)
        .group_by_key()
        .aggregate("balances", || 0i64, |_, amount, balance| balance + amount)
        .to_value_stream()
        .to(output);
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

/// Settings a Kafka cluster accepts: 6 s sessions (Kafka's minimum) and as short a poll
/// interval, so a zombie loses its tasks in seconds.
fn harness() -> Harness {
    let config = AppConfig::default()
        .with_commit_interval(Duration::from_millis(50))
        .with_heartbeat_interval(Duration::from_millis(50))
        .with_session_timeout(Duration::from_secs(6))
        .with_max_poll_interval(Duration::from_secs(6))
        .with_transaction_timeout(Duration::from_secs(10))
        .with_restore_batch(1)
        .with_max_poll_records(20);
    FaultHarness::new_per_run(
        "harness-balances",
        balances,
        ("deposits", StringSerde, BigEndianSerde),
        ("balances-out", StringSerde, BigEndianSerde),
        2,
    )
    .with_store("balances", StringSerde, BigEndianSerde)
    .with_config(config)
    .with_crash_wait(Duration::from_secs(10))
}

fn batch(from: i64) -> Vec<(String, i64)> {
    (from..from + 8)
        .map(|i| (format!("acct-{}", i % 3), i))
        .collect()
}

/// Every crash point, each in its own run: input, the crash (and restart), more input.
fn every_crash_point<C: Cluster>(cluster: &C) {
    for point in CrashPoint::ALL {
        let steps = vec![
            Step::Produce(batch(0)),
            Step::Fault(Fault::Crash(point)),
            Step::Produce(batch(100)),
        ];
        let history = match harness().run_on(cluster, &steps, model) {
            Ok(history) => history,
            Err(failure) => panic!("{point:?}: {failure}"),
        };
        assert!(
            history
                .iter()
                .any(|h| h.contains(&format!("died at {point:?}"))),
            "{point:?} was never reached:\n{}",
            history.join("\n")
        );
    }
}

/// A second instance joins, crashes mid-commit and stays down, a new second joins, the
/// primary turns zombie, and the second leaves; input between every step.
fn rebalances_and_a_zombie<C: Cluster>(cluster: &C) {
    let steps = vec![
        Step::Produce(batch(0)),
        Step::Fault(Fault::SecondJoins),
        Step::Produce(batch(100)),
        Step::Fault(Fault::SecondCrashes(CrashPoint::AfterSendOffsets)),
        Step::Produce(batch(200)),
        Step::Fault(Fault::Zombie),
        Step::Produce(batch(300)),
        Step::Fault(Fault::SecondLeaves),
        Step::Produce(batch(400)),
    ];
    let history = harness()
        .run_on(cluster, &steps, model)
        .unwrap_or_else(|failure| panic!("{failure}"));
    for event in [
        "second joined",
        "died at AfterSendOffsets",
        "primary is a zombie",
        "second left",
    ] {
        assert!(
            history.iter().any(|h| h.contains(event)),
            "no `{event}` in:\n{}",
            history.join("\n")
        );
    }
}

fn apache_kafka() -> KafkaCluster {
    KafkaCluster::connect(KafkaConfig::new(support::kafka_bootstrap())).expect("connect")
}

#[test]
fn every_crash_point_on_apache_kafka() {
    every_crash_point(&apache_kafka());
}

#[test]
fn rebalances_and_a_zombie_on_apache_kafka() {
    rebalances_and_a_zombie(&apache_kafka());
}

#[test]
fn rebalances_and_a_zombie_on_sluice_broker() {
    let sluice = support::SluiceBroker::start();
    let cluster = KafkaCluster::connect(KafkaConfig::new(&sluice.bootstrap)).expect("connect");
    rebalances_and_a_zombie(&cluster);
}

fn step() -> impl Strategy<Value = Step<String, i64>> {
    let record = ("acct-[a-d]", -100i64..100).prop_map(|(k, v)| (k, v));
    let point = prop::sample::select(CrashPoint::ALL.to_vec());
    prop_oneof![
        4 => prop::collection::vec(record, 1..10).prop_map(Step::Produce),
        2 => point.clone().prop_map(|p| Step::Fault(Fault::Crash(p))),
        1 => Just(Step::Fault(Fault::SecondJoins)),
        1 => Just(Step::Fault(Fault::SecondLeaves)),
        1 => point.prop_map(|p| Step::Fault(Fault::SecondCrashes(p))),
        1 => Just(Step::Fault(Fault::Zombie)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: proptest_cases(2),
        max_shrink_iters: 4,
        ..ProptestConfig::default()
    })]

    #[test]
    fn exactly_once_through_random_faults_on_apache_kafka(
        scenario in prop::collection::vec(step(), 1..5),
    ) {
        let mut steps = vec![Step::Produce(batch(0))];
        steps.extend(scenario);
        steps.push(Step::Produce(batch(1000)));
        if let Err(failure) = harness().run_on(&apache_kafka(), &steps, model) {
            prop_assert!(false, "{failure}");
        }
    }
}
