//! The five codecs Kafka's clients use, through the batch builder, the parser and the broker:
//! every codec round-trips (including batches large enough for several snappy blocks),
//! snappy reads both xerial-framed and raw bodies, damaged compressed bodies are errors and
//! never panics, and a decompression bomb is refused with a clear error.

use std::io::Write;

use bytes::Bytes;
use sluice_log::batch::{BatchBuilder, BatchError, Compression, RecordBatch};
use sluice_log::{Broker, BrokerConfig, TopicConfig};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn batch(codec: Compression, records: usize, value_len: usize) -> Bytes {
    let mut b = BatchBuilder::new().with_compression(codec);
    for i in 0..records {
        let value: Vec<u8> = (0..value_len).map(|j| ((i * 7 + j) % 13) as u8).collect();
        b.append(
            1_000 + i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build().expect("build")
}

fn values(batch: &RecordBatch) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
    batch
        .records()
        .expect("records")
        .map(|r| r.map(|r| (r.offset, r.key, r.value)).expect("record"))
        .collect()
}

/// Replaces a batch's body (everything after the 61-byte header) and reseals length and CRC,
/// so only the codec can object.
fn with_body(template: &Bytes, body: &[u8]) -> Bytes {
    let mut bytes = template[..61].to_vec();
    bytes.extend_from_slice(body);
    let len = (bytes.len() - 12) as i32;
    bytes[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = sluice_log::batch::compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

#[test]
fn every_codec_round_trips_small_and_multi_block_batches() {
    for codec in CODECS {
        for (records, value_len) in [(1, 0), (3, 10), (400, 500)] {
            let bytes = batch(codec, records, value_len);
            let parsed = RecordBatch::parse(bytes).expect("parse");
            assert_eq!(parsed.header().compression(), Ok(codec));
            parsed.validate_records().expect("valid");
            let plain =
                RecordBatch::parse(batch(Compression::None, records, value_len)).expect("parse");
            assert_eq!(values(&parsed), values(&plain), "{codec:?} {records}");
        }
    }
}

#[test]
fn snappy_is_written_xerial_framed_and_read_framed_or_raw() {
    let framed = batch(Compression::Snappy, 400, 500);
    assert_eq!(&framed[61..69], b"\x82SNAPPY\x00");
    assert_eq!(&framed[69..77], &[0, 0, 0, 1, 0, 0, 0, 1]);
    let plain = RecordBatch::parse(batch(Compression::None, 400, 500)).expect("parse");
    let raw_body = snap::raw::Encoder::new()
        .compress_vec(&plain.as_bytes()[61..])
        .expect("compress");
    let raw = RecordBatch::parse(with_body(&framed, &raw_body)).expect("parse");
    raw.validate_records().expect("a raw snappy body is valid");
    assert_eq!(values(&raw), values(&plain));
}

#[test]
fn the_broker_stores_and_serves_every_codec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open");
    broker
        .create_topic("codecs", TopicConfig::default())
        .expect("create");
    for codec in CODECS {
        broker
            .produce("codecs", 0, batch(codec, 50, 100))
            .expect("produce");
    }
    let data = broker.read("codecs", 0, 0, 1 << 22).expect("read");
    let batches = sluice_log::batch::split_batches(data.records).expect("split");
    assert_eq!(batches.len(), CODECS.len());
    for (b, codec) in batches.iter().zip(CODECS) {
        assert_eq!(b.header().compression(), Ok(codec));
        assert_eq!(b.records().expect("records").count(), 50);
    }
}

#[test]
fn damaged_compressed_bodies_are_errors_never_panics() {
    for codec in &CODECS[1..] {
        let good = batch(*codec, 5, 20);
        let body = good[61..].to_vec();
        for at in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = body.clone();
                damaged[at] ^= flip;
                // Some bytes (a gzip header's mtime) may change harmlessly; what matters is
                // that nothing panics and every failure is a batch error.
                let parsed = RecordBatch::parse(with_body(&good, &damaged)).expect("CRC resealed");
                let _ = parsed.validate_records();
                let _ = parsed.records().map(|it| it.count());
            }
        }
        for cut in 0..body.len() {
            let parsed = RecordBatch::parse(with_body(&good, &body[..cut])).expect("parse");
            // lz4_flex accepts a frame cut inside its end mark when every block is whole (the
            // records are all there); every other cut is an error for every codec.
            let whole_lz4 = *codec == Compression::Lz4 && cut + 4 >= body.len();
            assert!(
                whole_lz4 || parsed.validate_records().is_err(),
                "{codec:?} body cut at {cut} of {} passed",
                body.len()
            );
        }
        let garbage =
            RecordBatch::parse(with_body(&good, b"definitely not compressed")).expect("parse");
        assert!(
            matches!(
                garbage.validate_records(),
                Err(BatchError::Compression { .. })
            ),
            "{codec:?}: {:?}",
            garbage.validate_records()
        );
    }
}

#[test]
fn decompression_bombs_are_refused() {
    let zeros = vec![0u8; sluice_log::batch::MAX_DECOMPRESSED + 1024];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&zeros).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let snappy_raw = snap::raw::Encoder::new()
        .compress_vec(&zeros)
        .expect("snappy");
    let mut snappy_framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    for chunk in zeros.chunks(1 << 20) {
        let block = snap::raw::Encoder::new()
            .compress_vec(chunk)
            .expect("snappy");
        snappy_framed.extend_from_slice(&(block.len() as i32).to_be_bytes());
        snappy_framed.extend_from_slice(&block);
    }
    let lz4 = {
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        enc.write_all(&zeros).expect("lz4");
        enc.finish().expect("lz4")
    };
    let zstd = zstd::bulk::compress(&zeros, 1).expect("zstd");
    for (codec, body) in [
        (Compression::Gzip, gz),
        (Compression::Snappy, snappy_raw),
        (Compression::Snappy, snappy_framed),
        (Compression::Lz4, lz4),
        (Compression::Zstd, zstd),
    ] {
        let template = batch(codec, 1, 1);
        let bomb = RecordBatch::parse(with_body(&template, &body)).expect("parse");
        match bomb.validate_records() {
            Err(BatchError::Compression { reason, .. }) => {
                assert!(reason.contains("expand past"), "{codec:?}: {reason}")
            }
            other => panic!("{codec:?}: a bomb gave {other:?}"),
        }
    }
}

fn unhex(hex: &str) -> Bytes {
    let digits: Vec<u8> = hex
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).expect("hex digit") as u8)
        .collect();
    Bytes::from(
        digits
            .chunks(2)
            .map(|pair| pair[0] << 4 | pair[1])
            .collect::<Vec<u8>>(),
    )
}

/// Batches written by a real Kafka client (kafka-python 3.0.12's
/// `DefaultRecordBatchBuilder`, python-snappy for snappy): producer 42, epoch 3, sequence 0,
/// three records `k{i}` = `"value-{i} " * 5` with header `h = x`, timestamps from
/// 1_700_000_000_000.
#[test]
fn batches_from_a_real_kafka_client_decode() {
    let gzip = "0000000000000000000000770000000002707b843e0001000000020000018bcfe568000000018bcfe56802\
        000000000000002a000300000000000000031f8b080075e8156b02ffcb60606060c93608284bcc294dd53550\
        2044333165305564303031b1641b4235192a10a2a19a585858b28da09a8c1408d1604d000d7405119f000000";
    let snappy = "0000000000000000000000880000000002168395830002000000020000018bcfe568000000018bcfe568\
        02000000000000002a0003000000000000000382534e41505059000000000100000001000000439f013c6800\
        0000046b305076616c75652d30207e08002c020268027868000202046b310d3500310d356608000d35100404\
        046b320d3500320d35660800100202680278";
    for (codec, hex) in [(Compression::Gzip, gzip), (Compression::Snappy, snappy)] {
        let batch = RecordBatch::parse(unhex(hex)).expect("a real client's batch parses");
        batch.validate_records().expect("valid");
        let h = batch.header();
        assert_eq!(h.compression(), Ok(codec));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 0)
        );
        let records: Vec<_> = batch
            .records()
            .expect("records")
            .collect::<Result<_, _>>()
            .expect("decode");
        assert_eq!(records.len(), 3);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
            let value = format!("value-{i} ").repeat(5);
            assert_eq!(r.value.as_deref(), Some(value.as_bytes()));
            assert_eq!(r.headers.len(), 1);
            assert_eq!(r.headers[0].key, "h");
            assert_eq!(r.headers[0].value.as_deref(), Some(&b"x"[..]));
        }
    }
}
