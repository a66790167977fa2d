//! Card fraud alerts from hopping-window counts, each window judged once, exactly once.
//!
//! A seeded generator makes three hours of card transactions for 150 cards: ordinary
//! purchases minutes to an hour apart, now and then a shopping trip of two to four
//! purchases 20 s to 2 min apart (busy, but not suspicious), and a few injected bursts of
//! card testing: six to ten small charges seconds apart. About one transaction in ten
//! arrives up to 20 s late (within the 30 s grace period).
//!
//! The transactions go to the topic `card-transactions` (3 partitions, keyed by card, the
//! transaction time as the record timestamp). The DSL app counts each card's transactions
//! (and sums their amounts) in hopping windows of one minute every 15 s
//! (`windowed_by(TimeWindows::of(60 s).advance_by(15 s).grace(30 s))`), holds each
//! window's updates back until the window closes
//! (`suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))`) so that each
//! window is judged once on its final count, keeps the windows with more than four
//! transactions and writes them as JSON alerts to the topic `fraud-alerts`.
//!
//! A window closes when its task's stream time passes its end plus the grace period, and
//! stream time is per task (per partition here): so the example ends the input with one
//! "flush" record a day later on each partition, which closes every real window.
//!
//! It prints the alerts and checks them against the (card, window) pairs computed in plain
//! Rust from the generated transactions; it exits non-zero if they differ or if a window
//! was alerted twice.
//!
//! ```text
//! cargo run --release --example fraud [-- --seed 7] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! With `--bootstrap-servers HOST:PORT` it runs on that Kafka cluster (Apache Kafka or
//! `sluice broker`) instead of the embedded log: the topics and the app id end in a run id
//! (`card-transactions-<run>` ...), so a rerun starts from empty topics.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::{Backend, Names, OnCluster, Res, Rng};
use serde::{Deserialize, Serialize};
use sluice::dsl::{
    BufferConfig, Data, StreamBuilder, Suppressed, TimeWindows, bincode_data, json_data,
};
use sluice::log::cluster::{ProducerSpec, TxnProducer};
use sluice::prelude::*;
use sluice::runtime::{AppConfig, ProcessingGuarantee};

const APP_ID: &str = "fraud-detector";
const INPUT: &str = "card-transactions";
const ALERTS: &str = "fraud-alerts";
const PARTITIONS: i32 = 3;
const CARDS: u64 = 150;
const BURSTS: u64 = 6;
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const WINDOW: i64 = MINUTE;
const ADVANCE: i64 = 15 * SECOND;
const GRACE: i64 = 30 * SECOND;
/// A window with more transactions than this raises an alert.
const THRESHOLD: u64 = 4;
/// The latest a transaction arrives (must stay within the grace period).
const MAX_DELAY: i64 = 20 * SECOND;
/// 2025-03-14T00:00:00Z in ms since the epoch; the transactions start at noon.
const DAY_MS: i64 = 1_741_910_400_000;
const START_MS: i64 = DAY_MS + 12 * 60 * MINUTE;
const HOURS: i64 = 3;
const MERCHANTS: [&str; 8] = [
    "grocer", "fuel", "cafe", "books", "pharmacy", "cinema", "online", "hardware",
];

/// One card transaction (the card is the key, its time the timestamp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Transaction {
    merchant: String,
    cents: i64,
}

/// A card's transactions in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct WindowStats {
    count: u64,
    cents: i64,
}

/// What `fraud-alerts` carries (as JSON), keyed by card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Alert {
    window_start: i64,
    window_end: i64,
    transactions: u64,
    cents: i64,
}

bincode_data!(Transaction, WindowStats);
json_data!(Alert);

impl WindowStats {
    fn add(self, cents: i64) -> Self {
        Self {
            count: self.count + 1,
            cents: self.cents + cents,
        }
    }
}

/// A generated transaction and when it reaches the topic.
#[derive(Debug, Clone)]
struct Event {
    card: String,
    time: i64,
    tx: Transaction,
    arrival: i64,
}

fn card_name(n: i64) -> String {
    format!("card-{n:04}")
}

/// The transactions in arrival order, and the cards given a burst.
fn generate(seed: u64) -> (Vec<Event>, BTreeSet<String>) {
    let mut rng = Rng::new(seed);
    let end = START_MS + HOURS * 60 * MINUTE;
    let mut times: Vec<(String, i64, i64)> = Vec::new();
    for c in 0..CARDS as i64 {
        let card = card_name(c);
        let mut time = START_MS + rng.below_i64(60 * MINUTE);
        while time < end {
            let cents = 300 + rng.below_i64(15_000);
            times.push((card.clone(), time, cents));
            if rng.below_i64(12) == 0 {
                // A shopping trip: a few more purchases close together.
                for _ in 0..1 + rng.below_i64(3) {
                    time += 20 * SECOND + rng.below_i64(100 * SECOND);
                    times.push((card.clone(), time, 300 + rng.below_i64(15_000)));
                }
            }
            time += 2 * MINUTE + rng.below_i64(60 * MINUTE);
        }
    }
    let mut burst_cards = BTreeSet::new();
    while (burst_cards.len() as u64) < BURSTS {
        let card = card_name(rng.below_i64(CARDS as i64));
        if !burst_cards.insert(card.clone()) {
            continue;
        }
        // Card testing: many small charges seconds apart.
        let mut time = START_MS + 10 * MINUTE + rng.below_i64((HOURS * 60 - 20) * MINUTE);
        for _ in 0..6 + rng.below_i64(5) {
            times.push((card.clone(), time, 100 + rng.below_i64(400)));
            time += 2 * SECOND + rng.below_i64(6 * SECOND);
        }
    }
    let mut events: Vec<Event> = times
        .into_iter()
        .map(|(card, time, cents)| {
            let delay = if rng.below_i64(10) == 0 {
                rng.below_i64(MAX_DELAY + 1)
            } else {
                0
            };
            let merchant = rng.pick(&MERCHANTS).to_string();
            Event {
                card,
                time,
                tx: Transaction { merchant, cents },
                arrival: time + delay,
            }
        })
        .collect();
    // Stable: equal arrivals keep their generation order.
    events.sort_by_key(|e| e.arrival);
    (events, burst_cards)
}

/// The starts of the hopping windows `[start, start + WINDOW)` holding `time`.
fn window_starts(time: i64) -> Vec<i64> {
    let mut start = time.div_euclid(ADVANCE) * ADVANCE;
    let mut starts = Vec::new();
    while start + WINDOW > time {
        starts.push(start);
        start -= ADVANCE;
    }
    starts
}

/// The expected alerts: every (card, window start) with more than `THRESHOLD` transactions.
fn expected_alerts(events: &[Event]) -> BTreeMap<(String, i64), WindowStats> {
    let mut windows: BTreeMap<(String, i64), WindowStats> = BTreeMap::new();
    for e in events {
        for start in window_starts(e.time) {
            let w = windows.entry((e.card.clone(), start)).or_default();
            *w = w.add(e.tx.cents);
        }
    }
    windows.retain(|_, w| w.count > THRESHOLD);
    windows
}

/// `HH:MM:SS` of a time on the day of the transactions.
fn clock(ms: i64) -> String {
    let s = (ms - DAY_MS) / SECOND;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn main() -> Res<()> {
    let (seed, target) = common::seed_args(3)?;
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    target.run(&dir.join("log"), Fraud { seed, dir })
}

/// The example, on whichever cluster [`common::Target`] chose.
struct Fraud<'a> {
    seed: u64,
    /// Where the app's state goes.
    dir: &'a Path,
}

impl OnCluster for Fraud<'_> {
    type Output = ();
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<()> {
        run(cluster, names, self.seed, self.dir)
    }
}

fn run<C: Backend>(broker: &C, names: &Names, seed: u64, dir: &Path) -> Res<()> {
    // The transactions are from a fixed day in the past: keep them whatever their age.
    let topics = TopicConfig::default()
        .with_partitions(PARTITIONS)
        .with_retention_ms(None);
    common::create_topics(broker, names, &[INPUT, ALERTS], &topics)?;
    let (input, alerts_topic) = (names.of(INPUT), names.of(ALERTS));

    let (events, burst_cards) = generate(seed);
    let late = events.iter().filter(|e| e.arrival > e.time).count();
    let mut producer = broker.producer(&ProducerSpec::idempotent("fraud-input"))?;
    let (keys, values) = (String::serde(), Transaction::serde());
    for e in &events {
        let record = ProducerRecord::new(input.as_str(), values.serialize(&e.tx)?)
            .with_key(keys.serialize(&e.card)?)
            .with_timestamp(e.time);
        producer.send(record)?;
    }
    // Stream time is per partition: one record a day later on each closes every window.
    let flush_time = DAY_MS + 36 * 60 * MINUTE;
    for p in 0..PARTITIONS {
        let flush = Transaction {
            merchant: "flush".into(),
            cents: 0,
        };
        let record = ProducerRecord::new(input.as_str(), values.serialize(&flush)?)
            .with_key(keys.serialize(&format!("flush-{p}"))?)
            .with_partition(p)
            .with_timestamp(flush_time);
        producer.send(record)?;
    }
    producer.flush()?;
    producer.close()?;
    println!(
        "produced {} transactions of {CARDS} cards to `{INPUT}` ({late} late, {BURSTS} injected \
         bursts), then a flush record at {} on each of its {PARTITIONS} partitions",
        events.len(),
        clock(flush_time)
    );

    let b = StreamBuilder::new();
    b.stream::<String, Transaction>(&input)
        .group_by_key()
        .windowed_by(
            TimeWindows::of(Duration::from_millis(WINDOW as u64))
                .advance_by(Duration::from_millis(ADVANCE as u64))
                .grace(Duration::from_millis(GRACE as u64)),
        )
        .aggregate(
            "card-windows",
            WindowStats::default,
            |_, tx: Transaction, w| w.add(tx.cents),
        )
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_value_stream()
        .filter(|_, w| w.count > THRESHOLD)
        .map(|w, stats| {
            let alert = Alert {
                window_start: w.start,
                window_end: w.end,
                transactions: stats.count,
                cents: stats.cents,
            };
            (w.key, alert)
        })
        .to(&alerts_topic);
    let topology = b.build()?;
    println!("{}", topology.describe());

    let config = AppConfig::default()
        .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .with_state_dir(dir.join("state"));
    let (metrics, took) = common::run_to_end(broker, &names.of(APP_ID), topology, config)?;

    let (cards, alerts) = (String::serde(), Alert::serde());
    let mut got: BTreeMap<(String, i64), WindowStats> = BTreeMap::new();
    let (mut records, mut repeated) = (0, 0);
    for r in common::read_committed(broker, &alerts_topic)? {
        let card = cards.deserialize(r.key.as_deref().unwrap_or_default())?;
        let alert = alerts.deserialize(r.value.as_deref().unwrap_or_default())?;
        records += 1;
        let stats = WindowStats {
            count: alert.transactions,
            cents: alert.cents,
        };
        if alert.window_end - alert.window_start != WINDOW
            || got.insert((card, alert.window_start), stats).is_some()
        {
            repeated += 1;
        }
    }

    println!("alerts (more than {THRESHOLD} transactions in a minute):");
    let mut by_card: BTreeMap<&str, Vec<(i64, WindowStats)>> = BTreeMap::new();
    for ((card, start), w) in &got {
        by_card.entry(card).or_default().push((*start, *w));
    }
    for (card, windows) in &by_card {
        println!("  {card}:");
        for (start, w) in windows {
            println!(
                "    {}-{}  {:>2} transactions  {:>4}.{:02} EUR",
                clock(*start),
                clock(start + WINDOW),
                w.count,
                w.cents / 100,
                w.cents % 100
            );
        }
    }
    let flagged: BTreeSet<String> = by_card.keys().map(|c| c.to_string()).collect();
    let caught = burst_cards.intersection(&flagged).count();
    println!(
        "total: {} alerts for {} cards; injected bursts caught: {caught} of {BURSTS}; \
         other cards flagged: {}",
        got.len(),
        flagged.len(),
        flagged.difference(&burst_cards).count()
    );
    println!(
        "`{ALERTS}`: {records} records, windows alerted twice: {repeated}; {} records \
         processed in {:.2} s, {} commits, {} dropped as late",
        metrics.records_processed,
        took.as_secs_f64(),
        metrics.commits,
        metrics.records_dropped
    );

    let expected = expected_alerts(&events);
    let matches = got == expected && repeated == 0;
    println!(
        "alerts equal the plain-Rust (card, window) pairs ({} expected): {matches}",
        expected.len()
    );
    if !matches {
        common::print_differences(&expected, &got);
        return Err("the alerts differ from the plain-Rust computation".into());
    }
    Ok(())
}
