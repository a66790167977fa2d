//! Exactly-once end to end, as a property (docs/architecture.md §3.1, §3.3): a stateful topology (count
//! and sum by key, with output) runs on a real broker through random input, crashes at
//! every step of the commit protocol and in the middle of restores, zombies and a second
//! instance joining, leaving and crashing, with one or two stream threads per instance.
//! Output (per key, in order), the store (in RocksDB and in its changelog) and the
//! committed offsets must equal the model's: each input's effect exactly once.
//! `PROPTEST_CASES` sets the case count (CI: 128).
//!
//! The last test shows the checker can fail: the same harness, at-least-once, with a crash
//! between the output flush and the offset commit, reports duplicates.

mod common;

use std::collections::BTreeMap;

use common::apps::{Agg, count_sum};
use proptest::prelude::*;
use sluice_runtime::config::CrashPoint;
use sluice_runtime::serde::{BigEndianSerde, BincodeSerde, StringSerde};
use sluice_runtime::testkit::{Anomaly, Expected, Fault, FaultHarness, Step};
use sluice_runtime::{AppConfig, ProcessingGuarantee};

type Harness = FaultHarness<String, i64, String, Agg>;

fn harness() -> Harness {
    FaultHarness::new(
        "agg",
        count_sum("in", "out"),
        ("in", StringSerde, BigEndianSerde),
        ("out", StringSerde, BincodeSerde::<Agg>::default()),
        3,
    )
    .with_store("agg", StringSerde, BincodeSerde::<Agg>::default())
}

/// The model: per key, the running count and sum after each input.
fn model(inputs: &[(String, i64)]) -> Expected<String, Agg> {
    let mut outputs: BTreeMap<String, Vec<Agg>> = BTreeMap::new();
    let mut store: BTreeMap<String, Agg> = BTreeMap::new();
    for (key, value) in inputs {
        let agg = store.entry(key.clone()).or_default();
        agg.count += 1;
        agg.sum += value;
        outputs.entry(key.clone()).or_default().push(*agg);
    }
    Expected { outputs, store }
}

fn crash_point() -> impl Strategy<Value = CrashPoint> {
    prop::sample::select(CrashPoint::ALL.to_vec())
}

fn step() -> impl Strategy<Value = Step<String, i64>> {
    let record = ("[a-f]", -100i64..100).prop_map(|(k, v)| (k, v));
    prop_oneof![
        4 => prop::collection::vec(record, 1..12).prop_map(Step::Produce),
        3 => crash_point().prop_map(|p| Step::Fault(Fault::Crash(p))),
        1 => Just(Step::Fault(Fault::SecondJoins)),
        1 => Just(Step::Fault(Fault::SecondLeaves)),
        1 => crash_point().prop_map(|p| Step::Fault(Fault::SecondCrashes(p))),
        1 => Just(Step::Fault(Fault::Zombie)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: common::cases(128),
        max_shrink_iters: 32,
        ..ProptestConfig::default()
    })]

    #[test]
    fn output_state_and_offsets_are_exactly_once_through_faults(
        scenario in prop::collection::vec(step(), 2..7),
        threads in 1usize..=2,
    ) {
        // Input before and after the faults, so crash points have work to stop in.
        let mut steps = vec![Step::Produce(vec![("a".to_string(), 1), ("b".to_string(), 2)])];
        steps.extend(scenario);
        steps.push(Step::Produce(vec![("a".to_string(), 3), ("c".to_string(), 4)]));
        if let Err(failure) = harness().with_threads(threads).run(&steps, model) {
            prop_assert!(false, "{failure}");
        }
    }
}

#[test]
fn every_crash_point_is_survived_exactly_once() {
    for point in CrashPoint::ALL {
        let batch = |from: i64| -> Vec<(String, i64)> {
            (from..from + 8)
                .map(|i| (format!("k{}", i % 3), i))
                .collect()
        };
        // MidRestore: the harness first dies after a commit and before its RocksDB apply,
        // so the restart has a restore to die in.
        let mut steps = vec![Step::Produce(batch(0)), Step::Fault(Fault::Crash(point))];
        steps.push(Step::Produce(batch(100)));
        let history = match harness().run(&steps, model) {
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

#[test]
fn the_checker_reports_duplicates_of_at_least_once_after_a_crash() {
    let harness = harness().with_config(
        AppConfig::default()
            .with_processing_guarantee(ProcessingGuarantee::AtLeastOnce)
            .with_commit_interval(std::time::Duration::from_millis(20))
            .with_session_timeout(std::time::Duration::from_millis(400))
            .with_heartbeat_interval(std::time::Duration::from_millis(20)),
    );
    let records: Vec<(String, i64)> = (0..10).map(|i| (format!("k{}", i % 2), i)).collect();
    let steps = vec![
        Step::Produce(records),
        // Output flushed, state not applied, offsets not committed: the restart redoes it.
        Step::Fault(Fault::Crash(CrashPoint::AfterFlush)),
    ];
    let failure = harness
        .run(&steps, model)
        .expect_err("at-least-once duplicates after a crash");
    assert!(
        failure
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::Duplicate { .. })),
        "{failure}"
    );
}
