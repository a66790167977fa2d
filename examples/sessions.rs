//! Clickstream sessionization with session windows, exactly once.
//!
//! A seeded generator makes a morning's clickstream for 30 users: bursts of clicks a few
//! seconds to four minutes apart, separated by idle periods longer than the 30-minute
//! inactivity gap. Some clicks arrive up to 90 s late, and now and then a click in the
//! middle of a 31–36 minute pause arrives ~18 minutes late, after the next burst has
//! begun: it bridges the two sessions, which then merge. Every delay stays within the
//! 20-minute grace period, so no click is dropped.
//!
//! The clicks go to the topic `clicks` (3 partitions, keyed by user, the click time as the
//! record timestamp). The DSL app groups them by user into session windows
//! (`windowed_by_session(SessionWindows::with_inactivity_gap(30 min).grace(20 min))`),
//! aggregates clicks and distinct pages per session (merging the aggregates of sessions a
//! late click joins) and writes every change to the topic `sessions` with the `Windowed`
//! key: a session's new aggregate, or a null value when the session was replaced (it grew
//! to new bounds or was merged into another).
//!
//! The reader applies `sessions` in order (a null value deletes its `Windowed` key), prints
//! per user the number of sessions, their average length and the clicks, and checks the
//! sessions against a brute-force sessionization of the generated clicks, and that every
//! bridging click merged two sessions; it exits non-zero otherwise.
//!
//! ```text
//! cargo run --release --example sessions [-- --seed 7] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! With `--bootstrap-servers HOST:PORT` it runs on that Kafka cluster (Apache Kafka or
//! `sluice broker`) instead of the embedded log: the topics and the app id end in a run id
//! (`clicks-<run>` ...), so a rerun starts from empty topics.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::{Backend, Names, OnCluster, Res, Rng};
use serde::{Deserialize, Serialize};
use sluice::dsl::{Data, SessionWindows, StreamBuilder, Windowed, bincode_data};
use sluice::log::cluster::{ProducerSpec, TxnProducer};
use sluice::prelude::*;
use sluice::runtime::{AppConfig, ProcessingGuarantee};

const APP_ID: &str = "sessionizer";
const INPUT: &str = "clicks";
const OUTPUT: &str = "sessions";
const PARTITIONS: i32 = 3;
const USERS: u64 = 30;
const MINUTE: i64 = 60_000;
/// A session ends after this long without a click.
const GAP: i64 = 30 * MINUTE;
/// How late (in stream time) a click may still join its session.
const GRACE: i64 = 20 * MINUTE;
/// 2025-03-14T08:00:00Z in ms since the epoch: when the clickstream starts.
const START_MS: i64 = 1_741_939_200_000;
const PAGES: [&str; 12] = [
    "/",
    "/search",
    "/category/books",
    "/category/music",
    "/product/1017",
    "/product/2231",
    "/product/4410",
    "/product/5302",
    "/cart",
    "/checkout",
    "/account",
    "/help",
];

/// One click: the page a user opened (the user is the key, the time the timestamp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Click {
    page: String,
}

/// What a session holds: its clicks and the distinct pages they opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SessionStats {
    clicks: u64,
    pages: BTreeSet<String>,
}

bincode_data!(Click, SessionStats);

impl SessionStats {
    fn add(mut self, page: String) -> Self {
        self.clicks += 1;
        self.pages.insert(page);
        self
    }

    /// The aggregate of two sessions a late click joined.
    fn merge(mut self, other: SessionStats) -> Self {
        self.clicks += other.clicks;
        self.pages.extend(other.pages);
        self
    }
}

/// A generated click: who, when, which page, and when it reaches the topic.
#[derive(Debug, Clone)]
struct Event {
    user: String,
    time: i64,
    page: String,
    /// The click is produced in the order of this (its time plus a delay).
    arrival: i64,
}

/// The generated clickstream in arrival order, and how many clicks bridge two bursts.
fn generate(seed: u64) -> (Vec<Event>, usize) {
    let mut rng = Rng::new(seed);
    let mut events = Vec::new();
    let mut bridges = 0;
    for u in 0..USERS {
        let user = format!("user-{u:02}");
        let mut time = START_MS + rng.below_i64(90 * MINUTE);
        let bursts = 2 + rng.below_i64(5);
        for burst in 0..bursts {
            let clicks = 1 + rng.below_i64(15);
            for c in 0..clicks {
                let mut delay = 0;
                if c > 0 {
                    time += 5_000 + rng.below_i64(235_000);
                    // Slightly out of order: up to 90 s late.
                    if rng.below_i64(6) == 0 {
                        delay = rng.below_i64(90_000);
                    }
                }
                let page = rng.pick(&PAGES).to_string();
                events.push(Event {
                    user: user.clone(),
                    time,
                    page,
                    arrival: time + delay,
                });
            }
            if burst + 1 == bursts {
                break;
            }
            if rng.below_i64(4) == 0 {
                // A pause just over the gap with a click in its middle that arrives after
                // the next burst has begun: that click merges the two sessions.
                let idle = 31 * MINUTE + rng.below_i64(5 * MINUTE);
                let bridge = time + idle / 2;
                let next = time + idle;
                events.push(Event {
                    user: user.clone(),
                    time: bridge,
                    page: "/search".into(),
                    arrival: next + 1_000 + rng.below_i64(30_000),
                });
                bridges += 1;
                time = next;
            } else {
                time += 45 * MINUTE + rng.below_i64(135 * MINUTE);
            }
        }
    }
    // Stable: equal arrivals keep their generation order.
    events.sort_by_key(|e| e.arrival);
    (events, bridges)
}

/// A session's user and bounds (first and last click, inclusive).
type SessionKey = (String, i64, i64);

/// Brute force: each user's clicks by time, a new session wherever two are more than the
/// gap apart.
fn sessionize(events: &[Event]) -> BTreeMap<SessionKey, SessionStats> {
    let mut by_user: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
    for e in events {
        by_user.entry(&e.user).or_default().push((e.time, &e.page));
    }
    let mut sessions = BTreeMap::new();
    for (user, mut clicks) in by_user {
        clicks.sort();
        let mut current: Option<(i64, i64, SessionStats)> = None;
        for (time, page) in clicks {
            current = Some(match current {
                Some((start, end, stats)) if time - end <= GAP => {
                    (start, time, stats.add(page.to_string()))
                }
                done => {
                    if let Some((start, end, stats)) = done {
                        sessions.insert((user.to_string(), start, end), stats);
                    }
                    (time, time, SessionStats::default().add(page.to_string()))
                }
            });
        }
        if let Some((start, end, stats)) = current {
            sessions.insert((user.to_string(), start, end), stats);
        }
    }
    sessions
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / MINUTE as f64
}

fn main() -> Res<()> {
    let (seed, target) = common::seed_args(42)?;
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    target.run(&dir.join("log"), Sessions { seed, dir })
}

/// The example, on whichever cluster [`common::Target`] chose.
struct Sessions<'a> {
    seed: u64,
    /// Where the app's state goes.
    dir: &'a Path,
}

impl OnCluster for Sessions<'_> {
    type Output = ();
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<()> {
        run(cluster, names, self.seed, self.dir)
    }
}

fn run<C: Backend>(broker: &C, names: &Names, seed: u64, dir: &Path) -> Res<()> {
    // The clicks are from a fixed day in the past: keep them whatever their age.
    let topics = TopicConfig::default()
        .with_partitions(PARTITIONS)
        .with_retention_ms(None);
    common::create_topics(broker, names, &[INPUT, OUTPUT], &topics)?;
    let (input, output) = (names.of(INPUT), names.of(OUTPUT));

    let (events, bridges) = generate(seed);
    let late = events.iter().filter(|e| e.arrival > e.time).count();
    let mut producer = broker.producer(&ProducerSpec::idempotent("sessions-input"))?;
    let (keys, clicks) = (String::serde(), Click::serde());
    for e in &events {
        let click = Click {
            page: e.page.clone(),
        };
        let record = ProducerRecord::new(input.as_str(), clicks.serialize(&click)?)
            .with_key(keys.serialize(&e.user)?)
            .with_timestamp(e.time);
        producer.send(record)?;
    }
    producer.flush()?;
    producer.close()?;
    println!(
        "produced {} clicks of {USERS} users to `{INPUT}` ({late} out of order, {bridges} of \
         them late clicks that bridge two bursts)",
        events.len()
    );

    let b = StreamBuilder::new();
    b.stream::<String, Click>(&input)
        .group_by_key()
        .windowed_by_session(
            SessionWindows::with_inactivity_gap(Duration::from_millis(GAP as u64))
                .grace(Duration::from_millis(GRACE as u64)),
        )
        .aggregate(
            "click-sessions",
            SessionStats::default,
            |_, click: Click, stats: SessionStats| stats.add(click.page),
            |_, older, newer| older.merge(newer),
        )
        .to_stream()
        .to(&output);
    let topology = b.build()?;
    println!("{}", topology.describe());

    let config = AppConfig::default()
        .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .with_state_dir(dir.join("state"));
    let (metrics, took) = common::run_to_end(broker, &names.of(APP_ID), topology, config)?;

    // Apply the changes in order: a null value means the session with that key is gone
    // (it grew to new bounds or was merged into another).
    let (windowed, stats) = (Windowed::<String>::serde(), Option::<SessionStats>::serde());
    let mut sessions: BTreeMap<SessionKey, SessionStats> = BTreeMap::new();
    let (mut updates, mut removals) = (0, 0);
    let mut seen_starts: BTreeSet<(String, i64)> = BTreeSet::new();
    for r in common::read_committed(broker, &output)? {
        let w = windowed.deserialize(r.key.as_deref().unwrap_or_default())?;
        seen_starts.insert((w.key.clone(), w.start));
        let key = (w.key, w.start, w.end);
        match stats.deserialize_nullable(r.value.as_deref())? {
            Some(s) => {
                updates += 1;
                sessions.insert(key, s);
            }
            None => {
                removals += 1;
                sessions.remove(&key);
            }
        }
    }

    // A session start that the final sessions no longer have was merged into an earlier
    // session (the generator never moves a session's start otherwise: a burst's first
    // click is never late).
    let starts: BTreeSet<(&str, i64)> = sessions.keys().map(|(u, s, _)| (u.as_str(), *s)).collect();
    let merged = seen_starts
        .iter()
        .filter(|(u, s)| !starts.contains(&(u.as_str(), *s)))
        .count();

    println!("user      sessions  avg length  clicks  pages/session");
    let mut per_user: BTreeMap<&str, Vec<(i64, &SessionStats)>> = BTreeMap::new();
    for ((user, start, end), s) in &sessions {
        per_user.entry(user).or_default().push((end - start, s));
    }
    for (user, list) in &per_user {
        let n = list.len() as f64;
        let length: i64 = list.iter().map(|(len, _)| len).sum();
        let clicks: u64 = list.iter().map(|(_, s)| s.clicks).sum();
        let pages: usize = list.iter().map(|(_, s)| s.pages.len()).sum();
        println!(
            "{user:<8}  {:>8}  {:>6.1} min  {clicks:>6}  {:>13.1}",
            list.len(),
            minutes(length) / n,
            pages as f64 / n
        );
    }
    let total_clicks: u64 = sessions.values().map(|s| s.clicks).sum();
    let total_length: i64 = sessions.keys().map(|(_, start, end)| end - start).sum();
    println!(
        "total: {} sessions, {total_clicks} clicks, average length {:.1} min",
        sessions.len(),
        minutes(total_length) / sessions.len().max(1) as f64
    );
    println!(
        "`{OUTPUT}`: {updates} session updates and {removals} removals (null values); \
         {} clicks processed in {:.2} s, {} commits, {} dropped as late",
        metrics.records_processed,
        took.as_secs_f64(),
        metrics.commits,
        metrics.records_dropped
    );

    println!(
        "sessions merged into an earlier one by a late click: {merged} (bridging clicks: {bridges})"
    );
    let expected = sessionize(&events);
    let matches = sessions == expected;
    println!(
        "sessions equal the brute-force sessionization ({} sessions): {matches}",
        expected.len()
    );
    if !matches {
        common::print_differences(&expected, &sessions);
        return Err("the sessions differ from the brute-force sessionization".into());
    }
    if merged != bridges {
        return Err(format!("{merged} sessions merged, {bridges} expected").into());
    }
    Ok(())
}
