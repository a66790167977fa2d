//! The producer and consumer clients through their public API: partitioning as Kafka's,
//! delivery futures, batching, compression, offset reset and seek, and many producers and
//! consumers on the same partitions from several threads with no lost, duplicated or
//! reordered acknowledged write.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sluice_log::batch::Compression;
use sluice_log::{
    Consumer, ConsumerConfig, Error, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicConfig, TopicPartition, partition_for_key,
};

fn drain(consumer: &mut Consumer, want: usize) -> Vec<sluice_log::ConsumerRecord> {
    let mut out = Vec::new();
    let mut idle = 0;
    while out.len() < want && idle < 50 {
        let got = consumer.poll(Duration::from_millis(100)).expect("poll");
        if got.is_empty() {
            idle += 1;
        }
        out.extend(got);
    }
    out
}

#[test]
fn keyed_records_land_where_kafka_puts_them_and_come_back_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_partitions(6))
        .expect("create");
    let producer = Producer::new(&broker, ProducerConfig::default()).expect("producer");
    let mut pending = Vec::new();
    for i in 0..300 {
        let key = format!("key-{}", i % 17);
        let record = ProducerRecord::new("t", format!("value-{i}"))
            .with_key(key.clone())
            .with_timestamp(1_000 + i)
            .with_header("n", i.to_string());
        pending.push((key, i, producer.send(record).expect("send")));
    }
    let explicit = producer
        .send(ProducerRecord::new("t", "explicit").with_partition(5))
        .expect("send");
    let wrong = producer.send(ProducerRecord::new("t", "x").with_partition(6));
    assert!(
        matches!(wrong, Err(Error::UnknownPartition { partitions: 6, .. })),
        "{wrong:?}"
    );
    assert!(matches!(
        producer.send(ProducerRecord::new("nope", "x")),
        Err(Error::UnknownTopic { .. })
    ));
    let mut expected: HashMap<(i32, i64), (String, i64)> = HashMap::new();
    for (key, i, delivery) in pending {
        let meta = futures::executor::block_on(delivery).expect("delivered");
        assert_eq!(
            meta.partition,
            partition_for_key(key.as_bytes(), 6),
            "key {key}"
        );
        expected.insert(
            (meta.partition, meta.offset),
            (format!("value-{i}"), 1_000 + i),
        );
    }
    assert_eq!(explicit.wait().expect("delivered").partition, 5);
    producer.close().expect("close");

    let mut consumer = Consumer::new(&broker, ConsumerConfig::default());
    consumer
        .assign((0..6).map(|p| TopicPartition::new("t", p)).collect())
        .expect("assign");
    let records = drain(&mut consumer, 301);
    assert_eq!(records.len(), 301);
    for r in records
        .iter()
        .filter(|r| r.value.as_deref() != Some(&b"explicit"[..]))
    {
        let (value, ts) = &expected[&(r.partition, r.offset)];
        assert_eq!(r.value.as_deref(), Some(value.as_bytes()));
        assert_eq!(r.timestamp, *ts);
        assert_eq!(r.headers[0].key, "n");
    }
}

#[test]
fn compressed_batches_round_trip_through_producer_and_consumer() {
    for codec in [Compression::Lz4, Compression::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = common::quiet_broker(dir.path());
        broker
            .create_topic("t", TopicConfig::default())
            .expect("create");
        let producer = Producer::new(&broker, ProducerConfig::default().with_compression(codec))
            .expect("producer");
        for i in 0..1000 {
            producer
                .send(ProducerRecord::new(
                    "t",
                    format!("repetitive value {i} {}", "z".repeat(100)),
                ))
                .expect("send");
        }
        producer.flush().expect("flush");
        let info = broker.topic_metadata("t").expect("meta").partitions[0];
        assert_eq!(info.log_end_offset, 1000);
        assert!(
            info.size_bytes < 1000 * 100 / 2,
            "{codec:?} did not compress: {} bytes",
            info.size_bytes
        );
        let mut consumer = Consumer::new(
            &broker,
            ConsumerConfig::default().with_max_poll_records(10_000),
        );
        consumer
            .assign(vec![TopicPartition::new("t", 0)])
            .expect("assign");
        let records = drain(&mut consumer, 1000);
        assert_eq!(records.len(), 1000);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert!(
                r.value
                    .as_deref()
                    .is_some_and(|v| v.starts_with(format!("repetitive value {i} ").as_bytes()))
            );
        }
    }
}

#[test]
fn consumer_positions_seek_and_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default())
        .expect("create");
    for i in 0..10 {
        broker
            .produce(
                "t",
                0,
                common::batch(&[format!("{i}").into_bytes()], None, 1),
            )
            .expect("produce");
    }
    let tp = TopicPartition::new("t", 0);
    let mut latest = Consumer::new(
        &broker,
        ConsumerConfig::default().with_auto_offset_reset(OffsetReset::Latest),
    );
    latest.assign(vec![tp.clone()]).expect("assign");
    assert_eq!(latest.position(&tp).expect("position"), 10);
    assert!(
        latest
            .poll(Duration::from_millis(20))
            .expect("poll")
            .is_empty()
    );
    latest.seek(&tp, 7).expect("seek");
    let got: Vec<i64> = latest
        .poll(Duration::from_millis(100))
        .expect("poll")
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(got, vec![7, 8, 9]);
    assert_eq!(latest.position(&tp).expect("position"), 10);

    let mut strict = Consumer::new(
        &broker,
        ConsumerConfig::default().with_auto_offset_reset(OffsetReset::None),
    );
    strict.assign(vec![tp.clone()]).expect("assign");
    strict.seek(&tp, 50).expect("seek");
    assert!(matches!(
        strict.poll(Duration::from_millis(20)),
        Err(Error::OffsetOutOfRange { offset: 50, .. })
    ));

    let mut earliest = Consumer::new(&broker, ConsumerConfig::default());
    earliest.assign(vec![tp.clone()]).expect("assign");
    earliest.seek(&tp, 50).expect("seek");
    let got = drain(&mut earliest, 10);
    assert_eq!(
        got.first().map(|r| r.offset),
        Some(0),
        "out of range resets to the earliest offset"
    );
    assert!(matches!(
        earliest.seek(&TopicPartition::new("t", 1), 0),
        Err(Error::IllegalState(_))
    ));
}

/// Four producer threads and two consumer threads on the same three partitions at once.
#[test]
fn concurrent_producers_and_consumers_lose_duplicate_and_reorder_nothing() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 3000;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .with_partitions(3)
                .with_segment_bytes(64 * 1024),
        )
        .expect("create");
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
    let total = PRODUCERS * PER_PRODUCER;

    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let broker = broker.clone();
            let partitions = partitions.clone();
            std::thread::spawn(move || {
                let mut consumer = Consumer::new(&broker, ConsumerConfig::default());
                consumer.assign(partitions).expect("assign");
                let mut seen = Vec::new();
                let mut idle = 0;
                while seen.len() < total && idle < 200 {
                    let got = consumer.poll(Duration::from_millis(50)).expect("poll");
                    idle = if got.is_empty() { idle + 1 } else { 0 };
                    seen.extend(
                        got.into_iter()
                            .map(|r| (r.partition, r.offset, r.value.unwrap_or_default())),
                    );
                }
                seen
            })
        })
        .collect();

    let acked: Vec<Vec<(i32, i64, String)>> = (0..PRODUCERS)
        .map(|p| {
            let broker = broker.clone();
            std::thread::spawn(move || {
                let producer = Producer::new(
                    &broker,
                    ProducerConfig::default()
                        .with_batch_size(2048)
                        .with_linger_ms(1),
                )
                .expect("producer");
                let pending: Vec<_> = (0..PER_PRODUCER)
                    .map(|i| {
                        let value = format!("{p}:{i}");
                        let record = ProducerRecord::new("t", value.clone())
                            .with_key(format!("k{}", i % 11));
                        (value, producer.send(record).expect("send"))
                    })
                    .collect();
                pending
                    .into_iter()
                    .map(|(value, d)| {
                        let m = d.wait().expect("delivered");
                        (m.partition, m.offset, value)
                    })
                    .collect()
            })
        })
        .map(|h| h.join().expect("producer thread"))
        .collect();

    // Every acknowledged record is in the log exactly once, at the offset it was given.
    let mut by_position: HashMap<(i32, i64), String> = HashMap::new();
    for (partition, offset, value) in acked.iter().flatten() {
        assert!(
            by_position
                .insert((*partition, *offset), value.clone())
                .is_none(),
            "two records at {partition}/{offset}"
        );
    }
    assert_eq!(by_position.len(), total);
    let mut log: Vec<(i32, i64, String)> = Vec::new();
    for p in 0..3 {
        for (offset, value) in common::read_all(&broker, "t", p, 0) {
            log.push((p, offset, String::from_utf8(value.to_vec()).expect("utf8")));
        }
    }
    assert_eq!(
        log.len(),
        total,
        "the log holds more or fewer records than were acknowledged"
    );
    for (p, offset, value) in &log {
        assert_eq!(by_position.get(&(*p, *offset)), Some(value), "{p}/{offset}");
    }
    // Per producer and key, records are in send order within their partition.
    let mut last: HashMap<(String, String), (i64, usize)> = HashMap::new();
    for (p, offset, value) in &log {
        let (producer, i) = value.split_once(':').expect("p:i");
        let i: usize = i.parse().expect("index");
        let key = (producer.to_string(), format!("k{}", i % 11));
        if let Some((prev_offset, prev_i)) = last.insert(key, (*offset, i)) {
            assert!(
                prev_i < i && prev_offset < *offset,
                "reordered on partition {p}"
            );
        }
    }
    // Each consumer saw every record once, with offsets rising per partition.
    for consumer in consumers {
        let seen = consumer.join().expect("consumer thread");
        assert_eq!(seen.len(), total);
        let unique: HashSet<(i32, i64)> = seen.iter().map(|(p, o, _)| (*p, *o)).collect();
        assert_eq!(unique.len(), total, "a consumer saw a duplicate");
        let mut position: HashMap<i32, i64> = HashMap::new();
        for (p, o, v) in &seen {
            let prev = position.insert(*p, *o);
            assert!(
                prev.is_none_or(|prev| prev < *o),
                "non-monotonic poll on partition {p}"
            );
            assert_eq!(
                by_position.get(&(*p, *o)).map(String::as_bytes),
                Some(&v[..])
            );
        }
    }
}

#[test]
fn flush_reports_a_failed_delivery_even_when_the_futures_were_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_max_message_bytes(512))
        .expect("create");
    let producer = Producer::new(&broker, ProducerConfig::default()).expect("producer");
    drop(
        producer
            .send(ProducerRecord::new("t", vec![1u8; 2000]))
            .expect("send"),
    );
    match producer.flush() {
        Err(Error::Delivery {
            ref topic,
            partition: 0,
            ref source,
        }) => {
            assert_eq!(topic, "t");
            assert!(matches!(**source, Error::RecordTooLarge { .. }), "{source}");
        }
        other => panic!("flush gave {other:?}"),
    }
    // The failure is reported once; later sends work and continue the sequence.
    let ok = producer
        .send(ProducerRecord::new("t", "small"))
        .expect("send");
    producer.flush().expect("second flush");
    assert_eq!(ok.wait().expect("delivered").offset, 0);
}
