//! Log compaction (docs/architecture.md §2.7) through the broker's public API. A property runs random
//! histories of keyed puts, tombstones, keyless records and interleaved transactions
//! (committed and aborted) over small segments, with flushes and compactions mixed in, and
//! checks the log against a model after a final compaction: exactly the newest committed
//! record of each key survives (tombstones too until their delete retention passes), every
//! survivor keeps its offset and value, no aborted record is readable at either isolation
//! level, and all of it holds after a restart, on crash images (with and without producer
//! snapshots) and after a second compaction, which finds nothing left to do. Producers carry
//! on afterwards. Further tests: a crash between writing `.cleaned` and the rename, a crash
//! after the rename, the maintenance thread, and retention staying off compacted topics.

mod common;
mod compaction_model;

use std::path::Path;
use std::time::{Duration, Instant};

use compaction_model::{
    DAY_MS, Op, TOPIC, Writer, check, producers_carry_on, read_log, remove_snapshots, topic_dir,
};
use proptest::prelude::*;
use sluice_log::batch::{BatchBuilder, Compression};
use sluice_log::topic::CleanupPolicy;
use sluice_log::{Broker, BrokerConfig, FsyncPolicy, IsolationLevel, TopicConfig};

#[derive(Debug, Clone)]
struct Case {
    ops: Vec<Op>,
    segment_bytes: u64,
    tombstones_expire: bool,
    fsync_on_ack: bool,
    final_commits: [bool; 2],
}

fn op() -> impl Strategy<Value = Op> {
    let records = || prop::collection::vec((0u8..6, prop::bool::weighted(0.2)), 1..4);
    prop_oneof![
        6 => (records(), any::<bool>(), prop::sample::select(vec![
                Compression::None, Compression::None, Compression::Lz4, Compression::Zstd,
            ]))
            .prop_map(|(records, idempotent, compression)| Op::Put {
                records,
                idempotent,
                compression,
            }),
        1 => Just(Op::Keyless),
        4 => (0..2usize, records()).prop_map(|(txn, records)| Op::TxnSend { txn, records }),
        2 => (0..2usize, any::<bool>()).prop_map(|(txn, commit)| Op::TxnEnd { txn, commit }),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(op(), 1..80),
        1024u64..4096,
        any::<bool>(),
        any::<bool>(),
        any::<[bool; 2]>(),
    )
        .prop_map(
            |(ops, segment_bytes, tombstones_expire, fsync_on_ack, final_commits)| Case {
                ops,
                segment_bytes,
                tombstones_expire,
                fsync_on_ack,
                final_commits,
            },
        )
}

fn run_case(case: &Case) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic(
            TOPIC,
            TopicConfig::default()
                .with_cleanup(CleanupPolicy::Compact)
                .with_segment_bytes(case.segment_bytes)
                .with_delete_retention_ms(if case.tombstones_expire { 0 } else { DAY_MS })
                .with_fsync(if case.fsync_on_ack {
                    FsyncPolicy::Commit
                } else {
                    FsyncPolicy::Never
                }),
        )
        .expect("create topic");
    let mut writer = Writer::new(broker.clone());
    for op in &case.ops {
        writer.apply(op);
    }
    for (txn, &commit) in case.final_commits.iter().enumerate() {
        writer.end(txn, commit);
    }
    let cleaned_end = writer.seal_history(case.segment_bytes);
    broker.run_compaction().expect("compaction");
    check(&broker, &writer.model, cleaned_end, case.tombstones_expire);

    // Crash images, taken while the broker runs: as is, without the two newest producer
    // snapshots, and without any.
    for lost_snapshots in [0, 2, usize::MAX] {
        let image = tempfile::tempdir().expect("tempdir");
        common::copy_dir(dir.path(), image.path());
        remove_snapshots(image.path(), lost_snapshots);
        let reopened = common::quiet_broker(image.path());
        check(
            &reopened,
            &writer.model,
            cleaned_end,
            case.tombstones_expire,
        );
        assert_eq!(
            reopened.run_compaction().expect("second compaction"),
            0,
            "a second pass finds nothing to clean"
        );
        check(
            &reopened,
            &writer.model,
            cleaned_end,
            case.tombstones_expire,
        );
        producers_carry_on(&reopened, &writer);
        reopened.close().expect("close");
    }

    // A clean restart, then a second compaction.
    broker.close().expect("close");
    drop(broker);
    writer.broker = common::quiet_broker(dir.path());
    let reopened = writer.broker.clone();
    check(
        &reopened,
        &writer.model,
        cleaned_end,
        case.tombstones_expire,
    );
    assert_eq!(reopened.run_compaction().expect("second compaction"), 0);
    check(
        &reopened,
        &writer.model,
        cleaned_end,
        case.tombstones_expire,
    );
    producers_carry_on(&reopened, &writer);
    reopened.close().expect("close");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(32)))]

    #[test]
    fn compaction_keeps_the_newest_committed_value_and_no_aborted_data(case in case()) {
        run_case(&case);
    }
}

/// A compact topic with 1 KiB segments and a deterministic history: overwrites of five
/// keys (compressed and not), a tombstone, an aborted and a committed transaction, all sealed
/// and fsynced. Returns the writer and the end of the cleanable range.
fn deterministic_history(dir: &Path) -> (Writer, i64) {
    let broker = common::quiet_broker(dir);
    broker
        .create_topic(
            TOPIC,
            TopicConfig::default()
                .with_cleanup(CleanupPolicy::Compact)
                .with_segment_bytes(1024),
        )
        .expect("create topic");
    let mut writer = Writer::new(broker);
    for round in 0..8u8 {
        let compression =
            [Compression::None, Compression::Lz4, Compression::Zstd][round as usize % 3];
        writer.apply(&Op::Put {
            records: (0..5).map(|k| (k, false)).collect(),
            idempotent: round % 2 == 0,
            compression,
        });
        writer.apply(&Op::TxnSend {
            txn: usize::from(round % 2),
            records: vec![(round % 5, round == 5)],
        });
        if round % 3 == 2 {
            writer.apply(&Op::TxnEnd {
                txn: 0,
                commit: false,
            });
            writer.apply(&Op::TxnEnd {
                txn: 1,
                commit: true,
            });
        }
    }
    writer.apply(&Op::Put {
        records: vec![(4, true)],
        idempotent: false,
        compression: Compression::None,
    });
    writer.end(0, false);
    writer.end(1, true);
    let cleaned_end = writer.seal_history(1024);
    (writer, cleaned_end)
}

/// The `.log` files of the partition, by name.
fn segment_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(topic_dir(data))
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("file name")
                .to_string();
            (name, std::fs::read(&path).expect("read segment"))
        })
        .collect();
    files.sort();
    files
}

fn files_with_extension(data: &Path, ext: &str) -> usize {
    std::fs::read_dir(topic_dir(data))
        .expect("list")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == ext))
        })
        .count()
}

/// A crash at each step of the swap leaves a log that opens and reads correctly: before the
/// rename (a complete or a torn `.cleaned` beside the old `.log`), and after the rename of
/// only the first segment, before its indexes were rewritten.
#[test]
fn a_crash_during_the_swap_leaves_a_readable_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (writer, cleaned_end) = deterministic_history(dir.path());
    let broker = writer.broker.clone();
    let before_image = tempfile::tempdir().expect("tempdir");
    common::copy_dir(dir.path(), before_image.path());
    let before = read_log(&broker, 0, IsolationLevel::ReadCommitted);
    let old_files = segment_files(before_image.path());

    assert!(broker.run_compaction().expect("compaction") > 0);
    check(&broker, &writer.model, cleaned_end, false);
    let after = read_log(&broker, 0, IsolationLevel::ReadCommitted);
    assert!(
        after.len() < before.len() / 2,
        "{} of {} records left",
        after.len(),
        before.len()
    );
    let new_files = segment_files(dir.path());
    let changed: Vec<&(String, Vec<u8>)> = new_files
        .iter()
        .filter(|file| !old_files.contains(file))
        .collect();
    assert!(changed.len() >= 2, "several segments were rewritten");

    // Crash before any rename: each rewritten segment has its `.cleaned` beside it, written
    // completely or torn.
    let image = tempfile::tempdir().expect("tempdir");
    common::copy_dir(before_image.path(), image.path());
    for (i, (name, bytes)) in changed.iter().enumerate() {
        let cleaned = topic_dir(image.path()).join(name.replace(".log", ".cleaned"));
        let len = if i % 2 == 0 {
            bytes.len()
        } else {
            bytes.len() / 2
        };
        std::fs::write(cleaned, &bytes[..len]).expect("write .cleaned");
    }
    let reopened = common::quiet_broker(image.path());
    assert_eq!(
        files_with_extension(image.path(), "cleaned"),
        0,
        "leftovers removed"
    );
    assert_eq!(
        read_log(&reopened, 0, IsolationLevel::ReadCommitted),
        before
    );
    assert!(reopened.run_compaction().expect("compaction") > 0);
    check(&reopened, &writer.model, cleaned_end, false);
    reopened.close().expect("close");

    // Crash right after the first rename: its indexes and the snapshots below the cleaned
    // range are gone (compaction removes them first), the other segments are still old.
    let image = tempfile::tempdir().expect("tempdir");
    common::copy_dir(before_image.path(), image.path());
    let (name, bytes) = changed[0];
    let part = topic_dir(image.path());
    std::fs::write(part.join(name), bytes).expect("install the first cleaned segment");
    for ext in ["index", "timeindex"] {
        std::fs::remove_file(part.join(name.replace("log", ext))).expect("remove index");
    }
    for entry in std::fs::read_dir(&part).expect("list") {
        let path = entry.expect("entry").path();
        let offset = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<i64>().ok());
        if path.extension().is_some_and(|e| e == "snapshot") && offset < Some(cleaned_end) {
            std::fs::remove_file(path).expect("remove snapshot");
        }
    }
    let reopened = common::quiet_broker(image.path());
    let mixed = read_log(&reopened, 0, IsolationLevel::ReadCommitted);
    assert!(
        mixed.iter().all(|r| before.contains(r)),
        "nothing new appears"
    );
    assert!(
        after.iter().all(|r| mixed.contains(r)),
        "no survivor is lost"
    );
    assert!(mixed.len() < before.len());
    let info = reopened.topic_metadata(TOPIC).expect("metadata").partitions[0];
    assert_eq!(info.last_stable_offset, info.log_end_offset);
    assert!(reopened.run_compaction().expect("compaction") > 0);
    check(&reopened, &writer.model, cleaned_end, false);
    producers_carry_on(&reopened, &writer);
    reopened.close().expect("close");
}

/// The maintenance thread compacts `cleanup = compact` topics every
/// `retention_check_interval`, without being asked.
#[test]
fn the_maintenance_thread_compacts_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BrokerConfig::default()
        .with_retention_check_interval(Duration::from_millis(20))
        .with_flush_check_interval(Duration::from_millis(10));
    let broker = Broker::open(dir.path(), config).expect("open broker");
    broker
        .create_topic(
            TOPIC,
            TopicConfig::default()
                .with_cleanup(CleanupPolicy::Compact)
                .with_segment_bytes(1024),
        )
        .expect("create topic");
    for i in 0..200 {
        let mut b = BatchBuilder::new();
        b.append(
            sluice_log::now_ms(),
            Some(b"k"),
            Some(format!("value-{i:04}").as_bytes()),
            &[],
        );
        broker
            .produce(TOPIC, 0, b.build().expect("build"))
            .expect("produce");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = read_log(&broker, 0, IsolationLevel::ReadCommitted);
        if left.len() < 40 {
            let last = left.last().and_then(|(_, _, v)| v.clone());
            assert_eq!(last.as_deref(), Some(&b"value-0199"[..]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} records still there",
            left.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.close().expect("close");
}

/// Retention never deletes segments of a compacted topic, and both internal topics are
/// created compacted.
#[test]
fn retention_leaves_compacted_topics_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    for (name, cleanup) in [
        ("compacted", CleanupPolicy::Compact),
        ("deleted", CleanupPolicy::Delete),
    ] {
        broker
            .create_topic(
                name,
                TopicConfig::default()
                    .with_cleanup(cleanup)
                    .with_retention_ms(Some(1))
                    .with_segment_bytes(1024),
            )
            .expect("create topic");
        for _ in 0..30 {
            let mut b = BatchBuilder::new();
            b.append(1_000, Some(b"k"), Some(&[7u8; 100]), &[]);
            broker
                .produce(name, 0, b.build().expect("build"))
                .expect("produce");
        }
    }
    assert!(broker.run_retention().expect("retention") > 0);
    let start =
        |name| broker.topic_metadata(name).expect("metadata").partitions[0].log_start_offset;
    assert_eq!(start("compacted"), 0, "retention deleted compacted data");
    assert!(start("deleted") > 0);
    for internal in ["__consumer_offsets", "__transaction_state"] {
        let config = broker.topic_metadata(internal).expect("metadata").config;
        assert_eq!(config.cleanup, CleanupPolicy::Compact, "{internal}");
    }
}

/// A tombstone stays while its delete retention runs (readers can still see the delete) and
/// goes at the first pass after; passes in between find nothing to do.
#[test]
fn a_tombstone_goes_once_its_delete_retention_has_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic(
            TOPIC,
            TopicConfig::default()
                .with_cleanup(CleanupPolicy::Compact)
                .with_segment_bytes(1024)
                .with_delete_retention_ms(400),
        )
        .expect("create topic");
    let mut writer = Writer::new(broker.clone());
    writer.apply(&Op::Put {
        records: vec![(1, false), (2, false)],
        idempotent: false,
        compression: Compression::None,
    });
    let deleted_at = sluice_log::now_ms();
    let mut b = BatchBuilder::new();
    b.append(deleted_at, Some(&compaction_model::key(1)), None, &[]);
    let tombstone = broker
        .produce(TOPIC, 0, b.build().expect("build"))
        .expect("produce")
        .base_offset;
    writer.seal_history(1024);
    let key_1 = |broker: &Broker| {
        read_log(broker, 0, IsolationLevel::ReadUncommitted)
            .into_iter()
            .filter(|(_, k, _)| k.as_deref() == Some(&b"key-1"[..]))
            .map(|(offset, _, value)| (offset, value))
            .collect::<Vec<_>>()
    };
    assert!(broker.run_compaction().expect("compaction") > 0);
    assert_eq!(
        key_1(&broker),
        [(tombstone, None)],
        "only the tombstone is left"
    );
    assert_eq!(broker.run_compaction().expect("compaction"), 0);
    while sluice_log::now_ms() <= deleted_at + 400 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(broker.run_compaction().expect("compaction") > 0);
    assert_eq!(key_1(&broker), [], "the tombstone is gone");
    // key-2, and the two fillers (the newest in the cleaned range, and the active one's).
    assert_eq!(read_log(&broker, 0, IsolationLevel::ReadCommitted).len(), 3);
}
