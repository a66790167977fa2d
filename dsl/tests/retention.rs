//! Windowed stores do not grow without bound: an app aggregating over time windows and
//! sessions deletes what its stores' retention has passed (every 1,024 records), and the
//! deletes reach the changelogs as tombstones, so the compacted changelogs shrink too.

use std::time::{Duration, Instant};

use sluice_dsl::runtime::AppConfig;
use sluice_dsl::runtime::app::{App, AppState};
use sluice_dsl::runtime::log::{
    Broker, BrokerConfig, Consumer, ConsumerConfig, IsolationLevel, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
};
use sluice_dsl::{SessionWindows, StreamBuilder, TimeWindows};

/// (records, tombstones) in `topic`, read_committed.
fn census(broker: &Broker, topic: &str) -> (usize, usize) {
    let mut consumer = Consumer::new(
        broker,
        ConsumerConfig::default()
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    );
    consumer
        .assign(vec![TopicPartition::new(topic, 0)])
        .expect("assign");
    let (mut records, mut tombstones) = (0, 0);
    loop {
        let batch = consumer.poll(Duration::from_millis(50)).expect("poll");
        if batch.is_empty() {
            return (records, tombstones);
        }
        records += batch.len();
        tombstones += batch.iter().filter(|r| r.value.is_none()).count();
    }
}

#[test]
fn windows_and_sessions_past_retention_are_deleted_from_the_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    broker
        .create_topic("events", TopicConfig::default())
        .expect("topic");
    let producer = Producer::new(&broker, ProducerConfig::default()).expect("producer");
    // 3,000 records over 50 keys, a second apart: each key's windows and sessions close
    // and pass their retention long before the end.
    for i in 0..3_000i64 {
        let record = ProducerRecord::new("events", "x")
            .with_key(format!("k{}", i % 50))
            .with_timestamp(i * 1_000);
        producer.send(record).expect("send");
    }
    producer.flush().expect("flush");

    let b = StreamBuilder::new();
    let grouped = b.stream::<String, String>("events").group_by_key();
    grouped
        .windowed_by(TimeWindows::of(Duration::from_secs(10)))
        .count("per-10s");
    grouped
        .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(5)))
        .count("sessions");
    let app = App::new(
        "retention",
        b.build().expect("topology"),
        AppConfig::default().with_state_dir(dir.path().join("state")),
    )
    .expect("app");
    let handle = app.start(&broker).expect("start");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut windows, mut sessions) = ((0, 0), (0, 0));
    while Instant::now() < deadline {
        assert_ne!(handle.state(), AppState::Error, "{:?}", handle.error());
        windows = census(&broker, "retention-per-10s-changelog");
        sessions = census(&broker, "retention-sessions-changelog");
        if windows.0 >= 3_000 && sessions.0 >= 3_000 && windows.1 > 0 && sessions.1 > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    handle.shutdown().expect("shutdown");
    // Each key sees a record every 50 s: a new 10 s window and a new session each time, and
    // everything but the last few per key is past retention when an expiry pass runs.
    assert!(windows.1 >= 1_000, "window tombstones: {windows:?}");
    assert!(sessions.1 >= 1_000, "session tombstones: {sessions:?}");
}
