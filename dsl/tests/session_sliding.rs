//! Session and sliding windows through the TopologyTestDriver against brute-force
//! references: sessions are each key's timestamps, sorted and split where two neighbours are
//! more than the gap apart; sliding windows are `[t - d, t]` for every record and
//! `[t + 1, t + 1 + d]` where that holds a record. Late records are replayed in arrival
//! order with the task's stream time and must be dropped and counted exactly when the
//! operator's rule says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, OptionSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{SessionWindows, SlidingWindows, Stream, StreamBuilder, Windowed, WindowedSerde};

/// A record: key, timestamp, value.
type Rec = (String, i64, i64);
type W = Windowed<String>;

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

/// Pipes `records` (in order) through the topology that `shape` builds on topic `in`.
fn run(records: &[Rec], shape: impl FnOnce(Stream<String, i64>)) -> TopologyTestDriver {
    let b = StreamBuilder::new();
    shape(b.stream::<String, i64>("in"));
    let mut driver = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
    let input = TestInputTopic::new("in", StringSerde, BigEndianSerde);
    for (k, t, v) in records {
        driver.pipe_input(&input, k.clone(), *v, *t).expect("pipe");
    }
    driver
}

/// Everything written to `topic`: windowed keys and nullable values (`None`: deleted).
fn read<V: 'static>(
    driver: &mut TopologyTestDriver,
    topic: &str,
    values: impl sluice_dsl::runtime::serde::Serde<V> + 'static,
) -> Vec<(W, Option<V>)> {
    let out = TestOutputTopic::new(
        topic,
        WindowedSerde(Arc::new(StringSerde)),
        OptionSerde(Arc::new(values)),
    );
    driver
        .read_output(&out)
        .expect("read")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

/// The last value written per windowed key, keys whose last write is a delete left out.
fn finals<V: Clone>(out: &[(W, Option<V>)]) -> BTreeMap<W, V> {
    let last: BTreeMap<W, Option<V>> = out.iter().cloned().collect();
    last.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// Timestamps that mostly move forward and sometimes jump back (late records).
fn drifting(steps: Vec<(String, i64, i64)>) -> Vec<Rec> {
    let mut ts = 50i64;
    steps
        .into_iter()
        .map(|(k, step, v)| {
            ts = (ts + step).max(0);
            (k, ts, v)
        })
        .collect()
}

// ---------------------------------------------------------------- session windows

/// A session of the reference: bounds, record count, value sum, value maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sess {
    start: i64,
    end: i64,
    count: u64,
    sum: i64,
    max: i64,
}

/// Brute-force sessionization: per key, the sorted timestamps split where neighbours are
/// more than `gap` apart.
fn sessionize(records: &[Rec], gap: i64) -> BTreeMap<W, Sess> {
    let mut by_key: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (k, t, v) in records {
        by_key.entry(k).or_default().push((*t, *v));
    }
    let mut out = BTreeMap::new();
    for (k, mut tv) in by_key {
        tv.sort();
        let mut groups: Vec<Vec<(i64, i64)>> = Vec::new();
        for (t, v) in tv {
            match groups.last_mut() {
                Some(g) if t - g.last().expect("non-empty").0 <= gap => g.push((t, v)),
                _ => groups.push(vec![(t, v)]),
            }
        }
        for g in groups {
            let s = Sess {
                start: g[0].0,
                end: g[g.len() - 1].0,
                count: g.len() as u64,
                sum: g.iter().map(|(_, v)| v).sum(),
                max: g.iter().map(|(_, v)| *v).max().expect("non-empty"),
            };
            let w = Windowed {
                key: k.to_string(),
                start: s.start,
                end: s.end,
            };
            out.insert(w, s);
        }
    }
    out
}

type Sessions = Vec<(W, Sess)>;

/// The session operator replayed in arrival order.
#[derive(Debug, Default)]
struct Replay {
    /// Per record kept: deletes of the sessions merged away (by end, then start), then the
    /// merged session.
    writes: Vec<(W, Option<Sess>)>,
    live: BTreeMap<W, Sess>,
    kept: Vec<Rec>,
    dropped: u64,
    /// Records kept that were also within the gap of a closed session (left alone).
    bridged_closed: u64,
}

/// Per record, the open sessions it touches (end >= t - gap, start <= t + gap) merge with
/// it; closed ones (end + gap + grace behind stream time) are final and left alone. The
/// record is dropped when the merged session's end + grace is behind stream time.
fn replay_sessions(records: &[Rec], gap: i64, grace: i64) -> Replay {
    let mut r = Replay::default();
    let mut now = i64::MIN;
    for (k, t, v) in records {
        now = now.max(*t);
        let (mut touched, closed): (Sessions, Sessions) = r
            .live
            .iter()
            .filter(|(w, s)| w.key == *k && s.end >= t - gap && s.start <= t + gap)
            .map(|(w, s)| (w.clone(), *s))
            .partition(|(_, s)| s.end + gap + grace >= now);
        touched.sort_by_key(|(_, s)| (s.end, s.start));
        let mut merged = Sess {
            start: *t,
            end: *t,
            count: 1,
            sum: *v,
            max: *v,
        };
        for (_, s) in &touched {
            merged.start = merged.start.min(s.start);
            merged.end = merged.end.max(s.end);
            merged.count += s.count;
            merged.sum += s.sum;
            merged.max = merged.max.max(s.max);
        }
        if merged.end + grace < now {
            r.dropped += 1;
            continue;
        }
        r.bridged_closed += u64::from(!closed.is_empty());
        let key = Windowed {
            key: k.clone(),
            start: merged.start,
            end: merged.end,
        };
        for (w, _) in touched {
            r.live.remove(&w);
            if w != key {
                r.writes.push((w, None));
            }
        }
        r.live.insert(key.clone(), merged);
        r.writes.push((key, Some(merged)));
        r.kept.push((k.clone(), *t, *v));
    }
    r
}

/// Count, reduce (sum) and aggregate (max, merged with max) by session, to three topics.
fn session_topology(gap: i64, grace: i64) -> impl FnOnce(Stream<String, i64>) {
    move |s| {
        let sessions = s
            .group_by_key()
            .windowed_by_session(SessionWindows::with_inactivity_gap(ms(gap)).grace(ms(grace)));
        sessions.count("counts").to_stream().to("counts-out");
        sessions
            .reduce("sums", |a, b| a + b)
            .to_stream()
            .to("sums-out");
        sessions
            .aggregate(
                "maxima",
                || i64::MIN,
                |_, v, m| m.max(v),
                |_, a, b| a.max(b),
            )
            .to_stream()
            .to("max-out");
    }
}

/// The writes of the three session topics, as (key, count / sum / max).
type SessionOutputs = (
    Vec<(W, Option<u64>)>,
    Vec<(W, Option<i64>)>,
    Vec<(W, Option<i64>)>,
);

fn session_outputs(driver: &mut TopologyTestDriver) -> SessionOutputs {
    (
        read::<u64>(driver, "counts-out", BigEndianSerde),
        read::<i64>(driver, "sums-out", BigEndianSerde),
        read::<i64>(driver, "max-out", BigEndianSerde),
    )
}

fn project<V>(writes: &[(W, Option<Sess>)], f: impl Fn(&Sess) -> V) -> Vec<(W, Option<V>)> {
    writes
        .iter()
        .map(|(w, s)| (w.clone(), s.as_ref().map(&f)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(48)))]

    #[test]
    fn sessions_equal_the_brute_force_sessionization(
        input in prop::collection::vec(("[a-c]", 0i64..200, -50i64..50), 1..40),
        gap in 0i64..30,
    ) {
        let records: Vec<Rec> = input;
        let mut driver = run(&records, session_topology(gap, 1_000_000));
        let (counts, sums, maxima) = session_outputs(&mut driver);
        let want = sessionize(&records, gap);
        // The last write of every session merged away is a null: only the reference
        // sessions are left, with their values.

        prop_assert_eq!(finals(&counts), want.iter().map(|(w, s)| (w.clone(), s.count)).collect::<BTreeMap<_, _>>());
        prop_assert_eq!(finals(&sums), want.iter().map(|(w, s)| (w.clone(), s.sum)).collect::<BTreeMap<_, _>>());
        prop_assert_eq!(finals(&maxima), want.iter().map(|(w, s)| (w.clone(), s.max)).collect::<BTreeMap<_, _>>());
        // The store holds exactly the reference sessions.
        let store = driver.session_store::<String, u64>("counts").expect("store");
        let mut stored = BTreeMap::new();
        for k in ["a", "b", "c"] {
            for found in store.find_sessions(&k.to_string(), i64::MIN, i64::MAX).expect("find") {
                let (s, n) = found.expect("read");
                stored.insert(Windowed { key: k.to_string(), start: s.start, end: s.end }, n);
            }
        }
        prop_assert_eq!(stored, want.iter().map(|(w, s)| (w.clone(), s.count)).collect::<BTreeMap<_, _>>());
        // The replay of the operator agrees with the brute force (no record is late here),
        // and so does the exact sequence of writes.
        let replay = replay_sessions(&records, gap, 1_000_000);
        prop_assert_eq!((replay.dropped, driver.dropped_records()), (0, 0));
        prop_assert_eq!(&replay.live, &want);
        prop_assert_eq!(counts, project(&replay.writes, |s| s.count));
    }

    #[test]
    fn late_session_records_are_dropped_and_counted_as_a_replay_says(
        steps in prop::collection::vec(("[ab]", -12i64..10, -50i64..50), 1..60),
        gap in 0i64..8,
        grace in 0i64..4,
    ) {
        let records = drifting(steps);
        let mut driver = run(&records, session_topology(gap, grace));
        let (counts, sums, maxima) = session_outputs(&mut driver);
        let replay = replay_sessions(&records, gap, grace);
        // Each of the three aggregations drops (and counts) a late record.
        prop_assert_eq!(driver.dropped_records(), 3 * replay.dropped);
        prop_assert_eq!(&counts, &project(&replay.writes, |s| s.count));
        prop_assert_eq!(sums, project(&replay.writes, |s| s.sum));
        prop_assert_eq!(maxima, project(&replay.writes, |s| s.max));
        let live: BTreeMap<W, u64> = replay.live.iter().map(|(w, s)| (w.clone(), s.count)).collect();
        prop_assert_eq!(finals(&counts), live);
        // Unless a late record came within the gap of a closed session, what is left is the
        // sessionization of the records kept.
        if replay.bridged_closed == 0 {
            prop_assert_eq!(&replay.live, &sessionize(&replay.kept, gap));
        }
    }
}

#[test]
fn a_record_between_two_sessions_merges_them_and_deletes_both() {
    let records: Vec<Rec> = [("k", 0, 1), ("k", 20, 2), ("k", 10, 3), ("k", 40, 4)]
        .iter()
        .map(|(k, t, v)| (k.to_string(), *t, *v))
        .collect();
    let mut driver = run(&records, session_topology(10, 100));
    let (counts, _, _) = session_outputs(&mut driver);
    let w = |start, end| Windowed {
        key: "k".to_string(),
        start,
        end,
    };
    assert_eq!(
        counts,
        vec![
            (w(0, 0), Some(1)),
            (w(20, 20), Some(1)),
            (w(0, 0), None),
            (w(20, 20), None),
            (w(0, 20), Some(3)),
            (w(40, 40), Some(1)),
        ]
    );
}

#[test]
fn a_late_record_bridging_a_closed_session_merges_with_the_open_one_only() {
    // Gap 10, grace 5. At stream time 66, [50, 50] is closed (50 + 10 + 5 < 66) and [61, 61]
    // is open. The record at 55 is within the gap of both; merging [50, 50] would change a
    // final session (and whether it is still in the store depends on its retention), so it
    // joins [61, 61] only. A record that only reaches closed sessions is dropped.
    let records: Vec<Rec> = [("b", 50), ("b", 61), ("y", 66), ("b", 55), ("b", 44)]
        .iter()
        .map(|(k, t)| (k.to_string(), *t, 1))
        .collect();
    let mut driver = run(&records, session_topology(10, 5));
    let (counts, _, _) = session_outputs(&mut driver);
    let w = |k: &str, start, end| Windowed {
        key: k.to_string(),
        start,
        end,
    };
    assert_eq!(
        counts,
        vec![
            (w("b", 50, 50), Some(1)),
            (w("b", 61, 61), Some(1)),
            (w("y", 66, 66), Some(1)),
            (w("b", 61, 61), None),
            (w("b", 55, 61), Some(2)),
        ]
    );
    assert_eq!(driver.dropped_records(), 3);
    let replay = replay_sessions(&records, 10, 5);
    assert_eq!(counts, project(&replay.writes, |s| s.count));
    assert_eq!((replay.dropped, replay.bridged_closed), (1, 1));
}

// ---------------------------------------------------------------- sliding windows

/// Per key, the windows `[t - d, t]` for each of its times and `[t + 1, t + 1 + d]` for each
/// with a later time within `d + 1`, with the count and sum of the records in each.
fn sliding_reference(records: &[Rec], d: i64) -> BTreeMap<W, (u64, i64)> {
    let mut windows: BTreeSet<(&str, i64)> = BTreeSet::new();
    for (k, t, _) in records {
        windows.insert((k, t - d));
        if records
            .iter()
            .any(|(k2, u, _)| k2 == k && t < u && *u <= t + 1 + d)
        {
            windows.insert((k, t + 1));
        }
    }
    let mut out = BTreeMap::new();
    for (k, start) in windows {
        let end = start + d;
        let inside = records
            .iter()
            .filter(|(k2, t, _)| k2 == k && start <= *t && *t <= end);
        let (n, sum) = inside.fold((0u64, 0i64), |(n, s), (_, _, v)| (n + 1, s + v));
        out.insert(
            Windowed {
                key: k.to_string(),
                start,
                end,
            },
            (n, sum),
        );
    }
    out
}

fn sliding_topology(d: i64, grace: i64) -> impl FnOnce(Stream<String, i64>) {
    move |s| {
        let windows = s
            .group_by_key()
            .windowed_by_sliding(SlidingWindows::with_time_difference(ms(d)).grace(ms(grace)));
        windows.count("counts").to_stream().to("counts-out");
        windows
            .aggregate("sums", || 0i64, |_, v, acc| acc + v)
            .to_stream()
            .to("sums-out");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(48)))]

    #[test]
    fn sliding_windows_equal_the_reference(
        input in prop::collection::vec(("[a-c]", 0i64..150, -50i64..50), 1..40),
        d in 0i64..25,
    ) {
        let records: Vec<Rec> = input;
        let mut driver = run(&records, sliding_topology(d, 1_000_000));
        let counts = read::<u64>(&mut driver, "counts-out", BigEndianSerde);
        let sums = read::<i64>(&mut driver, "sums-out", BigEndianSerde);
        prop_assert!(counts.iter().all(|(w, n)| n.is_some() && w.end - w.start == d));
        prop_assert!(sums.iter().all(|(_, s)| s.is_some()));
        let want = sliding_reference(&records, d);
        prop_assert_eq!(finals(&counts), want.iter().map(|(w, (n, _))| (w.clone(), *n)).collect::<BTreeMap<_, _>>());
        prop_assert_eq!(finals(&sums), want.iter().map(|(w, (_, s))| (w.clone(), *s)).collect::<BTreeMap<_, _>>());
        prop_assert_eq!(driver.dropped_records(), 0);
    }

    #[test]
    fn a_sliding_record_is_dropped_exactly_when_it_is_later_than_the_grace(
        steps in prop::collection::vec(("[ab]", -25i64..20, -50i64..50), 1..40),
        d in 0i64..12,
        grace in 0i64..10,
    ) {
        let records = drifting(steps);
        let mut driver = run(&records, sliding_topology(d, grace));
        let counts = read::<u64>(&mut driver, "counts-out", BigEndianSerde);
        let sums = read::<i64>(&mut driver, "sums-out", BigEndianSerde);

        // Replay: stream time at each arrival; a record at t is dropped iff t + d + grace
        // is behind it.
        let mut now = i64::MIN;
        let mut accepted: Vec<(Rec, i64)> = Vec::new();
        let mut dropped = 0u64;
        for r in &records {
            now = now.max(r.1);
            if r.1 + d + grace < now {
                dropped += 1;
            } else {
                accepted.push((r.clone(), now));
            }
        }
        // Both aggregations drop (and count) a late record.
        prop_assert_eq!(driver.dropped_records(), 2 * dropped);

        let kept: Vec<Rec> = accepted.iter().map(|(r, _)| r.clone()).collect();
        let all = sliding_reference(&kept, d);
        let got_counts = finals(&counts);
        let got_sums = finals(&sums);
        prop_assert_eq!(got_counts.keys().collect::<Vec<_>>(), got_sums.keys().collect::<Vec<_>>());
        for (w, n) in &got_counts {
            // Only reference windows appear, each with the records that reached it while
            // it was open (stream time at arrival at most its end + grace).
            prop_assert!(all.contains_key(w), "window {:?} is not a reference window", w);
            let reached: Vec<i64> = accepted
                .iter()
                .filter(|((k, t, _), at)| *k == w.key && w.start <= *t && *t <= w.end && *at <= w.end + grace)
                .map(|((_, _, v), _)| *v)
                .collect();
            prop_assert_eq!(*n, reached.len() as u64, "count of {:?}", w);
            prop_assert_eq!(got_sums[w], reached.iter().sum::<i64>(), "sum of {:?}", w);
        }
        // A window still open at the end holds all of its records.
        for (w, (n, s)) in &all {
            if w.end + grace >= now {
                prop_assert_eq!(got_counts.get(w), Some(n), "open window {:?}", w);
                prop_assert_eq!(got_sums.get(w), Some(s), "open window {:?}", w);
            }
        }
    }
}

#[test]
fn sliding_windows_of_a_small_example() {
    // d = 10: records at 5, 12, 30. Windows: [-5, 5] {5}, [2, 12] {5, 12}, [6, 16] {12},
    // [20, 30] {30}; [13, 23] holds nothing, [31, 41] nothing, so neither exists.
    let records: Vec<Rec> = [5, 12, 30]
        .iter()
        .map(|t| ("k".to_string(), *t, *t))
        .collect();
    let mut driver = run(&records, sliding_topology(10, 0));
    let counts = finals(&read::<u64>(&mut driver, "counts-out", BigEndianSerde));
    let got: Vec<(i64, i64, u64)> = counts.iter().map(|(w, n)| (w.start, w.end, *n)).collect();
    assert_eq!(got, vec![(-5, 5, 1), (2, 12, 2), (6, 16, 1), (20, 30, 1)]);
    // A record at 9 is now late ([9, 19] + grace 0 < 30) and dropped; one at 20 is not
    // ([20, 30] is still open).
    let input = TestInputTopic::new("in", StringSerde, BigEndianSerde);
    let mut pipe = |t: i64| {
        driver
            .pipe_input(&input, "k".to_string(), t, t)
            .expect("pipe")
    };
    pipe(9);
    pipe(20);
    // 9 was dropped by both aggregations (count and sum), 20 by neither.
    assert_eq!(driver.dropped_records(), 2);
    let counts = finals(&read::<u64>(&mut driver, "counts-out", BigEndianSerde));
    let got: Vec<(i64, i64, u64)> = counts.iter().map(|(w, n)| (w.start, w.end, *n)).collect();
    // [10, 20] and [13, 23] would hold 20 but are closed (end + grace < 30); [20, 30] now
    // holds two records and the new [21, 31] holds 30.
    assert_eq!(got, vec![(20, 30, 2), (21, 31, 1)]);
}
