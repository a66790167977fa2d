//! Time windows as properties: a record lands in exactly the windows whose [start, end)
//! holds its timestamp; windowed counts through the TopologyTestDriver equal a brute-force
//! reference, including records later than the grace period, which are dropped and counted.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{StreamBuilder, TimeWindows, Windowed, WindowedSerde};

fn windows(size: i64, advance: i64, grace: i64) -> TimeWindows {
    TimeWindows::of(Duration::from_millis(size as u64))
        .advance_by(Duration::from_millis(advance as u64))
        .grace(Duration::from_millis(grace as u64))
}

/// Every start `k * advance` whose window holds `ts`, by trying them all.
fn brute_starts(ts: i64, size: i64, advance: i64) -> Vec<i64> {
    (-1000..=1000)
        .map(|k| k * advance)
        .filter(|s| *s <= ts && ts < s + size)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(64)))]

    #[test]
    fn a_record_lands_in_exactly_the_windows_that_hold_it(
        ts in -500i64..500, size in 1i64..60, advance_pick in 1i64..60,
    ) {
        let advance = advance_pick.min(size);
        prop_assert_eq!(windows(size, advance, 0).starts_for(ts), brute_starts(ts, size, advance));
    }

    #[test]
    fn windowed_counts_equal_the_reference_and_late_records_are_dropped_and_counted(
        steps in prop::collection::vec(("[a-c]", -30i64..40), 1..40),
        size in 1i64..40, advance_pick in 1i64..40, grace in 0i64..25,
    ) {
        let advance = advance_pick.min(size);
        // Timestamps mostly move forward, sometimes back (late records).
        let mut ts = 100i64;
        let records: Vec<(String, i64)> = steps
            .into_iter()
            .map(|(k, step)| {
                ts = (ts + step).max(0);
                (k, ts)
            })
            .collect();

        let b = StreamBuilder::new();
        b.stream::<String, i64>("in")
            .group_by_key()
            .windowed_by(windows(size, advance, grace))
            .count("counts")
            .to_stream()
            .to("out");
        let mut driver = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
        let input = TestInputTopic::new("in", StringSerde, BigEndianSerde);
        for (k, t) in &records {
            driver.pipe_input(&input, k.clone(), 0i64, *t).expect("pipe");
        }
        let output = TestOutputTopic::<Windowed<String>, u64>::new(
            "out",
            WindowedSerde(std::sync::Arc::new(StringSerde)),
            BigEndianSerde,
        );
        let got: Vec<(Windowed<String>, u64)> =
            driver.read_output(&output).expect("read").into_iter().map(|r| (r.key, r.value)).collect();

        let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
        let mut want = Vec::new();
        let mut dropped = 0u64;
        let mut stream_time = i64::MIN;
        for (k, t) in &records {
            stream_time = stream_time.max(*t);
            let open: Vec<i64> = brute_starts(*t, size, advance)
                .into_iter()
                .filter(|s| s + size + grace > stream_time)
                .collect();
            if open.is_empty() {
                dropped += 1;
            }
            for s in open {
                let n = counts.entry((k.clone(), s)).or_default();
                *n += 1;
                want.push((Windowed { key: k.clone(), start: s, end: s + size }, *n));
            }
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(driver.dropped_records(), dropped);
    }
}

#[test]
fn tumbling_windows_count_per_window_and_drop_what_is_too_late() {
    let b = StreamBuilder::new();
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(5)))
        .count("counts")
        .to_stream()
        .to("out");
    let mut driver = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
    let input = TestInputTopic::new("in", StringSerde, BigEndianSerde);
    // 3 and 7 in [0, 10); 12 in [10, 20); 16 moves stream time to 16, so [0, 10) closes
    // (10 + 5 <= 16): 9 is dropped; 14 still counts in [10, 20).
    for ts in [3, 7, 12, 16, 9, 14] {
        driver
            .pipe_input(&input, "k".to_string(), 0i64, ts)
            .expect("pipe");
    }
    let output = TestOutputTopic::<Windowed<String>, u64>::new(
        "out",
        WindowedSerde(std::sync::Arc::new(StringSerde)),
        BigEndianSerde,
    );
    let got: Vec<(i64, u64)> = driver
        .read_output(&output)
        .expect("read")
        .into_iter()
        .map(|r| (r.key.start, r.value))
        .collect();
    assert_eq!(got, vec![(0, 1), (0, 2), (10, 1), (10, 2), (10, 3)]);
    assert_eq!(driver.dropped_records(), 1);
    let store = driver.window_store::<String, u64>("counts").expect("store");
    assert_eq!(
        store
            .fetch(&"k".to_string(), 0, 100)
            .expect("fetch")
            .collect::<Result<Vec<_>, _>>()
            .expect("read"),
        vec![(0, 2), (10, 3)]
    );
}
