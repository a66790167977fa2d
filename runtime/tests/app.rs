//! Apps on a broker, end to end: exactly-once wordcount across a repartition topic, clean
//! shutdown and restart without reprocessing, two instances sharing the work through
//! rebalances, a failing processor stopping the app with nothing half-committed, bad
//! records and missing or mis-partitioned topics.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::apps::{Agg, count_sum, wordcount_builder};
use common::{eventually, read_committed};
use sluice_log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use sluice_runtime::app::{App, AppState};
use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::{BigEndianSerde, StringSerde};
use sluice_runtime::topology::TopologyBuilder;
use sluice_runtime::{AppConfig, DeserializationHandler, Error};

const WAIT: Duration = Duration::from_secs(60);

fn broker(dir: &std::path::Path) -> Broker {
    Broker::open(dir, BrokerConfig::default()).expect("broker")
}

fn topic(broker: &Broker, name: &str, partitions: i32) {
    broker
        .create_topic(name, TopicConfig::default().with_partitions(partitions))
        .expect("create topic");
}

fn produce(broker: &Broker, topic: &str, records: &[(Option<&str>, Vec<u8>)]) {
    let producer = Producer::new(broker, ProducerConfig::default()).expect("producer");
    for (key, value) in records {
        let mut r = ProducerRecord::new(topic, value.clone());
        if let Some(k) = key {
            r = r.with_key(k.to_string());
        }
        producer.send(r).expect("send");
    }
    producer.flush().expect("flush");
}

/// The last count per word in `word-counts`, and how many records it holds.
fn word_counts(broker: &Broker) -> (BTreeMap<String, u64>, usize) {
    let records = read_committed(broker, "word-counts");
    let mut last = BTreeMap::new();
    for r in &records {
        let word = String::from_utf8(r.key.as_deref().unwrap_or_default().to_vec()).expect("utf8");
        let count = u64::from_be_bytes(
            r.value
                .as_deref()
                .expect("value")
                .try_into()
                .expect("8 bytes"),
        );
        last.insert(word, count);
    }
    (last, records.len())
}

fn config(state: &std::path::Path) -> AppConfig {
    AppConfig::default()
        .with_state_dir(state)
        .with_commit_interval(Duration::from_millis(50))
}

#[test]
fn wordcount_is_exact_across_a_repartition_topic_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(&dir.path().join("log"));
    topic(&broker, "text-input", 2);
    topic(&broker, "word-counts", 2);
    let lines = ["the quick brown fox", "the lazy dog", "The end the END"];
    let input: Vec<(Option<&str>, Vec<u8>)> = lines
        .iter()
        .map(|l| (None, l.as_bytes().to_vec()))
        .collect();
    produce(&broker, "text-input", &input);
    let topology = wordcount_builder().build().expect("topology");
    let app = App::new("wc", topology.clone(), config(&dir.path().join("state"))).expect("app");
    let handle = app.start(&broker).expect("start");
    assert!(
        handle.wait_for_state(AppState::Running, WAIT),
        "state {:?}",
        handle.state()
    );
    let words: usize = lines.iter().map(|l| l.split_whitespace().count()).sum();
    assert!(
        eventually(WAIT, || word_counts(&broker).1 == words),
        "{:?}",
        word_counts(&broker)
    );
    handle.shutdown().expect("clean shutdown");
    let (counts, _) = word_counts(&broker);
    assert_eq!(counts["the"], 4);
    assert_eq!(counts["end"], 2);
    assert_eq!(counts["fox"], 1);

    // A restart resumes from the committed offsets and the local state: more input counts
    // on from where it was, and nothing is processed twice.
    produce(&broker, "text-input", &[(None, b"the fox".to_vec())]);
    let handle = app.start(&broker).expect("restart");
    assert!(eventually(WAIT, || word_counts(&broker).1 == words + 2));
    let metrics = handle.metrics();
    handle.shutdown().expect("clean shutdown");
    let (counts, total) = word_counts(&broker);
    assert_eq!((counts["the"], counts["fox"], total), (5, 2, words + 2));
    assert_eq!(
        metrics.records_restored, 0,
        "a clean restart restores nothing"
    );
}

#[test]
fn an_app_writes_its_declared_internal_topics_under_its_own_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(&dir.path().join("log"));
    topic(&broker, "text-input", 2);
    topic(&broker, "word-counts", 2);
    produce(&broker, "text-input", &[(None, b"a b a".to_vec())]);
    let mut builder = wordcount_builder();
    builder.declare_internal_topic("words-repartition");
    let app = App::new(
        "owner",
        builder.build().expect("topology"),
        config(&dir.path().join("state")),
    )
    .expect("app");
    assert!(
        app.topology()
            .internal_topics()
            .contains("owner-words-repartition")
    );
    let handle = app.start(&broker).expect("start");
    assert!(eventually(WAIT, || word_counts(&broker).1 == 3));
    handle.shutdown().expect("clean shutdown");
    assert_eq!(word_counts(&broker).0["a"], 2);
    assert!(broker.topic_metadata("owner-words-repartition").is_ok());
    assert!(
        broker.topic_metadata("words-repartition").is_err(),
        "the undeclared name is not used"
    );
}

#[test]
fn two_instances_share_the_work_and_rebalance_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(&dir.path().join("log"));
    topic(&broker, "in", 4);
    topic(&broker, "out", 4);
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let batch = |round: i64| -> Vec<(Option<&str>, Vec<u8>)> {
        keys.iter()
            .map(|k| (Some(*k), (round * 10).to_be_bytes().to_vec()))
            .collect()
    };
    let cfg = |name: &str| {
        config(&dir.path().join(name)).with_heartbeat_interval(Duration::from_millis(20))
    };
    let first = App::new("agg", count_sum("in", "out"), cfg("one")).expect("app");
    let restored = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let heard = restored.clone();
    let listener: sluice_runtime::config::RestoreListener =
        std::sync::Arc::new(move |p| heard.lock().push(p.clone()));
    let second = App::new(
        "agg",
        count_sum("in", "out"),
        cfg("two").with_restore_listener(listener),
    )
    .expect("app");
    let a = first.start(&broker).expect("first");
    produce(&broker, "in", &batch(1));
    let outputs = |n: usize| eventually(WAIT, || read_committed(&broker, "out").len() == n);
    assert!(outputs(8));
    let b = second.start(&broker).expect("second");
    for round in 2..=4 {
        produce(&broker, "in", &batch(round));
    }
    assert!(outputs(32), "got {}", read_committed(&broker, "out").len());
    // The tasks the second instance took were restored from their changelogs first (its
    // RocksDB was empty): the listener heard each restore reach the changelog's end.
    let progress = restored.lock().clone();
    assert!(!b.tasks().is_empty() && !a.tasks().is_empty());
    assert!(
        progress
            .iter()
            .any(|p| p.applied > 0 && p.position == p.end),
        "{progress:?}"
    );
    assert!(b.metrics().records_restored > 0);
    b.shutdown().expect("second leaves");
    produce(&broker, "in", &batch(5));
    assert!(outputs(40), "got {}", read_committed(&broker, "out").len());
    assert_eq!(a.state(), AppState::Running);
    a.shutdown().expect("first leaves");
    // Per key: the outputs are the running aggregates 1..=5, in order, once each.
    let mut per_key: BTreeMap<String, Vec<Agg>> = BTreeMap::new();
    for r in read_committed(&broker, "out") {
        let key = String::from_utf8(r.key.as_deref().unwrap_or_default().to_vec()).expect("utf8");
        let (agg, _): (Agg, usize) = bincode::serde::decode_from_slice(
            r.value.as_deref().expect("value"),
            bincode::config::standard(),
        )
        .expect("agg");
        per_key.entry(key).or_default().push(agg);
    }
    for key in keys {
        let want: Vec<Agg> = (1..=5)
            .map(|n: i64| Agg {
                count: n as u64,
                sum: (1..=n).map(|r| r * 10).sum(),
            })
            .collect();
        assert_eq!(per_key[key], want, "key {key}");
    }
}

/// Fails on the value "boom": by error or by panic.
#[derive(Debug)]
struct Fragile {
    panic: bool,
}

impl Processor<String, String> for Fragile {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> ProcessResult {
        if r.value == "boom" {
            if self.panic {
                panic!("cannot handle {}", r.value);
            }
            return Err(format!("cannot handle {}", r.value).into());
        }
        ctx.forward(r)?;
        Ok(())
    }
}

fn fragile(panic: bool) -> sluice_runtime::topology::Topology {
    let mut b = TopologyBuilder::new();
    b.add_source("src", &["in"], StringSerde, StringSerde)
        .expect("source");
    b.add_processor("fragile", &["src"], move || Fragile { panic })
        .expect("processor");
    b.add_sink("sink", "out", &["fragile"], StringSerde, StringSerde)
        .expect("sink");
    b.build().expect("topology")
}

#[test]
fn a_failing_processor_stops_the_app_with_nothing_half_committed() {
    for panic in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = broker(&dir.path().join("log"));
        topic(&broker, "in", 1);
        topic(&broker, "out", 1);
        let input: Vec<(Option<&str>, Vec<u8>)> = ["ok1", "ok2", "boom", "ok3"]
            .iter()
            .map(|v| (Some("k"), v.as_bytes().to_vec()))
            .collect();
        // A long commit interval: the good records are in the same transaction as the bad.
        let cfg = config(&dir.path().join("state")).with_commit_interval(Duration::from_secs(30));
        let app = App::new("fragile", fragile(panic), cfg).expect("app");
        let handle = app.start(&broker).expect("start");
        produce(&broker, "in", &input);
        assert!(
            handle.wait_for_state(AppState::Error, WAIT),
            "state {:?}",
            handle.state()
        );
        let message = handle.error().expect("error text");
        assert!(
            message.contains("processor `fragile` failed on in-0 at offset 2")
                && message.contains("cannot handle boom"),
            "{message}"
        );
        match handle.wait() {
            Err(Error::ProcessorFailed {
                processor, offset, ..
            }) => {
                assert_eq!((processor.as_str(), offset), ("fragile", 2));
            }
            other => panic!("expected ProcessorFailed, got {other:?}"),
        }
        assert!(
            read_committed(&broker, "out").is_empty(),
            "output of the failed transaction is visible"
        );
        let committed = broker
            .offset_fetch(
                "fragile",
                &[sluice_log::TopicPartition::new("in", 0)],
                false,
            )
            .expect("offsets");
        assert_eq!(
            committed[0].1, None,
            "input offsets of the failed transaction committed"
        );
    }
}

#[test]
fn bad_records_fail_skip_or_go_to_the_dead_letter_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(&dir.path().join("log"));
    topic(&broker, "in", 1);
    topic(&broker, "out", 1);
    // Values must be 8-byte big-endian i64s; the second record is 3 bytes.
    produce(
        &broker,
        "in",
        &[
            (Some("a"), 1i64.to_be_bytes().to_vec()),
            (Some("a"), b"bad".to_vec()),
            (Some("a"), 2i64.to_be_bytes().to_vec()),
        ],
    );
    let run = |id: &str, handler: DeserializationHandler| {
        let cfg = config(&dir.path().join(id)).with_deserialization_handler(handler);
        App::new(id, count_sum("in", "out"), cfg)
            .expect("app")
            .start(&broker)
            .expect("start")
    };
    let failing = run("fails", DeserializationHandler::Fail);
    assert!(failing.wait_for_state(AppState::Error, WAIT));
    let message = failing.error().expect("error");
    assert!(
        message.contains("cannot deserialize the record at in-0 offset 1"),
        "{message}"
    );
    drop(failing);

    let dlq = run(
        "dlq",
        DeserializationHandler::DeadLetter {
            topic: "in-dlq".into(),
        },
    );
    assert!(eventually(WAIT, || read_committed(&broker, "in-dlq").len() == 1));
    let dead = &read_committed(&broker, "in-dlq")[0];
    assert_eq!(dead.value.as_deref(), Some(&b"bad"[..]));
    let header = |k: &str| {
        dead.headers
            .iter()
            .find(|h| h.key == k)
            .and_then(|h| h.value.clone())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    assert_eq!(header("sluice.offset").as_deref(), Some("1"));
    assert_eq!(header("sluice.topic").as_deref(), Some("in"));
    assert!(eventually(WAIT, || read_committed(&broker, "out").len() == 2));
    dlq.shutdown().expect("shutdown");
}

#[test]
fn missing_and_mis_partitioned_topics_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(&dir.path().join("log"));
    let app = App::new("m", count_sum("in", "out"), config(&dir.path().join("s"))).expect("app");
    let err = app.start(&broker).expect_err("no source topic");
    assert_eq!(
        err.to_string(),
        "source topic `in` does not exist: create it before starting the app"
    );
    topic(&broker, "in", 2);
    let err = app.start(&broker).expect_err("no sink topic");
    assert!(err.to_string().starts_with("sink topic `out`"), "{err}");

    topic(&broker, "left", 2);
    topic(&broker, "right", 3);
    topic(&broker, "out", 1);
    let mut b = TopologyBuilder::new();
    b.add_source::<String, i64>("s", &["left", "right"], StringSerde, BigEndianSerde)
        .expect("source");
    b.add_sink::<String, i64>("o", "out", &["s"], StringSerde, BigEndianSerde)
        .expect("sink");
    let app = App::new(
        "co",
        b.build().expect("topology"),
        config(&dir.path().join("c")),
    )
    .expect("app");
    let err = app.start(&broker).expect_err("co-partitioning");
    assert_eq!(
        err.to_string(),
        "sub-topology 0 reads co-partitioned topics with different partition counts: left=2, right=3"
    );
    assert!(App::new("bad id!", count_sum("in", "out"), AppConfig::default()).is_err());
    assert!(
        App::new(
            "x",
            count_sum("in", "out"),
            AppConfig::default().with_num_threads(0)
        )
        .is_err()
    );
}

/// Panics when made, or when closed.
#[derive(Debug)]
struct Touchy {
    panic_on_close: bool,
}

impl Processor<String, String> for Touchy {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> ProcessResult {
        ctx.forward(r)?;
        Ok(())
    }
    fn close(&mut self) {
        if self.panic_on_close {
            panic!("close failed");
        }
    }
}

#[test]
fn panics_outside_process_stop_the_app_or_are_contained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(&dir.path().join("log"));
    topic(&broker, "in", 2);
    topic(&broker, "out", 2);
    let build = |factory_panics: bool, panic_on_close: bool| {
        let mut b = TopologyBuilder::new();
        b.add_source("src", &["in"], StringSerde, StringSerde)
            .expect("source");
        b.add_processor("touchy", &["src"], move || {
            assert!(!factory_panics, "factory failed");
            Touchy { panic_on_close }
        })
        .expect("processor");
        b.add_sink("sink", "out", &["touchy"], StringSerde, StringSerde)
            .expect("sink");
        b.build().expect("topology")
    };
    // A factory that panics: the app stops in Error instead of losing a thread silently.
    let cfg = config(&dir.path().join("a")).with_num_threads(2);
    let handle = App::new("touchy", build(true, false), cfg)
        .expect("app")
        .start(&broker)
        .expect("start");
    assert!(
        handle.wait_for_state(AppState::Error, WAIT),
        "state {:?}",
        handle.state()
    );
    assert!(
        handle.error().expect("error").contains("factory failed"),
        "{:?}",
        handle.error()
    );
    assert!(handle.wait().is_err());
    // A close that panics is logged; the shutdown still commits and completes.
    let cfg = config(&dir.path().join("b")).with_num_threads(2);
    let handle = App::new("touchy2", build(false, true), cfg)
        .expect("app")
        .start(&broker)
        .expect("start");
    produce(&broker, "in", &[(Some("k"), b"v".to_vec())]);
    assert!(eventually(WAIT, || read_committed(&broker, "out").len() == 1));
    handle
        .shutdown()
        .expect("clean shutdown despite the panicking close");
}

/// The log start of every partition of `topic`.
fn log_starts(broker: &Broker, topic: &str) -> Vec<i64> {
    broker
        .topic_metadata(topic)
        .expect("topic")
        .partitions
        .iter()
        .map(|p| p.log_start_offset)
        .collect()
}

#[test]
fn only_repartition_topics_the_app_owns_are_purged() {
    for declared in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = broker(&dir.path().join("log"));
        topic(&broker, "text-input", 2);
        topic(&broker, "word-counts", 2);
        let lines: Vec<(Option<&str>, Vec<u8>)> = (0..20)
            .map(|i| (None, format!("w{} w{} x", i % 3, i % 5).into_bytes()))
            .collect();
        produce(&broker, "text-input", &lines);
        let mut builder = wordcount_builder();
        if declared {
            builder.declare_internal_topic("words-repartition");
        }
        let app = App::new(
            "purger",
            builder.build().expect("topology"),
            config(&dir.path().join("state")).with_repartition_purge_interval(Duration::ZERO),
        )
        .expect("app");
        let handle = app.start(&broker).expect("start");
        assert!(handle.wait_until_caught_up(WAIT).expect("caught up"));
        handle.shutdown().expect("clean shutdown");
        assert_eq!(word_counts(&broker).0["x"], 20);
        if declared {
            // The app's own topic: deleted up to what the group committed.
            let starts = log_starts(&broker, "purger-words-repartition");
            assert!(starts.iter().all(|&s| s > 0), "{starts:?}");
        } else {
            // A topic the user named, though the app both writes and reads it: never purged.
            assert_eq!(log_starts(&broker, "words-repartition"), [0, 0]);
        }
    }
}
