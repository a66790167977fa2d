//! Regression tests for defects a code review found in the log: stray bytes after a failed
//! write (in a scanned and in a trusted segment), a producer closed after a failed delivery
//! leaking its sender thread, records skipped on reassignment, and an unbounded poll
//! timeout overflowing. Each failed on the code before its fix.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use sluice_log::batch::BatchBuilder;
use sluice_log::{
    Broker, BrokerConfig, Consumer, ConsumerConfig, FsyncPolicy, Producer, ProducerConfig,
    ProducerRecord, TopicConfig, TopicPartition,
};

fn batch(values: &[&[u8]], producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut b = BatchBuilder::new();
    if let Some((pid, epoch, seq)) = producer {
        b = b.with_producer(pid, epoch, seq);
    }
    for v in values {
        b.append(1_700_000_000_000, None, Some(*v), &[]);
    }
    b.build().expect("test setup")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("test setup");
    for e in std::fs::read_dir(from).expect("test setup") {
        let e = e.expect("test setup");
        let target = to.join(e.file_name());
        if e.file_type().expect("test setup").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("test setup");
        }
    }
}

fn quiet(dir: &Path) -> Broker {
    Broker::open(
        dir,
        BrokerConfig::default()
            .with_flush_check_interval(Duration::from_secs(3600))
            .with_retention_check_interval(Duration::from_secs(3600)),
    )
    .expect("test setup")
}

/// Finding: Producer::shutdown returns early when flush() reports a delivery failure, so
/// the sender thread is never told to stop; it keeps a Broker clone forever, and the data
/// directory stays locked after every user handle is gone.
#[test]
fn producer_close_after_a_failed_delivery_releases_the_broker() {
    let dir = tempfile::tempdir().expect("test setup");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("test setup");
    broker
        .create_topic("t", TopicConfig::default().with_max_message_bytes(1024))
        .expect("test setup");
    let producer =
        Producer::new(&broker, ProducerConfig::default().with_linger_ms(0)).expect("test setup");
    let f = producer
        .send(ProducerRecord::new("t", vec![0u8; 4096]))
        .expect("test setup");
    assert!(f.wait().is_err(), "RecordTooLarge expected");
    assert!(producer.close().is_err()); // reports the failure, and leaks the sender thread
    drop(broker);
    // Before the fix: "data directory ... is in use by another broker".
    Broker::open(dir.path(), BrokerConfig::default()).expect("reopen after all handles dropped");
}

/// Finding: Consumer::assign clears the whole fetch buffer but keeps the (fetch) position of
/// retained partitions, so records fetched but not yet returned by poll are skipped.
#[test]
fn reassigning_does_not_skip_buffered_records() {
    let dir = tempfile::tempdir().expect("test setup");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("test setup");
    broker
        .create_topic("t", TopicConfig::default().with_partitions(2))
        .expect("test setup");
    broker
        .produce("t", 0, batch(&[&b"a"[..], &b"b"[..], &b"c"[..]], None))
        .expect("test setup");
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    let mut c = Consumer::new(&broker, ConsumerConfig::default().with_max_poll_records(1));
    c.assign(vec![tp0.clone()]).expect("test setup");
    assert_eq!(
        c.poll(Duration::from_secs(1)).expect("test setup")[0].offset,
        0
    );
    c.assign(vec![tp0.clone(), tp1]).expect("test setup"); // tp0 kept
    assert_eq!(
        c.position(&tp0).expect("test setup"),
        1,
        "offsets 1 and 2 were never returned"
    ); // was 3 before the fix
    // And the buffered records still come back, in order.
    let next: Vec<i64> = (0..2)
        .map(|_| c.poll(Duration::from_secs(1)).expect("test setup"))
        .flat_map(|records| records.into_iter().filter(|r| r.partition == 0))
        .map(|r| r.offset)
        .collect();
    assert_eq!(next, vec![1, 2]);
}

/// Finding: `Instant::now() + timeout` panics on overflow.
#[test]
fn poll_with_an_unbounded_timeout_does_not_panic() {
    let dir = tempfile::tempdir().expect("test setup");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("test setup");
    broker
        .create_topic("t", TopicConfig::default())
        .expect("test setup");
    broker
        .produce("t", 0, batch(&[&b"a"[..]], None))
        .expect("test setup");
    let mut c = Consumer::new(&broker, ConsumerConfig::default());
    c.assign(vec![TopicPartition::new("t", 0)])
        .expect("test setup");
    // Before the fix: a panic (overflow when adding the duration to an instant).
    let records = c.poll(Duration::MAX).expect("poll with Duration::MAX");
    assert_eq!(records.len(), 1, "the one record produced: {records:?}");
    assert_eq!(records[0].offset, 0);
    assert_eq!(records[0].value.as_deref(), Some(&b"a"[..]));
}

/// Finding: a sealed (not yet recovery-pointed) segment with a few stray bytes after its last
/// batch (what a failed/partial pwrite leaves: Segment::append never truncates it, and the next
/// append may be a roll) makes recovery delete EVERY later segment: acknowledged data is lost
/// after a plain kill -9.
#[test]
fn stray_bytes_after_a_sealed_segment_do_not_delete_later_segments() {
    let dir = tempfile::tempdir().expect("test setup");
    let broker = quiet(dir.path());
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .with_segment_bytes(1024)
                .with_fsync(FsyncPolicy::Never), // no recovery point: every segment is scanned
        )
        .expect("test setup");
    let value = [7u8; 100];
    let mut last = 0;
    for _ in 0..40 {
        last = broker
            .produce("t", 0, batch(&[&value[..]], None))
            .expect("test setup")
            .last_offset;
    }
    assert!(broker.topic_metadata("t").expect("test setup").partitions[0].segments >= 3);
    // kill -9 image (quiet broker: no sealed segment was fsynced, so no recovery point).
    let image = tempfile::tempdir().expect("test setup");
    copy_dir(dir.path(), image.path());
    drop(broker);
    // Leftover of a partial write of the next batch at the end of the FIRST segment.
    let torn = batch(&[&value[..]], None);
    let first = image.path().join("t-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).expect("test setup");
    bytes.extend_from_slice(&torn[..80]);
    std::fs::write(&first, bytes).expect("test setup");
    let reopened = quiet(image.path());
    assert_eq!(
        reopened.topic_metadata("t").expect("test setup").partitions[0].log_end_offset,
        last + 1,
        "every acknowledged batch after the first segment was deleted"
    );
}

/// Same root cause, other branch: once the recovery point covers the segment (default
/// `commit` policy: every acks=all produce advances it), open_sealed trusts the file length,
/// so the stray bytes become part of the segment and every read that reaches them fails.
#[test]
fn stray_bytes_after_a_trusted_segment_do_not_break_reads() {
    let dir = tempfile::tempdir().expect("test setup");
    let broker = quiet(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_segment_bytes(1024))
        .expect("test setup");
    let value = [7u8; 100];
    for _ in 0..40 {
        broker
            .produce("t", 0, batch(&[&value[..]], None))
            .expect("test setup");
    }
    broker.close().expect("test setup");
    drop(broker);
    let first = dir.path().join("t-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).expect("test setup");
    bytes.extend_from_slice(&[0u8; 100]); // tail of a longer batch a failed write left behind
    std::fs::write(&first, bytes).expect("test setup");
    let reopened = quiet(dir.path());
    // Before the fix: Io "reading from": batch length 0 is smaller than the 61-byte header.
    // Every record reads back, in order, across the segment with the stray bytes.
    let mut c = Consumer::new(&reopened, ConsumerConfig::default());
    c.assign(vec![TopicPartition::new("t", 0)])
        .expect("test setup");
    let mut offsets = Vec::new();
    while offsets.len() < 40 {
        let records = c
            .poll(Duration::from_secs(5))
            .expect("read past the stray bytes");
        assert!(
            !records.is_empty(),
            "stopped after {} records",
            offsets.len()
        );
        for r in records {
            assert_eq!(r.value.as_deref(), Some(&value[..]), "offset {}", r.offset);
            offsets.push(r.offset);
        }
    }
    assert_eq!(offsets, (0..40).collect::<Vec<i64>>());
    assert_eq!(
        reopened.topic_metadata("t").expect("test setup").partitions[0].log_end_offset,
        40
    );
}
