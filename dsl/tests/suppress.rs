//! `Table::suppress` through the TopologyTestDriver, record by record. `until_window_closes`
//! against brute-force time windows, and for session and sliding windows against the
//! unsuppressed table: every closed window exactly once, with its final value, nothing
//! before it closes. `until_time_limit`, unbounded or bounded (emitting early), against a
//! replay of the buffer, with the buffer's stores inspected after every record; a buffer
//! that shuts down when full fails the task; suppressions that cannot work fail `build`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, OptionSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{
    BufferConfig, SessionWindows, SlidingWindows, Stream, StreamBuilder, Suppressed, Table,
    TimeWindows, Windowed, WindowedSerde,
};

type W = Windowed<String>;

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

fn driver(shape: impl FnOnce(Stream<String, i64>)) -> TopologyTestDriver {
    let b = StreamBuilder::new();
    shape(b.stream::<String, i64>("in"));
    TopologyTestDriver::new(b.build().expect("topology")).expect("driver")
}

fn pipe(d: &mut TopologyTestDriver, key: &str, timestamp: i64) -> sluice_dsl::runtime::Result<()> {
    let input = TestInputTopic::new("in", StringSerde, BigEndianSerde);
    d.pipe_input(&input, key.to_string(), 0i64, timestamp)
}

/// What was written to `topic` since the last read: windowed key, count (`None`: deleted).
fn windowed(d: &mut TopologyTestDriver, topic: &str) -> Vec<(W, Option<u64>)> {
    let out = TestOutputTopic::new(
        topic,
        WindowedSerde(Arc::new(StringSerde)),
        OptionSerde(Arc::new(BigEndianSerde)),
    );
    let records = d.read_output(&out).expect("read");
    records.into_iter().map(|r| (r.key, r.value)).collect()
}

/// What was written to `topic` since the last read: key, count, timestamp.
fn plain(d: &mut TopologyTestDriver, topic: &str) -> Vec<(String, u64, i64)> {
    let out = TestOutputTopic::new(topic, StringSerde, BigEndianSerde);
    let records = d.read_output(&out).expect("read");
    records
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

/// Timestamps that mostly move forward and sometimes jump back (late records).
fn drifting(steps: Vec<(String, i64)>) -> Vec<(String, i64)> {
    let mut ts = 50i64;
    steps
        .into_iter()
        .map(|(k, step)| {
            ts = (ts + step).max(0);
            (k, ts)
        })
        .collect()
}

/// The starts `k * advance` of the windows of `size` that hold `ts`, by trying them all.
fn brute_starts(ts: i64, size: i64, advance: i64) -> Vec<i64> {
    (-1000..=1000)
        .map(|k| k * advance)
        .filter(|s| *s <= ts && ts < s + size)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(48)))]

    #[test]
    fn time_windows_are_emitted_once_when_they_close_with_their_final_count(
        steps in prop::collection::vec(("[a-c]", -20i64..25), 1..40),
        size in 1i64..30, advance_pick in 1i64..30, grace in 0i64..20,
    ) {
        let advance = advance_pick.min(size);
        let records = drifting(steps);
        let mut d = driver(|s| {
            let windows = TimeWindows::of(ms(size)).advance_by(ms(advance)).grace(ms(grace));
            s.group_by_key()
                .windowed_by(windows)
                .count("counts")
                .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
                .to_stream()
                .to("out");
        });
        // Reference: the records each window accepted (a window takes records until stream
        // time reaches its end + grace), then after every record the windows closed so far.
        let mut now = i64::MIN;
        let mut counts: BTreeMap<W, u64> = BTreeMap::new();
        let mut closed_after: Vec<Vec<W>> = Vec::new();
        for (k, t) in &records {
            now = now.max(*t);
            for s in brute_starts(*t, size, advance) {
                if s + size + grace > now {
                    *counts.entry(Windowed { key: k.clone(), start: s, end: s + size }).or_default() += 1;
                }
            }
            closed_after.push(counts.keys().filter(|w| w.end + grace <= now).cloned().collect());
        }
        let mut emitted: BTreeMap<W, u64> = BTreeMap::new();
        for ((k, t), closed) in records.iter().zip(closed_after) {
            pipe(&mut d, k, *t).expect("pipe");
            for (w, n) in windowed(&mut d, "out") {
                prop_assert!(n.is_some(), "a null for {:?}", w);
                prop_assert!(emitted.insert(w.clone(), n.unwrap_or_default()).is_none(), "{:?} emitted twice", w);
            }
            // Exactly the closed windows so far, each once (a window not yet closed at the
            // end is never emitted).
            prop_assert_eq!(emitted.keys().cloned().collect::<Vec<_>>(), closed);
        }
        // Each with its final count.
        for (w, n) in &emitted {
            prop_assert_eq!(Some(n), counts.get(w), "count of {:?}", w);
        }
    }

    #[test]
    fn session_and_sliding_windows_are_emitted_once_when_they_close(
        steps in prop::collection::vec(("[ab]", -12i64..10), 1..60),
        gap in 0i64..8, grace in 0i64..4,
    ) {
        let records = drifting(steps);
        let final_results = || Suppressed::until_window_closes(BufferConfig::unbounded());
        let mut d = driver(|s| {
            let grouped = s.group_by_key();
            let sessions = grouped
                .windowed_by_session(SessionWindows::with_inactivity_gap(ms(gap)).grace(ms(grace)))
                .count("sessions");
            sessions.to_stream().to("sessions-raw");
            sessions.suppress(final_results()).to_stream().to("sessions-out");
            let sliding = grouped
                .windowed_by_sliding(SlidingWindows::with_time_difference(ms(gap)).grace(ms(grace)))
                .count("sliding");
            sliding.to_stream().to("sliding-raw");
            sliding.suppress(final_results()).to_stream().to("sliding-out");
        });
        // A session is final once stream time passes end + gap + grace; a sliding window
        // once it passes end + grace.
        let cases = [("sessions", gap + grace), ("sliding", grace)];
        let mut latest: [BTreeMap<W, Option<u64>>; 2] = Default::default();
        let mut emitted: [BTreeMap<W, u64>; 2] = Default::default();
        let mut now = i64::MIN;
        for (k, t) in &records {
            now = now.max(*t);
            pipe(&mut d, k, *t).expect("pipe");
            for (i, (name, after_end)) in cases.iter().enumerate() {
                latest[i].extend(windowed(&mut d, &format!("{name}-raw")));
                for (w, n) in windowed(&mut d, &format!("{name}-out")) {
                    prop_assert!(w.end + after_end < now, "{} {:?} emitted at {}", name, w, now);
                    prop_assert!(n.is_some(), "{} emitted a null for {:?}", name, w);
                    prop_assert!(emitted[i].insert(w.clone(), n.unwrap_or_default()).is_none(), "{} {:?} twice", name, w);
                }
                let closed: Vec<&W> = latest[i]
                    .iter()
                    .filter(|(w, n)| n.is_some() && w.end + after_end < now)
                    .map(|(w, _)| w)
                    .collect();
                prop_assert_eq!(emitted[i].keys().collect::<Vec<_>>(), closed, "{} at {}", name, now);
            }
        }
        // What was emitted is final: the unsuppressed table never changed it afterwards.
        for i in 0..2 {
            for (w, n) in &emitted[i] {
                prop_assert_eq!(latest[i].get(w), Some(&Some(*n)), "{} {:?}", cases[i].0, w);
            }
        }
    }

    #[test]
    fn until_time_limit_emits_as_a_replay_of_the_buffer_says(
        steps in prop::collection::vec(("[a-e]", -15i64..20), 1..40),
        limit in 0i64..30,
        bound in prop::option::of(0u64..4),
        in_order in any::<bool>(),
    ) {
        let steps = steps.into_iter().map(|(k, step)| (k, if in_order { step.abs() } else { step }));
        let records = drifting(steps.collect());
        let buffer = bound.map_or(BufferConfig::unbounded(), BufferConfig::max_records);
        let mut store = String::new();
        let mut d = driver(|s| {
            let counts = s.group_by_key().count("counts");
            counts.to_stream().to("raw");
            let held = counts.suppress(Suppressed::until_time_limit(ms(limit), buffer));
            store = held.store_name().expect("a buffer").trim_end_matches("-buffer").to_string();
            held.to_stream().to("out");
        });
        // Replay: key -> (latest count, deadline = first held timestamp + limit, latest
        // timestamp); due keys leave by deadline, then key; a full buffer evicts the same way.
        let mut held: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut raw: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut last_emit: BTreeMap<String, i64> = BTreeMap::new();
        let mut now = i64::MIN;
        for (k, t) in &records {
            now = now.max(*t);
            let n = counts.entry(k.clone()).or_default();
            *n += 1;
            let entry = held.entry(k.clone()).or_insert((0, t + limit, *t));
            (entry.0, entry.2) = (*n, *t);
            let mut order: Vec<(i64, String)> = held.iter().map(|(k, h)| (h.1, k.clone())).collect();
            order.sort();
            let mut want = Vec::new();
            for (deadline, key) in order {
                let full = bound.is_some_and(|m| held.len() as u64 > m);
                if deadline <= now || full {
                    let (n, _, ts) = held.remove(&key).expect("held");
                    want.push((key, n, ts));
                }
            }

            pipe(&mut d, k, *t).expect("pipe");
            for (key, n, _) in plain(&mut d, "raw") {
                raw.entry(key).or_default().push(n);
            }
            let got = plain(&mut d, "out");
            prop_assert_eq!(&got, &want, "at {} (stream time {})", t, now);
            for (key, n, _) in &got {
                // The latest value as of the emission, which the unsuppressed table wrote.
                prop_assert_eq!(Some(n), counts.get(key));
                prop_assert_eq!(raw[key].last(), Some(n));
                // For an unbounded buffer and timestamps in order, emissions of a key are at
                // least the limit apart in stream time.
                if bound.is_none()
                    && in_order
                    && let Some(before) = last_emit.get(key)
                {
                    prop_assert!(now - before >= limit, "{} at {} and {}", key, before, now);
                }
                last_emit.insert(key.clone(), now);
            }
            // The buffer's stores hold exactly the replay's keys, with their deadlines.
            let deadlines = d.window_store::<String, ()>(&format!("{store}-deadlines")).expect("store");
            let stored: BTreeMap<String, i64> = deadlines
                .fetch_all(i64::MIN, i64::MAX)
                .expect("fetch")
                .map(|found| found.map(|(k, deadline, ())| (k, deadline)))
                .collect::<Result<_, _>>()
                .expect("read");
            prop_assert_eq!(&stored, &held.iter().map(|(k, h)| (k.clone(), h.1)).collect::<BTreeMap<_, _>>());
            prop_assert!(stored.values().all(|deadline| *deadline > now));
            let size = d.kv_store::<(), (u64, u64)>(&format!("{store}-size")).expect("store");
            let (n, _) = size.get(&()).expect("get").unwrap_or_default();
            prop_assert_eq!(n, held.len() as u64);
            prop_assert!(bound.is_none_or(|m| n <= m), "{} held, bound {:?}", n, bound);
        }
    }
}

fn limited(buffer: BufferConfig) -> TopologyTestDriver {
    driver(|s| {
        s.group_by_key()
            .count("counts")
            .suppress(Suppressed::until_time_limit(ms(100), buffer))
            .to_stream()
            .to("out");
    })
}

fn out(d: &mut TopologyTestDriver) -> Vec<(String, u64, i64)> {
    plain(d, "out")
}

#[test]
fn a_full_buffer_emits_the_nearest_deadline_early() {
    let mut d = limited(BufferConfig::max_records(2));
    pipe(&mut d, "a", 0).expect("pipe");
    pipe(&mut d, "b", 1).expect("pipe");
    pipe(&mut d, "a", 2).expect("pipe");
    assert_eq!(out(&mut d), vec![]);
    // A third key: `a` (deadline 100) goes early, at stream time 3, with its latest count.
    pipe(&mut d, "c", 3).expect("pipe");
    assert_eq!(out(&mut d), vec![("a".to_string(), 2, 2)]);
    pipe(&mut d, "a", 4).expect("pipe");
    assert_eq!(out(&mut d), vec![("b".to_string(), 1, 1)]);
    // Stream time 103 passes c's deadline (103) only: a was held again at 4.
    pipe(&mut d, "c", 103).expect("pipe");
    assert_eq!(out(&mut d), vec![("c".to_string(), 2, 103)]);
}

#[test]
fn a_buffer_of_one_byte_emits_every_update() {
    let mut d = limited(BufferConfig::max_bytes(1));
    for (k, t) in [("a", 0), ("b", 1), ("a", 2)] {
        pipe(&mut d, k, t).expect("pipe");
    }
    let got: Vec<(String, u64)> = out(&mut d).into_iter().map(|(k, n, _)| (k, n)).collect();
    let want = [("a", 1), ("b", 1), ("a", 2)].map(|(k, n)| (k.to_string(), n));
    assert_eq!(got, want);
}

#[test]
fn a_buffer_that_shuts_down_when_full_fails_the_task() {
    let mut d = limited(BufferConfig::max_records(2).shut_down_when_full());
    pipe(&mut d, "a", 0).expect("pipe");
    pipe(&mut d, "b", 1).expect("pipe");
    // Updating a held key does not grow the buffer.
    pipe(&mut d, "a", 2).expect("pipe");
    let err = pipe(&mut d, "c", 3).expect_err("a third key overflows the buffer");
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(out(&mut d), vec![]);

    // The same for final results: the second window held overflows a buffer of one.
    let mut d = driver(|s| {
        s.group_by_key()
            .windowed_by(TimeWindows::of(ms(10)))
            .count("counts")
            .suppress(Suppressed::until_window_closes(
                BufferConfig::max_records(1).shut_down_when_full(),
            ))
            .to_stream()
            .to("out");
    });
    pipe(&mut d, "a", 0).expect("pipe");
    pipe(&mut d, "a", 5).expect("pipe");
    // [0, 10) closes at 10 and leaves the buffer before [10, 20) enters it.
    pipe(&mut d, "a", 12).expect("pipe");
    assert_eq!(windowed(&mut d, "out").len(), 1);
    let err = pipe(&mut d, "b", 13).expect_err("a second open window overflows");
    assert!(err.to_string().contains("full"), "{err}");
}

fn build_error(shape: impl FnOnce(&StreamBuilder)) -> String {
    let b = StreamBuilder::new();
    shape(&b);
    b.build().expect_err("the topology is invalid").to_string()
}

fn windowed_counts(b: &StreamBuilder) -> Table<W, u64> {
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of(ms(10)))
        .count("counts")
}

#[test]
fn suppressions_that_cannot_work_fail_the_build() {
    for buffer in [
        BufferConfig::max_records(1),
        BufferConfig::max_bytes(1000),
        BufferConfig::unbounded()
            .with_max_records(5)
            .emit_early_when_full(),
    ] {
        let err = build_error(|b| {
            windowed_counts(b).suppress(Suppressed::until_window_closes(buffer));
        });
        assert!(err.contains("emit early"), "{err}");
        assert!(err.contains("final results"), "{err}");
    }
    // A table of windowed keys that is not a windowed aggregation has no windows to close.
    let err = build_error(|b| {
        b.stream::<W, u64>("windows")
            .to_table("copied")
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
    });
    assert!(err.contains("windowed table"), "{err}");
    // Bounded but shutting down, or limited by time, is fine.
    let valid: [fn(&StreamBuilder); 2] = [
        |b| {
            windowed_counts(b).suppress(Suppressed::until_window_closes(
                BufferConfig::max_records(1).shut_down_when_full(),
            ));
        },
        |b| {
            windowed_counts(b).suppress(Suppressed::until_time_limit(
                ms(5),
                BufferConfig::max_records(1),
            ));
        },
    ];
    for shape in valid {
        let b = StreamBuilder::new();
        shape(&b);
        b.build().expect("a valid suppression");
    }
}

#[test]
fn a_late_record_does_not_reopen_an_emitted_session() {
    // Gap 10, grace 5. [50, 50] is final at stream time 66 (50 + 10 + 5 < 66) and emitted.
    // The record at 55 is within the gap of [50, 50] and of [61, 61], which is still open;
    // it may only merge with the open one: deleting [50, 50] would retract a final result.
    let mut d = driver(|s| {
        s.group_by_key()
            .windowed_by_session(SessionWindows::with_inactivity_gap(ms(10)).grace(ms(5)))
            .count("sessions")
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
            .to_stream()
            .to("out");
    });
    let w = |k: &str, start, end| Windowed {
        key: k.to_string(),
        start,
        end,
    };
    for (k, t) in [("b", 50), ("b", 61), ("y", 66), ("b", 55)] {
        pipe(&mut d, k, t).expect("pipe");
    }
    assert_eq!(windowed(&mut d, "out"), vec![(w("b", 50, 50), Some(1))]);
    pipe(&mut d, "z", 200).expect("pipe");
    assert_eq!(
        windowed(&mut d, "out"),
        vec![(w("b", 55, 61), Some(2)), (w("y", 66, 66), Some(1))]
    );
}
