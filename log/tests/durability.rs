//! The fsync policies and the indexes: `always` makes every acknowledged append durable before
//! it returns, `interval:MS` catches up in the background, `never` leaves it to an explicit
//! flush; and index files that are missing or stale are rebuilt on open.

mod common;

use std::time::{Duration, Instant};

use sluice_log::batch::BatchBuilder;
use sluice_log::{Broker, BrokerConfig, FsyncPolicy, OffsetSpec, TopicConfig};

fn durable(broker: &Broker, topic: &str) -> (i64, i64) {
    let info = broker.topic_metadata(topic).expect("meta").partitions[0];
    (info.durable_offset, info.log_end_offset)
}

#[test]
fn fsync_policies_decide_when_acknowledged_data_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(
        dir.path(),
        BrokerConfig::default().with_flush_check_interval(Duration::from_millis(5)),
    )
    .expect("open");
    for (topic, policy) in [
        ("always", FsyncPolicy::Always),
        ("interval", FsyncPolicy::Interval(Duration::from_millis(20))),
        ("never", FsyncPolicy::Never),
    ] {
        broker
            .create_topic(topic, TopicConfig::default().with_fsync(policy))
            .expect("create");
        for i in 0..5 {
            broker
                .produce(
                    topic,
                    0,
                    common::batch(&[format!("{i}").into_bytes()], None, 1),
                )
                .expect("produce");
        }
    }
    // always: durable as soon as the produce returned.
    assert_eq!(durable(&broker, "always"), (5, 5));
    // interval: the maintenance thread catches up on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while durable(&broker, "interval").0 < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(durable(&broker, "interval"), (5, 5));
    // never: only an explicit flush makes it durable.
    assert_eq!(durable(&broker, "never"), (0, 5));
    assert_eq!(broker.flush_partition("never", 0).expect("flush"), 5);
    assert_eq!(durable(&broker, "never"), (5, 5));
}

#[test]
fn missing_or_stale_index_files_are_rebuilt_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = common::quiet_broker(dir.path());
        let config = TopicConfig::default()
            .with_segment_bytes(2048)
            .with_index_interval_bytes(200);
        broker.create_topic("t", config).expect("create");
        for i in 0..300i64 {
            let mut b = BatchBuilder::new();
            b.append(10_000 + i, None, Some(format!("{i:040}").as_bytes()), &[]);
            broker
                .produce("t", 0, b.build().expect("build"))
                .expect("produce");
        }
        broker.close().expect("close");
    }
    let part = dir.path().join("t-0");
    let mut logs: Vec<_> = std::fs::read_dir(&part)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() > 8, "the test should span many segments");
    // Each segment gets one kind of damage in turn.
    for (k, log) in logs.iter().enumerate() {
        let index = log.with_extension("index");
        match k % 4 {
            0 => std::fs::remove_file(&index).expect("remove"),
            1 => {
                // Stale but well-formed: one entry that points into the middle of a batch.
                let mut stale = 3u32.to_be_bytes().to_vec();
                stale.extend_from_slice(&5u32.to_be_bytes());
                std::fs::write(&index, stale).expect("scribble");
            }
            2 => std::fs::write(&index, [0xffu8; 13]).expect("scribble"),
            _ => std::fs::write(log.with_extension("timeindex"), [1u8; 5]).expect("scribble"),
        }
    }
    let broker = common::quiet_broker(dir.path());
    let all = common::read_all(&broker, "t", 0, 0);
    assert_eq!(all.len(), 300);
    for (i, (offset, value)) in all.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(&value[..], format!("{i:040}").as_bytes());
    }
    for probe in 0..300i64 {
        let found = broker
            .list_offsets("t", 0, OffsetSpec::Timestamp(10_000 + probe))
            .expect("list");
        assert_eq!(found.map(|l| l.offset), Some(probe));
        let read = broker.read("t", 0, probe, 1).expect("read");
        let first = sluice_log::batch::split_batches(read.records).expect("split");
        assert_eq!(
            first[0].base_offset(),
            probe,
            "a read from {probe} starts at the batch holding it"
        );
    }
}
