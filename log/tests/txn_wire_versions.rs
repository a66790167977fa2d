//! What Kafka's own clients need from the transaction protocol, through the broker's public
//! API: transaction version 1 (the epoch stays across transactions, markers at the
//! transaction's epoch, sequences run on, EndTxn retries, timeouts still fence, lost
//! markers are written again and only those) and KIP-360's InitProducerId with the
//! producer's current id and epoch, idempotent and transactional.

mod common;

use std::time::Duration;

use bytes::Bytes;
use sluice_log::batch::{BatchBuilder, split_batches};
use sluice_log::{
    Broker, Error, FsyncPolicy, IsolationLevel, ProducerIdAndEpoch, TopicConfig, TopicPartition,
    TxnState, TxnVersion,
};

const MINUTE: Duration = Duration::from_secs(60);

fn batch(id: ProducerIdAndEpoch, seq: i32, txn: bool, values: &[&str]) -> Bytes {
    let mut b = BatchBuilder::new()
        .with_producer(id.producer_id, id.epoch, seq)
        .with_transactional(txn);
    for v in values {
        b.append(1_000, None, Some(v.as_bytes()), &[]);
    }
    b.build().expect("build")
}

/// Every data record's value at `isolation`, dropping aborted ones under read_committed.
fn values(broker: &Broker, topic: &str, isolation: IsolationLevel) -> Vec<String> {
    let data = broker
        .read_isolated(topic, 0, 0, 1 << 20, isolation)
        .expect("read");
    let mut out = Vec::new();
    for b in split_batches(data.records).expect("split") {
        let h = *b.header();
        let aborted = data.aborted_transactions.iter().any(|a| {
            a.producer_id == h.producer_id
                && a.first_offset <= h.base_offset
                && h.base_offset <= a.last_offset
        });
        if h.is_control() || (aborted && h.is_transactional()) {
            continue;
        }
        for r in b.records().expect("records") {
            let v = r.expect("record").value.unwrap_or_default();
            out.push(String::from_utf8_lossy(&v).into_owned());
        }
    }
    out
}

fn setup(fsync: FsyncPolicy) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_fsync(fsync))
        .expect("create");
    (dir, broker)
}

fn t0() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// One TV1 transaction of `values` at sequence `seq`, ended with `commit`.
fn tv1_txn(broker: &Broker, id: ProducerIdAndEpoch, seq: i32, values: &[&str], commit: bool) {
    broker
        .add_partitions_to_txn("app", id, &[t0()])
        .expect("add");
    broker
        .produce("t", 0, batch(id, seq, true, values))
        .expect("produce");
    let after = broker
        .end_txn_with("app", id, commit, TxnVersion::V1)
        .expect("end");
    assert_eq!(after, id, "TV1 keeps the producer id and epoch");
}

#[test]
fn tv1_keeps_the_epoch_and_sequences_and_read_committed_sees_exactly_the_commits() {
    let (_dir, broker) = setup(FsyncPolicy::Commit);
    let id = broker.init_transactions("app", MINUTE).expect("init");
    tv1_txn(&broker, id, 0, &["a", "b"], true);
    // The sequence runs on at the same epoch: 0 again is out of order.
    broker
        .add_partitions_to_txn("app", id, &[t0()])
        .expect("add");
    assert!(matches!(
        broker.produce("t", 0, batch(id, 0, true, &["x"])),
        Err(Error::OutOfOrderSequence {
            expected: 2,
            received: 0,
            ..
        })
    ));
    broker
        .produce("t", 0, batch(id, 2, true, &["c"]))
        .expect("produce");
    assert_eq!(
        broker
            .end_txn_with("app", id, false, TxnVersion::V1)
            .expect("abort"),
        id
    );
    tv1_txn(&broker, id, 3, &["d"], true);
    assert_eq!(
        values(&broker, "t", IsolationLevel::ReadCommitted),
        ["a", "b", "d"]
    );
    assert_eq!(
        values(&broker, "t", IsolationLevel::ReadUncommitted),
        ["a", "b", "c", "d"]
    );
    let described = broker.describe_transaction("app").expect("describe");
    assert_eq!(
        (described.epoch, described.state),
        (id.epoch, TxnState::CompleteCommit)
    );
    // Every marker carries the data's epoch.
    let data = broker.read("t", 0, 0, 1 << 20).expect("read");
    let batches = split_batches(data.records).expect("split");
    let markers: Vec<_> = batches.iter().filter(|b| b.header().is_control()).collect();
    assert_eq!(markers.len(), 3);
    assert!(
        markers
            .iter()
            .all(|b| b.header().producer_epoch == id.epoch)
    );
}

#[test]
fn a_tv1_abort_marker_at_the_data_epoch_lists_the_aborted_range() {
    let (_dir, broker) = setup(FsyncPolicy::Commit);
    let id = broker.init_transactions("app", MINUTE).expect("init");
    tv1_txn(&broker, id, 0, &["gone", "gone too"], false);
    let data = broker
        .read_isolated("t", 0, 0, 1 << 20, IsolationLevel::ReadCommitted)
        .expect("read");
    assert_eq!(data.last_stable_offset, 3);
    assert_eq!(data.aborted_transactions.len(), 1);
    let aborted = data.aborted_transactions[0];
    assert_eq!(
        (
            aborted.producer_id,
            aborted.first_offset,
            aborted.last_offset
        ),
        (id.producer_id, 0, 2)
    );
    assert!(values(&broker, "t", IsolationLevel::ReadCommitted).is_empty());
}

#[test]
fn tv1_end_txn_retries_succeed_and_mismatches_are_refused() {
    let (_dir, broker) = setup(FsyncPolicy::Commit);
    let id = broker.init_transactions("app", MINUTE).expect("init");
    assert!(
        matches!(
            broker.end_txn_with("app", id, true, TxnVersion::V1),
            Err(Error::InvalidTxnState(_))
        ),
        "nothing open yet"
    );
    tv1_txn(&broker, id, 0, &["a"], true);
    assert_eq!(
        broker
            .end_txn_with("app", id, true, TxnVersion::V1)
            .expect("retry"),
        id,
        "a retried commit is answered again"
    );
    assert!(
        matches!(
            broker.end_txn_with("app", id, false, TxnVersion::V1),
            Err(Error::InvalidTxnState(_))
        ),
        "an abort after the commit"
    );
    let stale = ProducerIdAndEpoch {
        epoch: id.epoch + 1,
        ..id
    };
    assert!(matches!(
        broker.end_txn_with("app", stale, true, TxnVersion::V1),
        Err(Error::TxnProducerFenced { .. })
    ));
    assert_eq!(values(&broker, "t", IsolationLevel::ReadCommitted), ["a"]);
    assert_eq!(
        broker
            .read("t", 0, 0, 1 << 20)
            .expect("read")
            .high_watermark,
        2,
        "one marker"
    );
}

#[test]
fn a_tv1_transaction_that_times_out_is_aborted_and_its_producer_fenced() {
    let (_dir, broker) = setup(FsyncPolicy::Commit);
    let id = broker
        .init_transactions("app", Duration::from_millis(1))
        .expect("init");
    broker
        .add_partitions_to_txn("app", id, &[t0()])
        .expect("add");
    broker
        .produce("t", 0, batch(id, 0, true, &["late"]))
        .expect("produce");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(broker.abort_expired_transactions().expect("sweep"), 1);
    assert!(broker.describe_transaction("app").expect("describe").epoch > id.epoch);
    assert!(matches!(
        broker.end_txn_with("app", id, true, TxnVersion::V1),
        Err(Error::TxnProducerFenced { .. })
    ));
    assert!(matches!(
        broker.produce("t", 0, batch(id, 1, false, &["zombie"])),
        Err(Error::ProducerFenced { .. })
    ));
    assert!(values(&broker, "t", IsolationLevel::ReadCommitted).is_empty());
}

/// Under `fsync = never` TV1 markers are remembered until synced. A clean restart with the
/// next transaction open at the same epoch must not write the old marker again (it would
/// commit the open transaction); a power loss that takes the marker must.
#[test]
fn tv1_lost_markers_are_written_again_and_only_lost_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = tempfile::tempdir().expect("tempdir");
    let id;
    {
        let broker = common::quiet_broker(dir.path());
        broker
            .create_topic("t", TopicConfig::default().with_fsync(FsyncPolicy::Never))
            .expect("create");
        id = broker.init_transactions("app", MINUTE).expect("init");
        broker
            .add_partitions_to_txn("app", id, &[t0()])
            .expect("add");
        broker
            .produce("t", 0, batch(id, 0, true, &["kept"]))
            .expect("produce");
        assert_eq!(broker.flush_partition("t", 0).expect("flush"), 1);
        assert_eq!(
            broker
                .end_txn_with("app", id, true, TxnVersion::V1)
                .expect("commit"),
            id
        );
        common::copy_dir(dir.path(), image.path());
        broker
            .add_partitions_to_txn("app", id, &[t0()])
            .expect("add");
        broker
            .produce("t", 0, batch(id, 1, true, &["open"]))
            .expect("produce");
        broker.close().expect("close");
    }
    // A clean restart: the second transaction stays open.
    {
        let broker = common::quiet_broker(dir.path());
        let info = broker.topic_metadata("t").expect("meta").partitions[0];
        assert_eq!((info.last_stable_offset, info.high_watermark), (2, 3));
        assert_eq!(
            values(&broker, "t", IsolationLevel::ReadCommitted),
            ["kept"]
        );
        assert_eq!(
            broker.describe_transaction("app").expect("describe").state,
            TxnState::Ongoing
        );
    }
    // Power loss took the commit marker at offset 1.
    common::cut_to_offset(&image.path().join("t-0"), 1);
    let broker = common::quiet_broker(image.path());
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!(info.last_stable_offset, info.high_watermark);
    assert_eq!(
        values(&broker, "t", IsolationLevel::ReadCommitted),
        ["kept"]
    );
    let data = broker.read("t", 0, 0, 1 << 20).expect("read");
    let marker = split_batches(data.records).expect("split").remove(1);
    assert!(marker.header().is_control());
    assert_eq!(marker.header().producer_epoch, id.epoch);
}

#[test]
fn kip360_idempotent_reinit_bumps_the_epoch_and_sequences_restart() {
    let (_dir, broker) = setup(FsyncPolicy::Commit);
    let id = broker
        .init_producer_id_with(None, MINUTE, None)
        .expect("init");
    assert_eq!(id.epoch, 0);
    broker
        .produce("t", 0, batch(id, 0, false, &["a", "b"]))
        .expect("produce");
    let next = broker
        .init_producer_id_with(None, MINUTE, Some(id))
        .expect("re-init");
    assert_eq!(
        next,
        ProducerIdAndEpoch {
            producer_id: id.producer_id,
            epoch: 1
        }
    );
    broker
        .produce("t", 0, batch(next, 0, false, &["c"]))
        .expect("sequence 0 at the new epoch");
    assert!(matches!(
        broker.produce("t", 0, batch(id, 2, false, &["zombie"])),
        Err(Error::ProducerFenced { .. })
    ));
    assert_eq!(
        values(&broker, "t", IsolationLevel::ReadUncommitted),
        ["a", "b", "c"]
    );
    // An id this broker never handed out, an exhausted epoch, a transactional id's
    // producer and "no producer" (-1) all get a new producer id at epoch 0.
    let txn = broker.init_transactions("app", MINUTE).expect("init");
    for current in [
        ProducerIdAndEpoch {
            producer_id: 1 << 40,
            epoch: 0,
        },
        ProducerIdAndEpoch {
            producer_id: id.producer_id,
            epoch: i16::MAX - 1,
        },
        txn,
        ProducerIdAndEpoch {
            producer_id: -1,
            epoch: -1,
        },
    ] {
        let fresh = broker
            .init_producer_id_with(None, MINUTE, Some(current))
            .expect("re-init");
        assert_eq!(fresh.epoch, 0, "{current:?}");
        assert_ne!(fresh.producer_id, current.producer_id, "{current:?}");
    }
}

#[test]
fn kip360_transactional_reinit_checks_the_current_epoch() {
    let (_dir, broker) = setup(FsyncPolicy::Commit);
    let id = broker
        .init_producer_id_with(Some("app"), MINUTE, None)
        .expect("init");
    broker
        .add_partitions_to_txn("app", id, &[t0()])
        .expect("add");
    broker
        .produce("t", 0, batch(id, 0, true, &["aborted"]))
        .expect("produce");
    let fenced = |current| {
        matches!(
            broker.init_producer_id_with(Some("app"), MINUTE, Some(current)),
            Err(Error::TxnProducerFenced { .. })
        )
    };
    assert!(fenced(ProducerIdAndEpoch {
        epoch: id.epoch + 3,
        ..id
    }));
    assert!(fenced(ProducerIdAndEpoch {
        producer_id: id.producer_id + 1,
        epoch: id.epoch
    }));
    let next = broker
        .init_producer_id_with(Some("app"), MINUTE, Some(id))
        .expect("recover");
    assert_eq!(next.producer_id, id.producer_id);
    assert!(next.epoch > id.epoch);
    assert!(values(&broker, "t", IsolationLevel::ReadCommitted).is_empty());
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!(
        info.last_stable_offset, info.high_watermark,
        "the open one was aborted"
    );
    // A retry of that request gets the same answer, without another bump.
    assert_eq!(
        broker
            .init_producer_id_with(Some("app"), MINUTE, Some(id))
            .expect("retry"),
        next
    );
    // The current producer may recover again; its predecessor's retry is then fenced.
    let again = broker
        .init_producer_id_with(Some("app"), MINUTE, Some(next))
        .expect("recover again");
    assert_eq!(again.epoch, next.epoch + 1);
    assert!(fenced(id));
    // A new instance (no current) fences every earlier one, retries included.
    let fresh = broker
        .init_producer_id_with(Some("app"), MINUTE, None)
        .expect("new instance");
    assert_eq!(fresh.epoch, again.epoch + 1);
    assert!(fenced(next));
    assert!(fenced(again));
    // An id the coordinator does not know starts at epoch 0.
    let other = broker
        .init_producer_id_with(Some("other"), MINUTE, Some(id))
        .expect("new id");
    assert_eq!(other.epoch, 0);
    assert!(matches!(
        broker.init_producer_id_with(Some("app"), Duration::from_millis(900_001), Some(fresh)),
        Err(Error::InvalidTransactionTimeout { .. })
    ));
}

#[test]
fn tv2_is_unchanged_each_end_moves_the_epoch_on() {
    let (_dir, broker) = setup(FsyncPolicy::Commit);
    let id = broker.init_transactions("app", MINUTE).expect("init");
    broker
        .add_partitions_to_txn("app", id, &[t0()])
        .expect("add");
    broker
        .produce("t", 0, batch(id, 0, true, &["a"]))
        .expect("produce");
    let next = broker
        .end_txn_with("app", id, true, TxnVersion::V2)
        .expect("commit");
    assert_eq!(next.epoch, id.epoch + 1);
    assert_eq!(broker.end_txn("app", id, true).expect("retry"), next);
    let data = broker.read("t", 0, 0, 1 << 20).expect("read");
    let marker = split_batches(data.records).expect("split").remove(1);
    assert_eq!(marker.header().producer_epoch, next.epoch);
}
