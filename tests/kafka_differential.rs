//! Differential (issue 12): the same topology, over the same input, gives the same output
//! on the embedded log, on `sluice broker` (over the Kafka protocol) and on Apache Kafka
//! 4.4: the same records (key, value, timestamp, headers) in the same order, on every
//! output topic. Every topic has one partition, so the order is deterministic: a task
//! reads its repartition topic in offset order, and merges the partitions of a
//! multi-input task by the smallest head timestamp (KIP-695's `max.task.idle`: it never
//! runs ahead of an input with records still to fetch). All input is produced before the
//! app starts, so the merge of a table topic with a stream topic is deterministic too.
//!
//! The topologies cover the DSL's operators whose output depends on record order:
//! - word count: `flat_map_values`, `group_by` (a repartition topic), `count` (a
//!   changelog), against an in-memory model of every update;
//! - windowed count: hopping `TimeWindows` with grace over out-of-order timestamps (late
//!   records dropped), its updates against a model and its final results
//!   (`suppress(until_window_closes)`) against the windows closed by the end of the input;
//! - stream-table joins (`join_table`, `left_join_table`) with table updates and deletes
//!   interleaved in time with the stream records, against a timestamp-ordered merge;
//! - `filter` -> `map_values` -> `select_key` -> `reduce` (a repartition topic), and
//!   `suppress(until_time_limit)` with a buffer that emits early when full.
//!
//! The embedded log's output is the reference; a difference prints the first differing
//! index and the records around it on both sides.

#[path = "../kafka/tests/support/mod.rs"]
mod support;

mod cluster_support;
mod splitmix;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use sluice::prelude::*;
use sluice::runtime::topology::Topology;
use sluice_kafka::{KafkaCluster, KafkaConfig};
use sluice_log::cluster::{Cluster, InternalTopic, InternalTopicKind, ProducerSpec, TxnProducer};
use splitmix::Rng;

const BOUND: Duration = Duration::from_secs(60);

/// Records per poll of the apps (1000 by default).
const MAX_POLL_RECORDS: usize = 50;

/// The first input timestamp: two hours ago (Kafka refuses timestamps more than an hour
/// ahead, and deletes by retention what is a week old), on a whole minute, so the windows
/// fall alike whatever the time of the run.
fn base_timestamp() -> i64 {
    (sluice_log::now_ms() - 2 * 3_600_000) / 60_000 * 60_000
}

/// An input record (UTF-8 key and value; no value: a tombstone).
#[derive(Debug, Clone)]
struct In {
    key: Option<String>,
    value: Option<String>,
    timestamp: i64,
}

/// An output record as read back, compared byte for byte.
#[derive(Clone, PartialEq, Eq)]
struct Out {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Out {
    /// What the model expects: UTF-8 key bytes (`suffix` appended: a window's bounds), a
    /// value, no headers.
    fn expect(key: &str, key_suffix: &[u8], value: Option<Vec<u8>>, timestamp: i64) -> Self {
        let mut k = key.as_bytes().to_vec();
        k.extend_from_slice(key_suffix);
        Self {
            key: Some(k),
            value,
            timestamp,
            headers: Vec::new(),
        }
    }
}

impl From<ConsumerRecord> for Out {
    fn from(r: ConsumerRecord) -> Self {
        Self {
            key: r.key.map(|b| b.to_vec()),
            value: r.value.map(|b| b.to_vec()),
            timestamp: r.timestamp,
            headers: r
                .headers
                .into_iter()
                .map(|h| (h.key, h.value.map(|b| b.to_vec())))
                .collect(),
        }
    }
}

/// Bytes for a reader: the printable ASCII prefix as text, then 8 bytes as a big-endian
/// u64, 16 as a window `[start,end)`, anything else in hex.
fn show(bytes: &Option<Vec<u8>>) -> String {
    let Some(bytes) = bytes else {
        return "null".into();
    };
    let text = bytes
        .iter()
        .take_while(|b| b.is_ascii_graphic() || **b == b' ')
        .count();
    let (head, rest) = bytes.split_at(text);
    let head = match (head.is_empty(), rest.is_empty()) {
        (true, false) => String::new(),
        _ => format!("{:?}", String::from_utf8_lossy(head)),
    };
    let rest = match rest.len() {
        0 => String::new(),
        8 => format!("u64:{}", u64::from_be_bytes(rest.try_into().expect("8"))),
        16 => {
            let start = i64::from_be_bytes(rest[..8].try_into().expect("8"));
            let end = i64::from_be_bytes(rest[8..].try_into().expect("8"));
            format!("[{start},{end})")
        }
        _ => format!(
            "0x{}",
            rest.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    };
    match (head.is_empty(), rest.is_empty()) {
        (false, false) => format!("{head}+{rest}"),
        _ => head + &rest,
    }
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ts={} key={} value={}",
            self.timestamp,
            show(&self.key),
            show(&self.value)
        )?;
        for (k, v) in &self.headers {
            write!(f, " header {k}={}", show(v))?;
        }
        Ok(())
    }
}

fn u64_value(n: u64) -> Option<Vec<u8>> {
    Some(n.to_be_bytes().to_vec())
}

/// `None` when `got` is `expected`; else where they first differ, with the records around
/// it on both sides.
fn difference(what: &str, expected: (&str, &[Out]), got: (&str, &[Out])) -> Option<String> {
    let ((left_name, left), (right_name, right)) = (expected, got);
    let first = (0..left.len().max(right.len())).find(|&i| left.get(i) != right.get(i))?;
    let mut out = format!(
        "{what}: {left_name} has {} records, {right_name} {}; they first differ at index {first}\n",
        left.len(),
        right.len()
    );
    for (name, records) in [(left_name, left), (right_name, right)] {
        out += &format!("  {name}:\n");
        let from = first.saturating_sub(3);
        for (i, record) in records.iter().enumerate().skip(from).take(first + 4 - from) {
            let mark = if i == first { ">" } else { " " };
            out += &format!("  {mark} [{i}] {record:?}\n");
        }
    }
    Some(out)
}

/// Topic names of one run: the application id, and the topics named after it.
struct Names {
    app: String,
}

impl Names {
    fn topic(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.app)
    }
}

/// A topology and its input.
struct Case {
    name: &'static str,
    /// Input topics (suffixes after the application id) and their records.
    inputs: Vec<(&'static str, Vec<In>)>,
    /// Output topics (suffixes), each compared in full.
    outputs: &'static [&'static str],
    /// The repartition topics the app creates (after the application id), upstream first.
    repartitions: &'static [&'static str],
    topology: fn(&Names) -> Topology,
}

impl Case {
    fn output(&self, suffix: &str) -> usize {
        self.outputs
            .iter()
            .position(|o| *o == suffix)
            .expect("an output")
    }
    fn input(&self, suffix: &str) -> &[In] {
        &self
            .inputs
            .iter()
            .find(|(t, _)| *t == suffix)
            .expect("an input")
            .1
    }
}

/// What a run read back: each output topic's records in order, and the app's metrics.
struct Run {
    outputs: Vec<Vec<Out>>,
    metrics: AppMetrics,
}

/// Creates the case's topics (one partition each) on `cluster`, produces its input, runs
/// its topology until the group has committed every input and repartition topic to its
/// end, stops it cleanly and reads every output topic read_committed.
fn run_on<C: Cluster>(cluster: &C, case: &Case) -> Run {
    let names = Names {
        app: support::unique(&format!("diff-{}", case.name)),
    };
    let single = InternalTopic {
        partitions: Some(1),
        kind: InternalTopicKind::Repartition,
    };
    for suffix in case
        .inputs
        .iter()
        .map(|(t, _)| *t)
        .chain(case.outputs.iter().copied())
    {
        cluster
            .create_internal_topic(&names.topic(suffix), &single)
            .expect("create topic");
    }
    let mut producer = cluster
        .producer(&ProducerSpec::idempotent(names.topic("input")))
        .expect("producer");
    for (suffix, records) in &case.inputs {
        let topic = names.topic(suffix);
        for r in records {
            let record = match (&r.key, &r.value) {
                (Some(key), None) => ProducerRecord::tombstone(topic.as_str(), key.clone()),
                (key, Some(value)) => {
                    let record = ProducerRecord::new(topic.as_str(), value.clone());
                    match key {
                        Some(key) => record.with_key(key.clone()),
                        None => record,
                    }
                }
                (None, None) => panic!("a tombstone needs a key"),
            };
            producer
                .send(record.with_partition(0).with_timestamp(r.timestamp))
                .expect("send");
        }
    }
    producer.flush().expect("flush");
    producer.close().expect("close");

    let topology = (case.topology)(&names);
    // Inputs first, then the repartition topics in the order records flow through them.
    let upstream_first: Vec<String> = case
        .inputs
        .iter()
        .map(|(t, _)| names.topic(t))
        .chain(case.repartitions.iter().map(|r| names.topic(r)))
        .collect();
    let sources: BTreeSet<String> = topology
        .for_application(&names.app)
        .expect("topology for the app")
        .sub_topologies()
        .iter()
        .flat_map(|s| s.source_topics.iter().cloned())
        .collect();
    assert_eq!(
        sources,
        upstream_first.iter().cloned().collect::<BTreeSet<_>>(),
        "{}: the case must list the app's repartition topics",
        case.name
    );

    let state = tempfile::tempdir().expect("state dir");
    let config = AppConfig::default()
        .with_state_dir(state.path())
        .with_commit_interval(Duration::from_millis(100))
        // Small polls: a task often has one input drained while the other has records,
        // so merging a table and a stream topic in time order relies on `max.task.idle`'s
        // lag check on each backend, not on one poll returning everything.
        .with_max_poll_records(MAX_POLL_RECORDS);
    let app = App::new(&names.app, topology, config)
        .expect("app")
        .start(cluster)
        .expect("start");
    assert!(
        app.wait_until_caught_up(BOUND).expect("the app failed"),
        "{}: the app did not catch up within {BOUND:?}",
        case.name
    );
    // `wait_until_caught_up` checks the app's source topics one by one in name order, so
    // it can see a repartition topic caught up just before the last input is committed
    // (with the records it causes downstream still to process). Checking upstream first
    // cannot be fooled so.
    if !cluster_support::committed_to_end(cluster, &names.app, &upstream_first) {
        eprintln!(
            "{}: wait_until_caught_up returned before every repartition topic was committed to its end",
            case.name
        );
        support::wait_until("every input committed, upstream first", BOUND, || {
            cluster_support::committed_to_end(cluster, &names.app, &upstream_first)
        });
    }
    let metrics = app.metrics();
    app.shutdown().expect("shutdown");
    let outputs = case
        .outputs
        .iter()
        .map(|suffix| {
            cluster_support::read_committed_to_end(cluster, &names.topic(suffix), BOUND)
                .into_iter()
                .map(Out::from)
                .collect()
        })
        .collect();
    Run { outputs, metrics }
}

/// Runs `case` on the embedded log, `sluice broker` and Apache Kafka (at once, each on its
/// own thread), asserts every output of the latter two is the embedded log's, record for
/// record, and returns the embedded log's run.
fn differential(case: &Case) -> Run {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let kafka_bootstrap = support::kafka_bootstrap();
    let started = std::time::Instant::now();
    let (embedded, sluice, kafka) = std::thread::scope(|s| {
        let embedded = s.spawn(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open");
            run_on(&broker, case)
        });
        let sluice = s.spawn(|| {
            let server = support::SluiceBroker::start();
            let cluster =
                KafkaCluster::connect(KafkaConfig::new(&server.bootstrap)).expect("connect");
            run_on(&cluster, case)
        });
        let kafka = s.spawn(|| {
            let cluster =
                KafkaCluster::connect(KafkaConfig::new(kafka_bootstrap)).expect("connect");
            run_on(&cluster, case)
        });
        let join = |h: std::thread::ScopedJoinHandle<'_, Run>, backend: &str| {
            h.join()
                .unwrap_or_else(|_| panic!("{}: the run on {backend} panicked", case.name))
        };
        (
            join(embedded, "the embedded log"),
            join(sluice, "sluice broker"),
            join(kafka, "Apache Kafka"),
        )
    });
    eprintln!(
        "{}: three backends in {:?}; records out {:?}; metrics: embedded {:?}, sluice broker {:?}, Apache Kafka {:?}",
        case.name,
        started.elapsed(),
        embedded.outputs.iter().map(Vec::len).collect::<Vec<_>>(),
        embedded.metrics,
        sluice.metrics,
        kafka.metrics,
    );
    let mut differences = Vec::new();
    for (backend, run) in [("sluice broker", &sluice), ("Apache Kafka", &kafka)] {
        for (i, topic) in case.outputs.iter().enumerate() {
            differences.extend(difference(
                &format!("{} output `{topic}`", case.name),
                ("the embedded log", &embedded.outputs[i]),
                (backend, &run.outputs[i]),
            ));
        }
        // A run that aborted processed some records twice, and counted their drops twice.
        if run.metrics.aborts == 0 && embedded.metrics.aborts == 0 {
            assert_eq!(
                run.metrics.records_dropped, embedded.metrics.records_dropped,
                "{}: records dropped on {backend}",
                case.name
            );
        }
    }
    assert!(
        differences.is_empty(),
        "the backends differ:\n{}",
        differences.join("\n")
    );
    for (i, topic) in case.outputs.iter().enumerate() {
        assert!(
            !embedded.outputs[i].is_empty(),
            "{}: output `{topic}` is empty",
            case.name
        );
    }
    embedded
}

/// Asserts `got` is what the model says, as `differential` compares backends.
fn assert_model(what: &str, expected: &[Out], got: &[Out]) {
    if let Some(d) = difference(what, ("the model", expected), ("the embedded log", got)) {
        panic!("{d}");
    }
}

// --- 1. Word count: group_by (repartition) and count (changelog) ---

fn word_count_case(base: i64) -> Case {
    let mut rng = Rng(0x5EED_0001);
    let lines = (0..400)
        .map(|i| {
            let words: Vec<String> = (0..1 + rng.below(6))
                .map(|_| format!("w{}", rng.below(30).min(rng.below(30))))
                .collect();
            In {
                key: None,
                value: Some(words.join(" ")),
                timestamp: base + i * 50 + rng.below_i64(400),
            }
        })
        .collect();
    Case {
        name: "wordcount",
        inputs: vec![("lines", lines)],
        outputs: &["counts"],
        repartitions: &["counts-repartition"],
        topology: |n| {
            let b = StreamBuilder::new();
            b.stream::<(), String>(&n.topic("lines"))
                .flat_map_values(|line| line.split(' ').map(str::to_string).collect::<Vec<_>>())
                .group_by(|_, word| word.clone())
                .count("counts")
                .to_stream()
                .to(&n.topic("counts"));
            b.build().expect("topology")
        },
    }
}

/// Every update of every word's count, in input order, with its line's timestamp.
fn word_count_model(lines: &[In]) -> Vec<Out> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for line in lines {
        for word in line.value.as_deref().expect("a line").split(' ') {
            let n = counts.entry(word).or_default();
            *n += 1;
            out.push(Out::expect(word, &[], u64_value(*n), line.timestamp));
        }
    }
    out
}

#[test]
fn word_count_is_the_same_on_every_log() {
    let case = word_count_case(base_timestamp());
    let run = differential(&case);
    assert_model(
        "word count",
        &word_count_model(case.input("lines")),
        &run.outputs[case.output("counts")],
    );
}

// --- 2. Hopping windows with grace over out-of-order timestamps, and their final results ---

fn windows() -> TimeWindows {
    TimeWindows::of(Duration::from_secs(10))
        .advance_by(Duration::from_secs(5))
        .grace(Duration::from_secs(4))
}

fn windowed_case(base: i64) -> Case {
    let mut rng = Rng(0x5EED_0002);
    let events = (0..2000)
        .map(|i| {
            // Most records a little out of order, one in ten late by 5 to 20 s: some of
            // those still fall in an open window, some only in closed ones (dropped).
            let delay = if rng.below(10) == 0 {
                5_000 + rng.below_i64(15_000)
            } else {
                rng.below_i64(1_500)
            };
            In {
                key: Some(format!("k{}", rng.below(8))),
                value: Some(format!("e{i}")),
                timestamp: base + 20_000 + i * 25 - delay,
            }
        })
        .collect();
    Case {
        name: "windowed",
        inputs: vec![("events", events)],
        outputs: &["updates", "final"],
        repartitions: &[],
        topology: |n| {
            let b = StreamBuilder::new();
            let counts = b
                .stream::<String, String>(&n.topic("events"))
                .group_by_key()
                .windowed_by(windows())
                .count("window-counts");
            counts.to_stream().to(&n.topic("updates"));
            counts
                .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
                .to_stream()
                .to(&n.topic("final"));
            b.build().expect("topology")
        },
    }
}

fn window_bounds(start: i64, end: i64) -> Vec<u8> {
    [start.to_be_bytes(), end.to_be_bytes()].concat()
}

/// Every update of every open window a record falls in (oldest window first), the
/// number of records dropped as late, and the final result of every window closed by
/// the end of the input (in key and window order).
fn windowed_model(events: &[In]) -> (Vec<Out>, u64, Vec<Out>) {
    let w = windows();
    let mut stream_time = i64::MIN;
    let mut counts: BTreeMap<(&str, i64), u64> = BTreeMap::new();
    let (mut updates, mut dropped) = (Vec::new(), 0);
    for e in events {
        let key = e.key.as_deref().expect("a key");
        stream_time = stream_time.max(e.timestamp);
        let open: Vec<i64> = w
            .starts_for(e.timestamp)
            .into_iter()
            .filter(|start| start + w.size_ms() + w.grace_ms() > stream_time)
            .collect();
        if open.is_empty() {
            dropped += 1;
        }
        for start in open {
            let n = counts.entry((key, start)).or_default();
            *n += 1;
            let bounds = window_bounds(start, start + w.size_ms());
            updates.push(Out::expect(key, &bounds, u64_value(*n), e.timestamp));
        }
    }
    let closed = counts
        .iter()
        .filter(|((_, start), _)| start + w.size_ms() + w.grace_ms() <= stream_time)
        .map(|((key, start), n)| {
            let bounds = window_bounds(*start, start + w.size_ms());
            // The timestamp is not modelled: the final results are compared without it.
            Out::expect(key, &bounds, u64_value(*n), 0)
        })
        .collect();
    (updates, dropped, closed)
}

#[test]
fn windowed_count_and_its_final_results_are_the_same_on_every_log() {
    let case = windowed_case(base_timestamp());
    let run = differential(&case);
    let (updates, dropped, closed) = windowed_model(case.input("events"));
    assert_model(
        "windowed count",
        &updates,
        &run.outputs[case.output("updates")],
    );
    assert!(dropped > 0, "the input has no record late past the grace");
    if run.metrics.aborts == 0 {
        assert_eq!(
            run.metrics.records_dropped, dropped,
            "records dropped as late"
        );
    }
    // Each window closed by the end of the input once, with its last count, in the order
    // the windows closed (the backends agree on it, checked above); here, as a set.
    let mut finals: Vec<Out> = run.outputs[case.output("final")]
        .iter()
        .map(|r| Out {
            timestamp: 0,
            ..r.clone()
        })
        .collect();
    finals.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    let mut closed = closed;
    closed.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    assert_model("final window results (as a set)", &closed, &finals);
}

// --- 3. Stream-table joins, table updates and deletes interleaved with the stream ---

fn join_case(base: i64) -> Case {
    let mut rng = Rng(0x5EED_0003);
    let (mut profiles, mut clicks) = (Vec::new(), Vec::new());
    for i in 0..1500 {
        // Slots 20 ms apart, each record up to 30 ms off its slot: the two topics are
        // interleaved in time and each is a little out of order. Table timestamps are even
        // and stream timestamps odd, so the merge by timestamp has no ties.
        let t = base + i * 20 + rng.below_i64(60) - 30;
        if rng.below(10) < 3 {
            let deleted = rng.below(7) == 0;
            profiles.push(In {
                key: Some(format!("u{}", rng.below(20))),
                value: (!deleted).then(|| format!("p{i}")),
                timestamp: t & !1,
            });
        } else {
            clicks.push(In {
                key: Some(format!("u{}", rng.below(24))),
                value: Some(format!("c{i}")),
                timestamp: t | 1,
            });
        }
    }
    Case {
        name: "join",
        inputs: vec![("profiles", profiles), ("clicks", clicks)],
        outputs: &["left", "inner"],
        repartitions: &[],
        topology: |n| {
            let b = StreamBuilder::new();
            let profiles = b.table::<String, String>(&n.topic("profiles"), "profiles");
            let clicks = b.stream::<String, String>(&n.topic("clicks"));
            clicks
                .left_join_table(&profiles, |_, click, profile: Option<String>| {
                    format!("{click}@{}", profile.as_deref().unwrap_or("-"))
                })
                .to(&n.topic("left"));
            clicks
                .join_table(&profiles, |_, click, profile: String| {
                    format!("{click}+{profile}")
                })
                .to(&n.topic("inner"));
            b.build().expect("topology")
        },
    }
}

/// The two inputs merged by the smallest head timestamp, each click joined with its
/// user's profile at that point: (left join, inner join).
fn join_model(profiles: &[In], clicks: &[In]) -> (Vec<Out>, Vec<Out>) {
    let mut table: BTreeMap<&str, &str> = BTreeMap::new();
    let (mut left, mut inner) = (Vec::new(), Vec::new());
    let (mut p, mut c) = (0, 0);
    while c < clicks.len() {
        if p < profiles.len() && profiles[p].timestamp < clicks[c].timestamp {
            let key = profiles[p].key.as_deref().expect("a key");
            match profiles[p].value.as_deref() {
                Some(v) => table.insert(key, v),
                None => table.remove(key),
            };
            p += 1;
            continue;
        }
        let (key, click) = (
            clicks[c].key.as_deref().expect("a key"),
            clicks[c].value.as_deref().expect("a click"),
        );
        let profile = table.get(key).copied();
        let value = format!("{click}@{}", profile.unwrap_or("-"));
        left.push(Out::expect(
            key,
            &[],
            Some(value.into_bytes()),
            clicks[c].timestamp,
        ));
        if let Some(profile) = profile {
            let value = format!("{click}+{profile}");
            inner.push(Out::expect(
                key,
                &[],
                Some(value.into_bytes()),
                clicks[c].timestamp,
            ));
        }
        c += 1;
    }
    (left, inner)
}

#[test]
fn stream_table_joins_are_the_same_on_every_log() {
    let case = join_case(base_timestamp());
    let run = differential(&case);
    let (left, inner) = join_model(case.input("profiles"), case.input("clicks"));
    assert_model("left join", &left, &run.outputs[case.output("left")]);
    assert_model("inner join", &inner, &run.outputs[case.output("inner")]);
}

// --- 4. filter, map_values, select_key, reduce; suppress until a time limit ---

fn reduce_case(base: i64) -> Case {
    let mut rng = Rng(0x5EED_0004);
    let readings = (0..1500)
        .map(|i| In {
            key: Some(format!("s{}", rng.below(12))),
            value: Some(if rng.below(10) == 0 {
                "bad".to_string()
            } else {
                rng.below(1000).to_string()
            }),
            timestamp: base + i * 30 + rng.below_i64(400),
        })
        .collect();
    Case {
        name: "reduce",
        inputs: vec![("readings", readings)],
        outputs: &["peaks", "limited"],
        repartitions: &["peaks-repartition"],
        topology: |n| {
            let b = StreamBuilder::new();
            let peaks = b
                .stream::<String, String>(&n.topic("readings"))
                .filter(|_, v| v != "bad")
                .map_values(|v| v.parse::<u64>().expect("a number"))
                .select_key(|sensor, _| region(sensor))
                .group_by_key()
                .reduce("peaks", u64::max);
            peaks.to_stream().to(&n.topic("peaks"));
            peaks
                .suppress(Suppressed::until_time_limit(
                    Duration::from_secs(2),
                    BufferConfig::max_records(3),
                ))
                .to_stream()
                .to(&n.topic("limited"));
            b.build().expect("topology")
        },
    }
}

/// A sensor's region: `s7` is in `r3`.
fn region(sensor: &str) -> String {
    let n: u64 = sensor[1..].parse().expect("a sensor");
    format!("r{}", n % 4)
}

/// Every update of every region's peak, in input order.
fn reduce_model(readings: &[In]) -> Vec<Out> {
    let mut peaks: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for r in readings {
        let Ok(v) = r.value.as_deref().expect("a value").parse::<u64>() else {
            continue;
        };
        let region = region(r.key.as_deref().expect("a key"));
        let peak = peaks.entry(region.clone()).or_insert(v);
        *peak = (*peak).max(v);
        out.push(Out::expect(&region, &[], u64_value(*peak), r.timestamp));
    }
    out
}

#[test]
fn filter_map_reduce_and_rate_limited_suppress_are_the_same_on_every_log() {
    let case = reduce_case(base_timestamp());
    let run = differential(&case);
    assert_model(
        "reduced peaks",
        &reduce_model(case.input("readings")),
        &run.outputs[case.output("peaks")],
    );
}

/// The comparison itself: equal sequences pass, and a difference in any field, or a
/// missing record, is reported at its index.
#[test]
fn a_difference_is_found_and_shown() {
    let record = |key: &str, n: u64, timestamp: i64| Out::expect(key, &[], u64_value(n), timestamp);
    let left = vec![record("a", 1, 10), record("b", 1, 20), record("a", 2, 30)];
    assert_eq!(difference("same", ("l", &left), ("r", &left.clone())), None);
    let mut later = left.clone();
    later[1].timestamp = 21;
    let shown = difference("ts", ("l", &left), ("r", &later)).expect("a difference");
    assert!(shown.contains("first differ at index 1"), "{shown}");
    assert!(
        shown.contains("> [1] ts=21 key=\"b\" value=u64:1"),
        "{shown}"
    );
    let mut header = left.clone();
    header[2].headers.push(("h".into(), None));
    assert!(difference("headers", ("l", &left), ("r", &header)).is_some());
    let shown = difference("short", ("l", &left), ("r", &left[..2])).expect("a difference");
    assert!(
        shown.contains("l has 3 records, r 2; they first differ at index 2"),
        "{shown}"
    );
    let window = Out::expect("k", &window_bounds(0, 10), None, 5);
    assert_eq!(format!("{window:?}"), "ts=5 key=\"k\"+[0,10) value=null");
}
