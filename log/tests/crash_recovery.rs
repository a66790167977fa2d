//! Crash recovery, as a property: random appends from several idempotent producers with
//! random fsyncs, then a crash image (the files as a kill -9 leaves them, taken while the
//! broker is open) that loses part of what was written after the last fsync, as power loss
//! would: either a cut at a random byte past the last fsync, or a random changed byte in an
//! unsynced batch. After reopening: every acknowledged and fsynced batch is there exactly once
//! at its original offsets; nothing past the damage appears; appends continue at the right
//! offset; and producer state is rebuilt, so retries are still recognised.

mod common;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sluice_log::{FsyncPolicy, TopicConfig};

#[derive(Debug, Clone)]
enum Op {
    Append {
        producer: usize,
        values: Vec<Vec<u8>>,
    },
    Flush,
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut the unsynced bytes at this fraction of their length.
    Cut(f64),
    /// Change one CRC-covered byte of one unsynced batch (chosen by these fractions).
    Flip { batch: f64, byte: f64, xor: u8 },
}

#[derive(Debug, Clone)]
struct Acked {
    base: i64,
    last: i64,
    len: u64,
    producer: usize,
    seq: i32,
    values: Vec<Vec<u8>>,
    bytes: bytes::Bytes,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, prop::collection::vec(prop::collection::vec(any::<u8>(), 1..120), 1..8))
            .prop_map(|(producer, values)| Op::Append { producer, values }),
        1 => Just(Op::Flush),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0f64..=1.0).prop_map(Damage::Cut),
        (0.0f64..1.0, 0.0f64..1.0, 1u8..=255).prop_map(|(batch, byte, xor)| Damage::Flip {
            batch,
            byte,
            xor
        }),
    ]
}

fn partition_dir(root: &Path) -> PathBuf {
    root.join("t-0")
}

/// The `.log` files of a partition directory with their sizes, in offset order.
fn segment_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).expect("stat").len();
            (p, len)
        })
        .collect()
}

/// Makes the partition's log end at global byte `position`: truncates the segment holding it
/// and removes every later segment file (what was never written back is gone).
fn cut_at(dir: &Path, position: u64) {
    let mut start = 0u64;
    let mut cut_done = false;
    for (path, len) in segment_files(dir) {
        if cut_done {
            std::fs::remove_file(&path).expect("remove later segment");
            continue;
        }
        if position < start + len {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_len(position - start).expect("truncate");
            cut_done = true;
        }
        start += len;
    }
}

/// Flips a byte at global `position`.
fn flip_at(dir: &Path, position: u64, xor: u8) {
    let mut start = 0u64;
    for (path, len) in segment_files(dir) {
        if position < start + len {
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[(position - start) as usize] ^= xor;
            std::fs::write(&path, bytes).expect("write");
            return;
        }
        start += len;
    }
    panic!("position {position} is past the log");
}

fn run(ops: Vec<Op>, damage: Damage) -> Result<(), TestCaseError> {
    let live = tempfile::tempdir().expect("tempdir");
    let image = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(live.path());
    let config = TopicConfig::default()
        .with_segment_bytes(2048)
        .with_index_interval_bytes(256)
        .with_fsync(FsyncPolicy::Never);
    broker.create_topic("t", config).expect("create");
    let pids: Vec<i64> = (0..3)
        .map(|_| broker.init_producer_id().expect("pid").producer_id)
        .collect();
    let mut next_seq = [0i32; 3];
    let mut acked: Vec<Acked> = Vec::new();
    let mut durable = 0i64;
    let mut synced_bytes = 0u64;
    let mut total_bytes = 0u64;

    for op in ops {
        match op {
            Op::Append { producer, values } => {
                let seq = next_seq[producer];
                let bytes = common::batch(&values, Some((pids[producer], 0, seq)), 1_000);
                let out = broker.produce("t", 0, bytes.clone()).expect("produce");
                prop_assert!(!out.duplicate);
                next_seq[producer] += values.len() as i32;
                total_bytes += bytes.len() as u64;
                acked.push(Acked {
                    base: out.base_offset,
                    last: out.last_offset,
                    len: bytes.len() as u64,
                    producer,
                    seq,
                    values,
                    bytes,
                });
            }
            Op::Flush => {
                durable = broker.flush_partition("t", 0).expect("flush");
                synced_bytes = total_bytes;
            }
        }
    }
    prop_assert_eq!(
        segment_files(&partition_dir(live.path()))
            .iter()
            .map(|(_, l)| l)
            .sum::<u64>(),
        total_bytes
    );

    // The crash image, then the loss of part of what was not fsynced.
    common::copy_dir(live.path(), image.path());
    drop(broker);
    let dir = partition_dir(image.path());
    let unsynced = total_bytes - synced_bytes;
    let survivors: Vec<&Acked> = match damage {
        Damage::Cut(fraction) => {
            let position = synced_bytes + (unsynced as f64 * fraction) as u64;
            cut_at(&dir, position);
            let mut end = 0;
            acked
                .iter()
                .take_while(|a| {
                    end += a.len;
                    end <= position
                })
                .collect()
        }
        Damage::Flip { batch, byte, xor } => {
            let first_unsynced = acked
                .iter()
                .scan(0u64, |end, a| {
                    let s = *end;
                    *end += a.len;
                    Some(s)
                })
                .position(|start| start >= synced_bytes)
                .unwrap_or(acked.len());
            if first_unsynced == acked.len() {
                acked.iter().collect()
            } else {
                let victim =
                    first_unsynced + ((acked.len() - first_unsynced) as f64 * batch) as usize;
                let victim = victim.min(acked.len() - 1);
                let start: u64 = acked[..victim].iter().map(|a| a.len).sum();
                // Byte 17 on: the CRC field and everything it covers.
                let within = 17 + ((acked[victim].len - 17) as f64 * byte) as u64;
                flip_at(&dir, start + within.min(acked[victim].len - 1), xor);
                acked[..victim].iter().collect()
            }
        }
    };

    let broker = common::quiet_broker(image.path());
    let expected_end = survivors.last().map_or(0, |a| a.last + 1);
    let info = broker.topic_metadata("t").expect("metadata").partitions[0];
    prop_assert_eq!(info.log_end_offset, expected_end, "log end after recovery");
    prop_assert_eq!(info.log_start_offset, 0);

    // Every acknowledged and fsynced batch survived.
    for a in acked.iter().filter(|a| a.last < durable) {
        prop_assert!(
            survivors.iter().any(|s| s.base == a.base),
            "fsynced batch at {} lost",
            a.base
        );
    }
    // Exactly the survivors, once each, at their original offsets; nothing past the damage.
    let expected: Vec<(i64, Vec<u8>)> = survivors
        .iter()
        .flat_map(|a| {
            a.values
                .iter()
                .enumerate()
                .map(move |(i, v)| (a.base + i as i64, v.clone()))
        })
        .collect();
    let actual: Vec<(i64, Vec<u8>)> = common::read_all(&broker, "t", 0, 0)
        .into_iter()
        .map(|(o, v)| (o, v.to_vec()))
        .collect();
    prop_assert_eq!(actual, expected);

    // Producer state was rebuilt: a retry of the last surviving batch is a duplicate with its
    // original offsets, and the first lost batch is appended at the log end.
    let mut end = expected_end;
    for producer in 0..3 {
        let mine: Vec<&Acked> = acked.iter().filter(|a| a.producer == producer).collect();
        let kept = mine
            .iter()
            .filter(|a| survivors.iter().any(|s| s.base == a.base))
            .count();
        if kept > 0 {
            let last = mine[kept - 1];
            let again = broker
                .produce("t", 0, last.bytes.clone())
                .expect("retry of a kept batch");
            prop_assert!(
                again.duplicate,
                "retry of the batch at {} was appended again",
                last.base
            );
            prop_assert_eq!(again.base_offset, last.base);
        }
        if let Some(lost) = mine.get(kept) {
            prop_assert_eq!(
                lost.seq,
                mine.get(kept.wrapping_sub(1))
                    .map_or(0, |p| p.seq + p.values.len() as i32)
            );
            let out = broker
                .produce("t", 0, lost.bytes.clone())
                .expect("resend of a lost batch");
            prop_assert!(!out.duplicate);
            prop_assert_eq!(out.base_offset, end);
            end = out.last_offset + 1;
        }
    }
    let plain = broker
        .produce("t", 0, common::batch(&[b"after".to_vec()], None, 2_000))
        .expect("append");
    prop_assert_eq!(plain.base_offset, end);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]
    #[test]
    fn acknowledged_fsynced_batches_survive_a_crash(
        ops in prop::collection::vec(op(), 1..60),
        damage in damage(),
    ) {
        run(ops, damage)?;
    }
}

/// A clean close and reopen keeps everything, and the reopened log goes on at the same offset.
#[test]
fn clean_restart_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("value-{i}").into_bytes())
        .collect();
    {
        let broker = common::quiet_broker(dir.path());
        broker
            .create_topic(
                "t",
                TopicConfig::default()
                    .with_segment_bytes(4096)
                    .with_partitions(2),
            )
            .expect("create");
        for chunk in values.chunks(7) {
            broker
                .produce("t", 1, common::batch(chunk, None, 5))
                .expect("produce");
        }
        broker.close().expect("close");
    }
    let broker = common::quiet_broker(dir.path());
    let read: Vec<Vec<u8>> = common::read_all(&broker, "t", 1, 0)
        .into_iter()
        .map(|(_, v)| v.to_vec())
        .collect();
    assert_eq!(read, values);
    let info = broker.topic_metadata("t").expect("metadata").partitions[1];
    assert!(info.segments > 1, "the test should span several segments");
    let next = broker
        .produce("t", 1, common::batch(&[b"x".to_vec()], None, 5))
        .expect("produce");
    assert_eq!(next.base_offset, 500);
}
