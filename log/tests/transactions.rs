//! Transactions through the broker's public API: commit and abort with read_committed and
//! read_uncommitted readers, the last stable offset, fencing by a new instance, KIP-890's
//! defences against delayed produce and end_txn, timeouts, transactional offset commits,
//! and recovery of transaction state after a restart.

mod common;

use std::time::Duration;

use bytes::Bytes;
use sluice_log::batch::BatchBuilder;
use sluice_log::{
    Broker, Consumer, ConsumerConfig, Error, FsyncPolicy, IsolationLevel, ProducerIdAndEpoch,
    TopicConfig, TopicPartition, TxnState,
};

fn txn_batch(id: ProducerIdAndEpoch, seq: i32, values: &[&str]) -> Bytes {
    let mut b = BatchBuilder::new()
        .with_producer(id.producer_id, id.epoch, seq)
        .with_transactional(true);
    for v in values {
        b.append(1_000, None, Some(v.as_bytes()), &[]);
    }
    b.build().expect("build")
}

fn values(broker: &Broker, topic: &str, partition: i32, isolation: IsolationLevel) -> Vec<String> {
    let mut consumer = Consumer::new(broker, ConsumerConfig::default().with_isolation(isolation));
    consumer
        .assign(vec![TopicPartition::new(topic, partition)])
        .expect("assign");
    let mut out = Vec::new();
    loop {
        let records = consumer.poll(Duration::from_millis(30)).expect("poll");
        if records.is_empty() {
            return out;
        }
        out.extend(
            records
                .into_iter()
                .map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned()),
        );
    }
}

fn setup() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_partitions(2))
        .expect("create");
    (dir, broker)
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

#[test]
fn committed_transactions_appear_atomically_and_aborted_ones_never() {
    let (_dir, broker) = setup();
    broker
        .produce("t", 0, common::batch(&[b"plain".to_vec()], None, 1))
        .expect("plain");
    let id = broker
        .init_transactions("app-1", Duration::from_secs(60))
        .expect("init");
    broker
        .add_partitions_to_txn("app-1", id, &[tp(0), tp(1)])
        .expect("add");
    broker
        .produce("t", 0, txn_batch(id, 0, &["a1", "a2"]))
        .expect("produce");
    broker
        .produce("t", 1, txn_batch(id, 0, &["b1"]))
        .expect("produce");
    // Open: read_committed stops at the last stable offset; read_uncommitted sees it all.
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!((info.last_stable_offset, info.high_watermark), (1, 3));
    assert_eq!(
        values(&broker, "t", 0, IsolationLevel::ReadCommitted),
        vec!["plain"]
    );
    assert_eq!(
        values(&broker, "t", 0, IsolationLevel::ReadUncommitted),
        vec!["plain", "a1", "a2"]
    );
    let next = broker.end_txn("app-1", id, true).expect("commit");
    assert_eq!(
        next.epoch,
        id.epoch + 1,
        "KIP-890: every transaction ends with a new epoch"
    );
    assert_eq!(
        values(&broker, "t", 0, IsolationLevel::ReadCommitted),
        vec!["plain", "a1", "a2"]
    );
    assert_eq!(
        values(&broker, "t", 1, IsolationLevel::ReadCommitted),
        vec!["b1"]
    );

    // The next transaction aborts: read_committed never shows it, markers never show.
    broker
        .add_partitions_to_txn("app-1", next, &[tp(0)])
        .expect("add");
    broker
        .produce("t", 0, txn_batch(next, 0, &["x1", "x2"]))
        .expect("produce");
    let after = broker.end_txn("app-1", next, false).expect("abort");
    broker
        .produce("t", 0, common::batch(&[b"later".to_vec()], None, 1))
        .expect("plain");
    assert_eq!(
        values(&broker, "t", 0, IsolationLevel::ReadCommitted),
        vec!["plain", "a1", "a2", "later"]
    );
    assert_eq!(
        values(&broker, "t", 0, IsolationLevel::ReadUncommitted),
        vec!["plain", "a1", "a2", "x1", "x2", "later"]
    );
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!(info.last_stable_offset, info.high_watermark);
    let described = broker.describe_transaction("app-1").expect("describe");
    assert_eq!(
        (described.state, described.epoch),
        (TxnState::CompleteAbort, after.epoch)
    );
}

#[test]
fn a_new_instance_aborts_the_open_transaction_and_fences_the_old_one() {
    let (_dir, broker) = setup();
    let old = broker
        .init_transactions("app", Duration::from_secs(60))
        .expect("init");
    broker
        .add_partitions_to_txn("app", old, &[tp(0)])
        .expect("add");
    broker
        .produce("t", 0, txn_batch(old, 0, &["zombie-1"]))
        .expect("produce");
    let new = broker
        .init_transactions("app", Duration::from_secs(60))
        .expect("re-init");
    assert_eq!(new.producer_id, old.producer_id);
    assert!(new.epoch > old.epoch);
    // The zombie's writes and its commit are refused everywhere.
    let produce = broker.produce("t", 0, txn_batch(old, 1, &["zombie-2"]));
    assert!(
        matches!(produce, Err(Error::ProducerFenced { .. })),
        "{produce:?}"
    );
    assert!(matches!(
        broker.end_txn("app", old, true),
        Err(Error::TxnProducerFenced { .. })
    ));
    assert!(matches!(
        broker.add_partitions_to_txn("app", old, &[tp(1)]),
        Err(Error::TxnProducerFenced { .. })
    ));
    assert!(values(&broker, "t", 0, IsolationLevel::ReadCommitted).is_empty());
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!(
        info.last_stable_offset, info.high_watermark,
        "the zombie's transaction was aborted"
    );
}

/// KIP-890: a produce and an end_txn delayed from the previous transaction arrive after the
/// next one began; neither may touch it.
#[test]
fn late_produce_and_late_end_txn_cannot_affect_the_next_transaction() {
    let (_dir, broker) = setup();
    let first = broker
        .init_transactions("app", Duration::from_secs(60))
        .expect("init");
    broker
        .add_partitions_to_txn("app", first, &[tp(0)])
        .expect("add");
    broker
        .produce("t", 0, txn_batch(first, 0, &["t1-a"]))
        .expect("produce");
    let delayed_produce = txn_batch(first, 1, &["t1-late"]);
    let second = broker.end_txn("app", first, true).expect("commit");
    // A retried commit (its answer was lost) is answered again, without effect.
    assert_eq!(
        broker.end_txn("app", first, true).expect("retried commit"),
        second
    );
    broker
        .add_partitions_to_txn("app", second, &[tp(0)])
        .expect("add");
    broker
        .produce("t", 0, txn_batch(second, 0, &["t2-a"]))
        .expect("produce");
    // The delayed produce of transaction 1 arrives now.
    let late = broker.produce("t", 0, delayed_produce);
    assert!(
        matches!(late, Err(Error::ProducerFenced { .. })),
        "{late:?}"
    );
    // A delayed abort of transaction 1 arrives now: it must not abort transaction 2.
    let late_end = broker.end_txn("app", first, false);
    assert!(
        matches!(late_end, Err(Error::TxnProducerFenced { .. })),
        "{late_end:?}"
    );
    let late_commit = broker.end_txn("app", first, true);
    assert!(
        matches!(late_commit, Err(Error::TxnProducerFenced { .. })),
        "{late_commit:?}"
    );
    broker.end_txn("app", second, true).expect("commit 2");
    assert_eq!(
        values(&broker, "t", 0, IsolationLevel::ReadCommitted),
        vec!["t1-a", "t2-a"]
    );
}

#[test]
fn writes_outside_the_transaction_are_refused() {
    let (_dir, broker) = setup();
    let id = broker
        .init_transactions("app", Duration::from_secs(60))
        .expect("init");
    let unadded = broker.produce("t", 1, txn_batch(id, 0, &["x"]));
    assert!(
        matches!(unadded, Err(Error::InvalidTxnState(_))),
        "{unadded:?}"
    );
    broker
        .add_partitions_to_txn("app", id, &[tp(0)])
        .expect("add");
    broker
        .produce("t", 0, txn_batch(id, 0, &["in"]))
        .expect("produce");
    let mut plain = BatchBuilder::new().with_producer(id.producer_id, id.epoch, 1);
    plain.append(1, None, Some(b"outside"), &[]);
    let outside = broker.produce("t", 0, plain.build().expect("build"));
    assert!(
        matches!(outside, Err(Error::InvalidTxnState(_))),
        "{outside:?}"
    );
    assert!(matches!(
        broker.init_transactions("app", Duration::from_secs(3600)),
        Err(Error::InvalidTransactionTimeout { .. })
    ));
    assert!(matches!(
        broker.end_txn("nobody", id, true),
        Err(Error::TransactionalIdNotFound(_))
    ));
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let (_dir, broker) = setup();
    let id = broker
        .init_transactions("slow", Duration::from_millis(1))
        .expect("init");
    broker
        .add_partitions_to_txn("slow", id, &[tp(0)])
        .expect("add");
    broker
        .produce("t", 0, txn_batch(id, 0, &["never"]))
        .expect("produce");
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(broker.abort_expired_transactions().expect("sweep"), 1);
    assert!(matches!(
        broker.end_txn("slow", id, true),
        Err(Error::TxnProducerFenced { .. })
    ));
    assert!(matches!(
        broker.produce("t", 0, txn_batch(id, 1, &["more"])),
        Err(Error::ProducerFenced { .. })
    ));
    assert!(values(&broker, "t", 0, IsolationLevel::ReadCommitted).is_empty());
}

#[test]
fn transactional_offsets_are_pending_until_commit_and_vanish_on_abort() {
    let (_dir, broker) = setup();
    let id = broker
        .init_transactions("app", Duration::from_secs(60))
        .expect("init");
    let offsets = vec![(tp(0), 42)];
    broker
        .add_offsets_to_txn("app", id, "g")
        .expect("add offsets");
    broker
        .txn_offset_commit("app", id, "g", -1, "", &offsets)
        .expect("txn commit");
    assert!(matches!(
        broker.offset_fetch("g", &[tp(0)], true),
        Err(Error::UnstableOffsetCommit { .. })
    ));
    assert_eq!(
        broker.offset_fetch("g", &[tp(0)], false).expect("fetch"),
        vec![(tp(0), None)]
    );
    let next = broker.end_txn("app", id, true).expect("commit");
    assert_eq!(
        broker.offset_fetch("g", &[tp(0)], true).expect("fetch"),
        vec![(tp(0), Some(42))]
    );

    broker
        .add_offsets_to_txn("app", next, "g")
        .expect("add offsets");
    broker
        .txn_offset_commit("app", next, "g", -1, "", &[(tp(0), 99)])
        .expect("txn commit");
    broker.end_txn("app", next, false).expect("abort");
    assert_eq!(
        broker.offset_fetch("g", &[tp(0)], true).expect("fetch"),
        vec![(tp(0), Some(42))]
    );
}

#[test]
fn zombie_group_members_cannot_commit_offsets() {
    let (_dir, broker) = setup();
    let first = broker
        .join_group("g", None, &["t".to_string()], Duration::from_secs(30))
        .expect("join");
    assert_eq!(first.partitions.len(), 2);
    let second = broker
        .join_group("g", None, &["t".to_string()], Duration::from_secs(30))
        .expect("join");
    assert!(second.generation > first.generation);
    // The first member still thinks it owns both partitions: its commits are fenced.
    let stale = broker.offset_commit("g", first.generation, &first.member_id, &[(tp(0), 5)]);
    assert!(
        matches!(stale, Err(Error::IllegalGeneration { .. })),
        "{stale:?}"
    );
    assert!(matches!(
        broker.heartbeat("g", &first.member_id, first.generation),
        Err(Error::RebalanceInProgress { .. })
    ));
    let synced = broker.sync_group("g", &first.member_id).expect("sync");
    assert_eq!(synced.generation, second.generation);
    assert_eq!(
        synced.partitions.len() + second.partitions.len(),
        2,
        "each partition has one owner"
    );
    broker
        .offset_commit("g", synced.generation, &first.member_id, &[(tp(0), 5)])
        .expect("commit");
    // Transactional commits are fenced the same way.
    let id = broker
        .init_transactions("app", Duration::from_secs(60))
        .expect("init");
    broker.add_offsets_to_txn("app", id, "g").expect("add");
    let zombie = broker.txn_offset_commit(
        "app",
        id,
        "g",
        first.generation,
        &first.member_id,
        &[(tp(0), 6)],
    );
    assert!(
        matches!(zombie, Err(Error::IllegalGeneration { .. })),
        "{zombie:?}"
    );
    broker.leave_group("g", &second.member_id).expect("leave");
    let alone = broker.sync_group("g", &first.member_id).expect("sync");
    assert_eq!(
        alone.partitions.len(),
        2,
        "the remaining member takes over every partition"
    );
}

/// A crash with a transaction open and one half-ended (PrepareCommit written, markers not):
/// after reopening, the open one still holds the LSO until it is aborted by a new instance,
/// and the prepared one is completed.
#[test]
fn transaction_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (open, image) = {
        let broker = common::quiet_broker(dir.path());
        broker
            .create_topic(
                "t",
                TopicConfig::default()
                    .with_partitions(2)
                    .with_fsync(FsyncPolicy::Never),
            )
            .expect("create");
        let committed = broker
            .init_transactions("done", Duration::from_secs(60))
            .expect("init");
        broker
            .add_partitions_to_txn("done", committed, &[tp(1)])
            .expect("add");
        broker
            .produce("t", 1, txn_batch(committed, 0, &["c"]))
            .expect("produce");
        let aborted_next = broker.end_txn("done", committed, true).expect("commit");
        broker
            .add_partitions_to_txn("done", aborted_next, &[tp(1)])
            .expect("add");
        broker
            .produce("t", 1, txn_batch(aborted_next, 0, &["aborted"]))
            .expect("produce");
        broker.end_txn("done", aborted_next, false).expect("abort");
        let open = broker
            .init_transactions("open", Duration::from_secs(60))
            .expect("init");
        broker
            .add_partitions_to_txn("open", open, &[tp(0)])
            .expect("add");
        broker
            .produce("t", 0, txn_batch(open, 0, &["pending"]))
            .expect("produce");
        // The crash image, taken with everything as a kill -9 would leave it.
        let image = tempfile::tempdir().expect("tempdir");
        common::copy_dir(dir.path(), image.path());
        (open, image)
    };
    let broker = common::quiet_broker(image.path());
    assert_eq!(
        values(&broker, "t", 1, IsolationLevel::ReadCommitted),
        vec!["c"],
        "aborted data stays hidden"
    );
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!(
        info.last_stable_offset, 0,
        "the open transaction still holds the LSO"
    );
    assert_eq!(
        broker.describe_transaction("open").expect("describe").state,
        TxnState::Ongoing
    );
    let next = broker
        .init_transactions("open", Duration::from_secs(60))
        .expect("re-init");
    assert!(next.epoch > open.epoch);
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!(info.last_stable_offset, info.high_watermark);
    assert!(values(&broker, "t", 0, IsolationLevel::ReadCommitted).is_empty());
}

/// Under `fsync = never` a commit's marker is not fsynced. A power loss that keeps the
/// transaction's data but takes its marker must not leave it hanging: the coordinator
/// writes the marker again when the broker opens.
#[test]
fn a_marker_lost_to_power_loss_is_written_again_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = tempfile::tempdir().expect("tempdir");
    {
        let broker = common::quiet_broker(dir.path());
        broker
            .create_topic("n", TopicConfig::default().with_fsync(FsyncPolicy::Never))
            .expect("create");
        let id = broker
            .init_transactions("p", Duration::from_secs(60))
            .expect("init");
        let n0 = TopicPartition::new("n", 0);
        broker
            .add_partitions_to_txn("p", id, std::slice::from_ref(&n0))
            .expect("add");
        broker
            .produce("n", 0, txn_batch(id, 0, &["kept"]))
            .expect("produce");
        assert_eq!(
            broker.flush_partition("n", 0).expect("flush"),
            1,
            "the data is on disk"
        );
        broker.end_txn("p", id, true).expect("commit");
        assert_eq!(
            broker.topic_metadata("n").expect("meta").partitions[0].durable_offset,
            1
        );
        common::copy_dir(dir.path(), image.path());
    }
    // Power loss: the unsynced marker at offset 1 is gone.
    common::cut_to_offset(&image.path().join("n-0"), 1);
    let broker = common::quiet_broker(image.path());
    let info = broker.topic_metadata("n").expect("meta").partitions[0];
    assert_eq!(
        info.last_stable_offset, info.high_watermark,
        "the transaction is not left hanging"
    );
    assert_eq!(
        values(&broker, "n", 0, IsolationLevel::ReadCommitted),
        vec!["kept"]
    );
}
