//! Restoring a store from its changelog: only committed writes are applied (aborted ones
//! never; an open transaction is waited for, not stopped at, and a restore given up on at
//! one keeps what it applied before it), tombstones delete, the checkpoint moves to what
//! was applied, and a second restore continues from it.

use sluice_log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use sluice_runtime::serde::StringSerde;
use std::time::Duration;

use sluice_runtime::state::{KeyValueStore, StateDb, StoreName, restore, restore_with};

const CHANGELOG: &str = "app-counts-changelog";

fn write(producer: &Producer, entries: &[(&str, Option<&str>)], commit: bool) {
    producer.begin_transaction().expect("begin");
    for (k, v) in entries {
        let record = match v {
            Some(v) => ProducerRecord::new(CHANGELOG, v.to_string()).with_key(k.to_string()),
            None => ProducerRecord::tombstone(CHANGELOG, k.to_string()),
        };
        producer.send(record.with_partition(1)).expect("send");
    }
    if commit {
        producer.commit_transaction().expect("commit");
    } else {
        producer.abort_transaction().expect("abort");
    }
}

fn contents(store: &KeyValueStore<String, String>, db: &StateDb) -> Vec<(String, String)> {
    let nothing_written = db.overlay();
    store
        .all(&nothing_written)
        .expect("scan")
        .collect::<Result<_, _>>()
        .expect("read")
}

#[test]
fn restore_applies_exactly_the_committed_changelog_and_resumes_from_its_checkpoint() {
    let log_dir = tempfile::tempdir().expect("tempdir");
    let state_dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(log_dir.path(), BrokerConfig::default()).expect("broker");
    broker
        .create_topic(CHANGELOG, TopicConfig::default().with_partitions(2))
        .expect("create");
    let producer = Producer::new(
        &broker,
        ProducerConfig::default().with_transactional_id("app-0"),
    )
    .expect("producer");
    producer.init_transactions().expect("init");
    write(&producer, &[("k1", Some("a")), ("k2", Some("b"))], true);
    write(&producer, &[("k1", Some("aborted"))], false);
    write(&producer, &[("k2", None), ("k3", Some("c"))], true);

    let db = StateDb::open(state_dir.path()).expect("state");
    let name = StoreName::new("counts", 1);
    let mut reports = Vec::new();
    let applied =
        restore(&db, &name, &broker, CHANGELOG, |p| reports.push(p.clone())).expect("restore");
    assert_eq!(applied, 4, "two committed transactions of two records each");
    let store: KeyValueStore<String, String> =
        db.kv_store(&name, StringSerde, StringSerde).expect("store");
    assert_eq!(
        contents(&store, &db),
        vec![("k1".into(), "a".into()), ("k3".into(), "c".into())]
    );
    let end = broker.topic_metadata(CHANGELOG).expect("meta").partitions[1].log_end_offset;
    assert_eq!(db.checkpoint(&name).expect("checkpoint"), Some(end));
    assert_eq!(
        reports.last().map(|r| (r.position, r.end)),
        Some((end, end))
    );

    // More committed writes, and a transaction still open after them: restore waits for it
    // to end and applies the writes on both sides of it, never stopping at the open
    // transaction with committed writes possibly beyond it.
    write(&producer, &[("k4", Some("d"))], true);
    producer.begin_transaction().expect("begin");
    producer
        .send(
            ProducerRecord::new(CHANGELOG, "open")
                .with_key("k5")
                .with_partition(1),
        )
        .expect("send");
    producer.flush().expect("flush");
    // Where read_committed readers stop while the transaction is open: its first offset.
    let open_at = broker.topic_metadata(CHANGELOG).expect("meta").partitions[1].last_stable_offset;

    // Left open, with a short wait: the restore says where it is stuck, and what it applied
    // before it stays applied, with its checkpoint. (A store of its own, reading the same
    // changelog partition, so that the store below still has k4 to restore.) The 200 ms is
    // the open-transaction timeout under test, not a wait for anything.
    let probe = StoreName::new("probe", 1);
    let err = restore_with(
        &db,
        &probe,
        &broker,
        CHANGELOG,
        100,
        Duration::from_millis(200),
        |_| Ok(()),
    )
    .expect_err("an open transaction");
    assert!(
        err.to_string()
            .contains(&format!("stalled at {CHANGELOG}-1")),
        "{err}"
    );
    assert_eq!(db.checkpoint(&probe).expect("checkpoint"), Some(open_at));
    let probe_store: KeyValueStore<String, String> = db
        .kv_store(&probe, StringSerde, StringSerde)
        .expect("store");
    assert_eq!(
        contents(&probe_store, &db),
        vec![
            ("k1".into(), "a".into()),
            ("k3".into(), "c".into()),
            ("k4".into(), "d".into())
        ]
    );

    // The transaction commits once the restore has reached it (its progress says so), so
    // the restore meets it open and must wait for it. The committer gives up if the restore
    // returns without reaching it (the sender is dropped with the callback).
    let (reached, at_open_txn) = std::sync::mpsc::channel::<()>();
    let committer = std::thread::spawn(move || {
        if at_open_txn.recv().is_ok() {
            producer.commit_transaction().expect("commit");
        }
    });
    let mut reached = Some(reached);
    let mut positions = Vec::new();
    let applied = restore(&db, &name, &broker, CHANGELOG, |p| {
        positions.push(p.position);
        if p.position == open_at
            && let Some(reached) = reached.take()
        {
            reached.send(()).expect("the committer waits");
        }
    })
    .expect("restore");
    drop(reached);
    committer.join().expect("committer");
    assert!(
        positions.contains(&open_at),
        "the restore never reached the open transaction at {open_at}: {positions:?}"
    );
    assert_eq!(applied, 2, "k4, then k5 once its transaction committed");
    assert_eq!(
        contents(&store, &db),
        vec![
            ("k1".into(), "a".into()),
            ("k3".into(), "c".into()),
            ("k4".into(), "d".into()),
            ("k5".into(), "open".into())
        ]
    );
    // Nothing new committed: a restore applies nothing.
    assert_eq!(
        restore(&db, &name, &broker, CHANGELOG, |_| {}).expect("restore"),
        0
    );
}
