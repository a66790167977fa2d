//! Transactions, consumer groups and read_committed under faults, checked Jepsen-style.
//!
//! A proptest workload interleaves transactional producers (raw broker calls, so requests
//! can be delayed and duplicated, and the client `Producer`), an idempotent
//! non-transactional producer, read_committed and read_uncommitted readers and group members,
//! with injected faults: broker crashes that lose what was not fsynced (power loss) or
//! nothing (kill -9), producers killed mid-transaction, zombies on the old epoch that keep
//! sending, delayed and duplicated produce and end_txn requests, transaction timeouts, and
//! group members that die. Everything is recorded in a history that `checker::check`
//! searches for anomalies; a failure prints the seed (proptest's shrunken case) and the
//! history. `PROPTEST_CASES` raises the case count for a soak.

mod checker;
mod jepsen;

use checker::{FinalState, History, check, render};
use jepsen::{Step, Workload, step};
use proptest::prelude::*;

fn cases() -> u32 {
    sluice::log::testing::proptest_cases(256)
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut workload = Workload::start();
    for s in &steps {
        workload.apply(s);
    }
    let (history, end, violations): (History, FinalState, Vec<String>) = workload.finish();
    let mut anomalies: Vec<String> = check(&history, &end)
        .iter()
        .map(ToString::to_string)
        .collect();
    anomalies.extend(violations);
    if !anomalies.is_empty() {
        return Err(TestCaseError::fail(format!(
            "{} anomalies:\n  {}\nsteps: {steps:?}\nhistory:\n{}\nfinal: {end:?}",
            anomalies.len(),
            anomalies.join("\n  "),
            render(&history)
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn no_anomalies_under_faults(steps in prop::collection::vec(step(), 1..30)) {
        run(steps)?;
    }
}

/// The checker itself must catch each anomaly class: feed it histories that contain them.
#[test]
fn the_checker_catches_every_anomaly_class() {
    use checker::{Event, Outcome};
    let write = |txn, partition, value: &str| Event::TxnWrite {
        txn,
        partition,
        value: value.into(),
    };
    let poll = |records: Vec<(i32, i64, &str)>| Event::Poll {
        reader: 1,
        committed: true,
        records: records
            .into_iter()
            .map(|(p, o, v)| (p, o, v.to_string()))
            .collect(),
    };
    let cases: Vec<(&str, Vec<Event>, FinalState)> = vec![
        (
            "aborted read (G1a)",
            vec![
                write(1, 0, "a"),
                Event::Ended {
                    txn: 1,
                    outcome: Outcome::Aborted,
                },
                poll(vec![(0, 0, "a")]),
            ],
            FinalState::default(),
        ),
        (
            "uncommitted read",
            vec![
                write(1, 0, "a"),
                poll(vec![(0, 0, "a")]),
                Event::CommitAsked { txn: 1 },
                Event::Ended {
                    txn: 1,
                    outcome: Outcome::Committed,
                },
            ],
            FinalState {
                committed: vec![(0, 0, "a".into())],
                ..FinalState::default()
            },
        ),
        (
            "duplicate",
            vec![Event::PlainWrite {
                partition: 0,
                value: "p".into(),
            }],
            FinalState {
                committed: vec![(0, 0, "p".into()), (0, 1, "p".into())],
                ..FinalState::default()
            },
        ),
        (
            "lost write",
            vec![Event::PlainWrite {
                partition: 0,
                value: "p".into(),
            }],
            FinalState::default(),
        ),
        (
            "inconsistent offsets",
            vec![
                poll(vec![(0, 0, "x")]),
                Event::PlainWrite {
                    partition: 0,
                    value: "y".into(),
                },
            ],
            FinalState {
                committed: vec![(0, 0, "y".into())],
                ..FinalState::default()
            },
        ),
        (
            "non-monotonic poll",
            vec![poll(vec![(0, 5, "x")]), poll(vec![(0, 4, "y")])],
            FinalState::default(),
        ),
        (
            "torn transaction",
            vec![
                write(1, 0, "a"),
                write(1, 1, "b"),
                Event::CommitAsked { txn: 1 },
                Event::Ended {
                    txn: 1,
                    outcome: Outcome::Unknown,
                },
            ],
            FinalState {
                committed: vec![(0, 0, "a".into())],
                ..FinalState::default()
            },
        ),
        (
            "wrong group offsets",
            vec![
                Event::TxnOffsets {
                    txn: 1,
                    offsets: vec![(0, 7)],
                },
                Event::Ended {
                    txn: 1,
                    outcome: Outcome::Aborted,
                },
            ],
            FinalState {
                group_offsets: [(0, 7)].into_iter().collect(),
                ..FinalState::default()
            },
        ),
    ];
    for (kind, events, end) in cases {
        let found = check(&History { events }, &end);
        assert!(
            found.iter().any(|a| a.kind == kind),
            "{kind} not detected; found {found:?}"
        );
    }
    // And a clean history has none.
    let clean = History {
        events: vec![
            write(1, 0, "a"),
            Event::CommitAsked { txn: 1 },
            Event::TxnOffsets {
                txn: 1,
                offsets: vec![(0, 1)],
            },
            Event::Ended {
                txn: 1,
                outcome: Outcome::Committed,
            },
            poll(vec![(0, 0, "a")]),
        ],
    };
    let end = FinalState {
        committed: vec![(0, 0, "a".into())],
        uncommitted: vec![(0, 0, "a".into())],
        group_offsets: [(0, 1)].into_iter().collect(),
    };
    assert_eq!(check(&clean, &end), Vec::new());
}
