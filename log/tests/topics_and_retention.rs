//! Topics (names, create, delete, partition increase, persisted configs), produce-side
//! validation, ListOffsets by timestamp, and retention by size and time.

mod common;

use std::time::{Duration, Instant};

use sluice_log::batch::BatchBuilder;
use sluice_log::{Broker, BrokerConfig, Error, FsyncPolicy, OffsetSpec, TopicConfig, now_ms};

#[test]
fn topic_names_follow_kafkas_rules_and_never_touch_the_filesystem_when_bad() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let broker = common::quiet_broker(&data);
    let long = "x".repeat(250);
    for bad in [
        "",
        ".",
        "..",
        "../etc",
        "a/b",
        "with space",
        "tab\t",
        "ümlaut",
        long.as_str(),
    ] {
        let result = broker.create_topic(bad, TopicConfig::default());
        assert!(
            matches!(result, Err(Error::InvalidTopicName { .. })),
            "{bad:?} gave {result:?}"
        );
    }
    assert!(
        !root.path().join("etc-0").exists(),
        "a bad name reached the filesystem"
    );
    assert_eq!(
        std::fs::read_dir(root.path()).expect("ls").count(),
        1,
        "only the data dir exists"
    );
    for good in ["a", "a.b_c-D9", &"y".repeat(249)] {
        broker
            .create_topic(good, TopicConfig::default())
            .expect(good);
    }
    let user_topics = broker
        .metadata()
        .into_iter()
        .filter(|t| !t.internal)
        .count();
    assert_eq!(user_topics, 3);
}

#[test]
fn create_delete_and_grow_topics_and_keep_configs_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = common::quiet_broker(dir.path());
        let config = TopicConfig::default()
            .with_partitions(2)
            .with_retention_ms(Some(60_000))
            .with_retention_bytes(Some(1 << 20))
            .with_segment_bytes(1 << 16);
        broker
            .create_topic("orders", config.clone())
            .expect("create");
        assert!(matches!(
            broker.create_topic("orders", config),
            Err(Error::TopicExists { .. })
        ));
        broker.create_partitions("orders", 4).expect("grow");
        let shrink = broker.create_partitions("orders", 3);
        match shrink {
            Err(e @ Error::InvalidPartitions { .. }) => {
                assert!(e.to_string().contains("only grow"), "{e}")
            }
            other => panic!("shrinking gave {other:?}"),
        }
        assert!(matches!(
            broker.create_partitions("nope", 3),
            Err(Error::UnknownTopic { .. })
        ));
        broker
            .produce(
                "orders",
                3,
                common::batch(&[b"on the new partition".to_vec()], None, 1),
            )
            .expect("produce");
        broker
            .create_topic("gone", TopicConfig::default())
            .expect("create");
        broker
            .produce("gone", 0, common::batch(&[b"old".to_vec()], None, 1))
            .expect("produce");
        broker.delete_topic("gone").expect("delete");
        assert!(!dir.path().join("gone-0").exists());
        assert!(matches!(
            broker.produce("gone", 0, common::batch(&[b"x".to_vec()], None, 1)),
            Err(Error::UnknownTopic { .. })
        ));
        assert!(matches!(
            broker.delete_topic("gone"),
            Err(Error::UnknownTopic { .. })
        ));
    }
    let broker = common::quiet_broker(dir.path());
    let meta = broker.topic_metadata("orders").expect("metadata");
    assert_eq!(meta.partitions.len(), 4);
    assert_eq!(meta.config.partitions, 4);
    assert_eq!(meta.config.retention_ms, Some(60_000));
    assert_eq!(meta.config.retention_bytes, Some(1 << 20));
    assert_eq!(meta.partitions[3].log_end_offset, 1);
    assert!(matches!(
        broker.topic_metadata("gone"),
        Err(Error::UnknownTopic { .. })
    ));
    // A re-created topic starts empty.
    broker
        .create_topic("gone", TopicConfig::default())
        .expect("re-create");
    assert_eq!(
        broker.topic_metadata("gone").expect("metadata").partitions[0].log_end_offset,
        0
    );
}

#[test]
fn a_second_broker_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = common::quiet_broker(dir.path());
    let second = Broker::open(dir.path(), BrokerConfig::default());
    assert!(
        matches!(second, Err(ref e @ Error::DataDirInUse { .. }) if e.to_string().contains("in use")),
        "{second:?}"
    );
    // close releases the directory even while handles of the first broker live on.
    let stale = first.clone();
    first.close().expect("close");
    let third = Broker::open(dir.path(), BrokerConfig::default()).expect("reopen after close");
    assert!(matches!(
        stale.create_topic("t", TopicConfig::default()),
        Err(Error::Closed(_))
    ));
    third
        .create_topic("t", TopicConfig::default())
        .expect("create on the new broker");
}

#[test]
fn produce_rejects_bad_batches_with_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_max_message_bytes(1000))
        .expect("create");
    let good = common::batch(&[b"v".to_vec()], None, 1);
    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let err = broker
        .produce("t", 0, corrupt.into())
        .expect_err("corrupt batch");
    assert!(
        matches!(err, Error::InvalidBatch { ref topic, partition: 0, .. } if topic == "t"),
        "{err}"
    );
    assert!(err.to_string().contains("crc"), "{err}");
    let big = common::batch(&[vec![7u8; 2000]], None, 1);
    assert!(matches!(
        broker.produce("t", 0, big),
        Err(Error::RecordTooLarge { max: 1000, .. })
    ));
    let mut control = BatchBuilder::new().with_control(true);
    control.append(1, Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0, 0, 0]), &[]);
    let control = control.build().expect("build");
    assert!(matches!(
        broker.produce("t", 0, control),
        Err(Error::UnsupportedBatch { .. })
    ));
    assert!(matches!(
        broker.produce("t", 7, good.clone()),
        Err(Error::UnknownPartition { partitions: 1, .. })
    ));
    assert_eq!(
        broker
            .produce("t", 0, good)
            .expect("good batch")
            .base_offset,
        0
    );
}

#[test]
fn list_offsets_finds_earliest_latest_and_by_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .with_segment_bytes(1024)
                .with_index_interval_bytes(128),
        )
        .expect("create");
    // Records 0..200 with timestamps 1000 + 10 * offset, in batches of 5.
    for b in 0..40 {
        let mut builder = BatchBuilder::new();
        for i in 0..5 {
            let offset = b * 5 + i;
            builder.append(
                1000 + 10 * offset,
                None,
                Some(format!("{offset:050}").as_bytes()),
                &[],
            );
        }
        broker
            .produce("t", 0, builder.build().expect("build"))
            .expect("produce");
    }
    let lookup = |spec| {
        broker
            .list_offsets("t", 0, spec)
            .expect("list")
            .map(|l| (l.offset, l.timestamp))
    };
    assert!(broker.topic_metadata("t").expect("meta").partitions[0].segments > 3);
    assert_eq!(lookup(OffsetSpec::Earliest), Some((0, None)));
    assert_eq!(lookup(OffsetSpec::Latest), Some((200, None)));
    assert_eq!(lookup(OffsetSpec::Timestamp(0)), Some((0, Some(1000))));
    assert_eq!(lookup(OffsetSpec::Timestamp(1555)), Some((56, Some(1560))));
    assert_eq!(lookup(OffsetSpec::Timestamp(2990)), Some((199, Some(2990))));
    assert_eq!(lookup(OffsetSpec::Timestamp(2991)), None);
}

fn fill(broker: &Broker, batches: usize, timestamp: i64) {
    for i in 0..batches {
        let values: Vec<Vec<u8>> = (0..4)
            .map(|j| format!("{i}-{j}-{:0100}", 0).into_bytes())
            .collect();
        broker
            .produce("t", 0, common::batch(&values, None, timestamp))
            .expect("produce");
    }
}

#[test]
fn size_retention_deletes_the_oldest_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = common::quiet_broker(dir.path());
        let config = TopicConfig::default()
            .with_segment_bytes(2048)
            .with_retention_bytes(Some(5000));
        broker.create_topic("t", config).expect("create");
        fill(&broker, 60, now_ms());
        let before = broker.topic_metadata("t").expect("meta").partitions[0];
        assert_eq!(before.log_start_offset, 0);
        let deleted = broker.run_retention().expect("retention");
        assert!(deleted > 0);
        let after = broker.topic_metadata("t").expect("meta").partitions[0];
        assert!(after.log_start_offset > 0);
        assert_eq!(after.log_end_offset, before.log_end_offset);
        assert!(
            after.size_bytes < 5000 + 2048,
            "{} bytes kept",
            after.size_bytes
        );
        match broker.read("t", 0, 0, 1024) {
            Err(Error::OffsetOutOfRange {
                offset: 0,
                log_start,
                ..
            }) => assert_eq!(log_start, after.log_start_offset),
            other => panic!("reading below the log start gave {other:?}"),
        }
        let kept = common::read_all(&broker, "t", 0, after.log_start_offset);
        assert_eq!(
            kept.len() as i64,
            after.log_end_offset - after.log_start_offset
        );
        assert_eq!(kept[0].0, after.log_start_offset);
    }
    let broker = common::quiet_broker(dir.path());
    let reopened = broker.topic_metadata("t").expect("meta").partitions[0];
    assert!(
        reopened.log_start_offset > 0,
        "the log start survives a restart"
    );
}

#[test]
fn time_retention_runs_in_the_background_and_keeps_recent_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(
        dir.path(),
        BrokerConfig::default().with_retention_check_interval(Duration::from_millis(20)),
    )
    .expect("open");
    let config = TopicConfig::default()
        .with_segment_bytes(2048)
        .with_retention_ms(Some(60_000));
    broker.create_topic("t", config).expect("create");
    let day = 24 * 3600 * 1000;
    fill(&broker, 30, now_ms() - 10 * day);
    let old_end = broker.topic_metadata("t").expect("meta").partitions[0].log_end_offset;
    fill(&broker, 30, now_ms());
    let deadline = Instant::now() + Duration::from_secs(20);
    let start = loop {
        let info = broker.topic_metadata("t").expect("meta").partitions[0];
        if info.log_start_offset > 0 || Instant::now() > deadline {
            break info.log_start_offset;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(start > 0, "the background cleaner deleted nothing");
    assert!(
        start <= old_end,
        "recent data was deleted: log start {start}, old data ended at {old_end}"
    );
    let recent = common::read_all(&broker, "t", 0, old_end);
    assert_eq!(recent.len(), 120);
}

#[test]
fn the_broker_only_touches_directories_it_made() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("notes.txt"), "mine").expect("write");
    let refused = Broker::open(root.path(), BrokerConfig::default());
    assert!(
        matches!(refused, Err(Error::IllegalState(ref m)) if m.contains("holds no sluice data")),
        "{refused:?}"
    );

    let data = tempfile::tempdir().expect("tempdir");
    drop(common::quiet_broker(data.path()));
    // Directories shaped like partitions of unknown topics: one holds only log files (a
    // leftover of an interrupted delete), one holds something else.
    let leftover = data.path().join("old-0");
    std::fs::create_dir(&leftover).expect("mkdir");
    std::fs::write(leftover.join("00000000000000000000.log"), b"").expect("write");
    let users = data.path().join("project-2");
    std::fs::create_dir(&users).expect("mkdir");
    std::fs::write(users.join("thesis.tex"), b"precious").expect("write");
    drop(common::quiet_broker(data.path()));
    assert!(
        !leftover.exists(),
        "a leftover partition directory was kept"
    );
    assert!(
        users.join("thesis.tex").exists(),
        "the broker deleted a directory it did not make"
    );
}

#[test]
fn everything_is_durable_after_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = common::quiet_broker(dir.path());
        broker
            .create_topic("t", TopicConfig::default().with_fsync(FsyncPolicy::Never))
            .expect("create");
        broker
            .produce(
                "t",
                0,
                common::batch(&[b"a".to_vec(), b"b".to_vec()], None, 1),
            )
            .expect("produce");
        assert_eq!(
            broker.topic_metadata("t").expect("meta").partitions[0].durable_offset,
            0
        );
        assert_eq!(broker.flush_partition("t", 0).expect("flush"), 2);
    }
    let broker = common::quiet_broker(dir.path());
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!((info.log_end_offset, info.durable_offset), (2, 2));
}

#[test]
fn delete_records_moves_the_log_start_for_every_reader_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = common::quiet_broker(dir.path());
        broker
            .create_topic("trim", TopicConfig::default())
            .expect("create");
        for i in 0..10 {
            broker
                .produce(
                    "trim",
                    0,
                    common::batch(&[format!("{i}").into_bytes()], None, i),
                )
                .expect("produce");
        }
        assert_eq!(broker.delete_records("trim", 0, 4).expect("delete"), 4);
        assert_eq!(
            broker.delete_records("trim", 0, 2).expect("lower"),
            4,
            "never moves back"
        );
        assert!(matches!(
            broker.read("trim", 0, 3, 1 << 20),
            Err(Error::OffsetOutOfRange { log_start: 4, .. })
        ));
        assert!(broker.read("trim", 0, 4, 1 << 20).is_ok());
        assert!(matches!(
            broker.delete_records("trim", 0, 11),
            Err(Error::OffsetOutOfRange { .. })
        ));
        broker.close().expect("close");
    }
    let broker = common::quiet_broker(dir.path());
    let info = broker.topic_metadata("trim").expect("meta").partitions[0];
    assert_eq!((info.log_start_offset, info.log_end_offset), (4, 10));
    let earliest = broker
        .list_offsets("trim", 0, OffsetSpec::Earliest)
        .expect("earliest")
        .map(|l| l.offset);
    assert_eq!(earliest, Some(4));
    let by_time = broker
        .list_offsets("trim", 0, OffsetSpec::Timestamp(0))
        .expect("by time")
        .map(|l| l.offset);
    assert_eq!(
        by_time,
        Some(4),
        "a time lookup never answers below the log start"
    );
    assert_eq!(
        broker.delete_records("trim", 0, -1).expect("to the end"),
        10
    );
}
