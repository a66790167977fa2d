//! The v2 record batch format: a byte-exact test vector written out field by field, and
//! properties: every batch round-trips through encode and decode, and any single changed
//! byte after the CRC field is detected.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_log::batch::{
    BatchBuilder, BatchError, Compression, Header, RecordBatch, split_batches,
};

/// One record, key "key", value "value", timestamp 1000, no producer id: the bytes Kafka's
/// documented layout (KIP-98, "Record Batch" in the protocol guide) prescribes.
#[test]
fn single_record_batch_matches_kafkas_layout_byte_for_byte() {
    #[rustfmt::skip]
    let expected: Vec<u8> = [
        &[0, 0, 0, 0, 0, 0, 0, 0][..],            // baseOffset: 0 (the log assigns it)
        &[0, 0, 0, 64],                           // batchLength: 76 bytes - 12
        &[0xff, 0xff, 0xff, 0xff],                // partitionLeaderEpoch: -1 (set by the broker)
        &[2],                                     // magic: 2
        &[0x44, 0xc9, 0x8e, 0x4f],                // crc: CRC-32C of everything after it
        &[0, 0],                                  // attributes: no compression, CreateTime
        &[0, 0, 0, 0],                            // lastOffsetDelta: 0
        &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],          // baseTimestamp: 1000
        &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],          // maxTimestamp: 1000
        &[0xff; 8],                               // producerId: -1
        &[0xff, 0xff],                            // producerEpoch: -1
        &[0xff, 0xff, 0xff, 0xff],                // baseSequence: -1
        &[0, 0, 0, 1],                            // recordCount: 1
        // the record
        &[0x1c],                                  // length: varint 14 (zig-zag 28)
        &[0x00],                                  // attributes
        &[0x00],                                  // timestampDelta: 0
        &[0x00],                                  // offsetDelta: 0
        &[0x06], b"key",                          // keyLength 3 (zig-zag 6), key
        &[0x0a], b"value",                        // valueLength 5 (zig-zag 10), value
        &[0x00],                                  // headerCount: 0
    ]
    .concat();
    let mut builder = BatchBuilder::new();
    builder.append(1000, Some(b"key"), Some(b"value"), &[]);
    let built = builder
        .build()
        .expect("an uncompressed batch always builds");
    assert_eq!(&built[..], &expected[..]);

    let parsed = RecordBatch::parse(Bytes::from(expected)).expect("the vector parses");
    let records: Vec<_> = parsed
        .records()
        .expect("records")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key.as_deref(), Some(&b"key"[..]));
    assert_eq!(records[0].value.as_deref(), Some(&b"value"[..]));
    assert_eq!(records[0].timestamp, 1000);
}

/// CRC-32C's published check value, so the checksum is the Castagnoli one Kafka uses.
#[test]
fn crc_is_castagnoli() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn bytes_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.85, prop::collection::vec(any::<u8>(), 0..64))
}

fn record() -> impl Strategy<Value = Rec> {
    (
        -1_000_000i64..4_000_000_000_000,
        bytes_opt(),
        bytes_opt(),
        prop::collection::vec(("[a-z]{0,8}", bytes_opt()), 0..3),
    )
        .prop_map(|(timestamp, key, value, headers)| Rec {
            timestamp,
            key,
            value,
            headers,
        })
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd)
    ]
}

fn build(
    recs: &[Rec],
    compression: Compression,
    producer: Option<(i64, i16, i32)>,
    txn: bool,
) -> Bytes {
    let mut b = BatchBuilder::new()
        .with_compression(compression)
        .with_transactional(txn);
    if let Some((pid, epoch, seq)) = producer {
        b = b.with_producer(pid, epoch, seq);
    }
    for r in recs {
        let headers: Vec<Header> = r
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.clone(),
                value: v.clone().map(Bytes::from),
            })
            .collect();
        b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
    }
    b.build().expect("build")
}

proptest! {
    #[test]
    fn any_batch_round_trips(
        recs in prop::collection::vec(record(), 1..40),
        codec in compression(),
        producer in prop::option::of((0i64..i64::MAX, 0i16..i16::MAX, 0i32..i32::MAX)),
        txn in any::<bool>(),
    ) {
        let bytes = build(&recs, codec, producer, txn);
        let batch = RecordBatch::parse(bytes.clone()).expect("parse");
        batch.validate_records().expect("valid");
        let h = batch.header();
        prop_assert_eq!(h.record_count as usize, recs.len());
        prop_assert_eq!(h.last_offset_delta as usize, recs.len() - 1);
        prop_assert_eq!(h.compression().ok(), Some(codec));
        prop_assert_eq!(h.is_transactional(), txn);
        prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| r.timestamp).max().unwrap_or(-1));
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (pid, epoch, seq));
        let decoded: Vec<_> = batch.records().expect("records").collect::<Result<_, _>>().expect("decode");
        prop_assert_eq!(decoded.len(), recs.len());
        for (i, (d, r)) in decoded.iter().zip(&recs).enumerate() {
            prop_assert_eq!(d.offset, i as i64);
            prop_assert_eq!(d.timestamp, r.timestamp);
            prop_assert_eq!(d.key.as_deref(), r.key.as_deref());
            prop_assert_eq!(d.value.as_deref(), r.value.as_deref());
            prop_assert_eq!(d.headers.len(), r.headers.len());
            for (dh, rh) in d.headers.iter().zip(&r.headers) {
                prop_assert_eq!(&dh.key, &rh.0);
                prop_assert_eq!(dh.value.as_deref(), rh.1.as_deref());
            }
        }
        // Two batches back to back split into the same two batches.
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes);
        let split = split_batches(Bytes::from(two)).expect("split");
        prop_assert_eq!(split.len(), 2);
    }

    #[test]
    fn any_single_changed_byte_after_the_crc_field_is_detected(
        recs in prop::collection::vec(record(), 1..10),
        codec in compression(),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let bytes = build(&recs, codec, None, false);
        // The CRC field itself starts at byte 17; everything from there on is protected.
        let at = 17 + position.index(bytes.len() - 17);
        let mut corrupt = bytes.to_vec();
        corrupt[at] ^= flip;
        let result = RecordBatch::parse(Bytes::from(corrupt));
        prop_assert!(
            matches!(result, Err(BatchError::CrcMismatch { .. })),
            "byte {} changed but parse gave {:?}", at, result.map(|b| b.record_count())
        );
    }
}

#[test]
fn truncated_batch_is_reported_as_truncated() {
    let mut b = BatchBuilder::new();
    b.append(1, None, Some(b"v"), &[]);
    let bytes = b.build().expect("build");
    let cut = bytes.slice(..bytes.len() - 1);
    assert!(matches!(
        RecordBatch::parse(cut),
        Err(BatchError::Truncated { .. })
    ));
}

#[test]
fn every_kafka_codec_is_known_by_name_and_id() {
    for (name, id) in [
        ("none", 0),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ] {
        let codec = Compression::from_name(name).expect(name);
        assert_eq!((codec.name(), codec.id()), (name, id));
        assert_eq!(Compression::from_id(id), Ok(codec));
    }
    assert!(matches!(
        Compression::from_name("brotli"),
        Err(BatchError::Compression { .. })
    ));
    assert_eq!(
        Compression::from_id(5),
        Err(BatchError::UnknownCompression(5))
    );
}

/// Re-seals a tampered batch with a correct CRC, so only the record check can catch it.
fn reseal(mut bytes: Vec<u8>) -> Bytes {
    let crc = sluice_log::batch::compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

#[test]
fn malformed_records_under_a_valid_crc_are_rejected() {
    let mut b = BatchBuilder::new();
    b.append(5, Some(b"k"), Some(b"v"), &[]);
    b.append(6, None, Some(b"w"), &[]);
    let good = b.build().expect("build").to_vec();
    RecordBatch::parse(reseal(good.clone()))
        .expect("parse")
        .validate_records()
        .expect("valid");
    let body = 61;

    let mut long = good.clone();
    long[body] = 0x7e; // first record claims 63 bytes
    let mut wrong_delta = good.clone();
    wrong_delta[body + 3] = 0x04; // first record's offset delta 2 instead of 0
    let mut trailing = good.clone();
    trailing.push(0);
    let len = (trailing.len() - 12) as i32;
    trailing[8..12].copy_from_slice(&len.to_be_bytes());
    let mut miscounted = good.clone();
    miscounted[60] = 3; // header says 3 records, body holds 2
    miscounted[26] = 2; // lastOffsetDelta 2, consistent with the count
    let mut bad_max_ts = good;
    bad_max_ts[42] = 99; // maxTimestamp no longer the records' largest

    for (name, bytes) in [
        ("record length", long),
        ("offset delta", wrong_delta),
        ("trailing bytes", trailing),
        ("record count", miscounted),
        ("max timestamp", bad_max_ts),
    ] {
        let batch = RecordBatch::parse(reseal(bytes)).expect("the CRC is valid");
        assert!(
            batch.validate_records().is_err(),
            "{name}: a malformed batch passed validation"
        );
    }
}

/// librdkafka writes `maxTimestamp` 0 for records stamped -1; Kafka's broker accepts the
/// batch and writes the records' real largest timestamp into the header. So does sluice.
#[test]
fn a_produced_batch_with_a_wrong_max_timestamp_is_stored_with_the_real_one() {
    let mut b = BatchBuilder::new();
    b.append(5, Some(b"k"), Some(b"v"), &[]);
    b.append(6, None, Some(b"w"), &[]);
    let mut bytes = b.build().expect("build").to_vec();
    bytes[35..43].copy_from_slice(&0i64.to_be_bytes()); // maxTimestamp 0, records 5 and 6
    let dir = tempfile::tempdir().expect("tempdir");
    let broker =
        sluice_log::Broker::open(dir.path(), sluice_log::BrokerConfig::default()).expect("open");
    broker
        .create_topic("t", sluice_log::TopicConfig::default())
        .expect("create");
    broker.produce("t", 0, reseal(bytes)).expect("accepted");
    let stored = broker.read("t", 0, 0, 1 << 20).expect("read").records;
    let batch = RecordBatch::parse(stored).expect("a valid CRC after the rewrite");
    assert_eq!(batch.header().max_timestamp, 6);
    batch.validate_records().expect("consistent now");
}
