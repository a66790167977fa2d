//! Group commit: acks=all appends under the `commit` policy from many threads at once are
//! each acknowledged only once an fsync covers them (the durable offset has passed the
//! batch), and a deferred append's wait does the same; acks=1 never waits.

mod common;

use std::sync::Arc;

use sluice_log::{Acks, FsyncPolicy, TopicConfig};

#[test]
fn concurrent_acks_all_appends_are_durable_when_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Arc::new(common::quiet_broker(dir.path()));
    broker
        .create_topic(
            "events",
            TopicConfig::default()
                .with_partitions(2)
                .with_fsync(FsyncPolicy::Commit),
        )
        .expect("create");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let broker = Arc::clone(&broker);
            std::thread::spawn(move || {
                for i in 0..150 {
                    let partition = (t + i) % 2;
                    let batch = common::batch(&[format!("{t}-{i}").into_bytes()], None, 1);
                    let outcome = broker
                        .produce_with_acks("events", partition as i32, batch, Acks::All)
                        .expect("produce");
                    let durable = broker.topic_metadata("events").expect("meta").partitions
                        [partition]
                        .durable_offset;
                    assert!(
                        durable > outcome.last_offset,
                        "acknowledged offset {} on partition {partition} before it was durable ({durable})",
                        outcome.last_offset
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer thread");
    }
    let meta = broker.topic_metadata("events").expect("meta");
    let total: i64 = meta.partitions.iter().map(|p| p.log_end_offset).sum();
    assert_eq!(total, 8 * 150);
}

#[test]
fn a_deferred_append_is_visible_at_once_and_durable_after_its_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_fsync(FsyncPolicy::Commit))
        .expect("create");
    let (outcome, wait) = broker
        .produce_deferred("t", 0, common::batch(&[b"a".to_vec()], None, 1), Acks::All)
        .expect("append");
    assert_eq!(wait, Some(outcome.last_offset + 1));
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert_eq!(info.high_watermark, 1, "visible before the fsync");
    broker.wait_durable("t", 0, 1).expect("wait");
    let info = broker.topic_metadata("t").expect("meta").partitions[0];
    assert!(info.durable_offset >= 1);

    let (_, wait) = broker
        .produce_deferred(
            "t",
            0,
            common::batch(&[b"b".to_vec()], None, 1),
            Acks::Leader,
        )
        .expect("append");
    assert_eq!(
        wait, None,
        "acks=1 under `commit` does not wait for an fsync"
    );

    broker
        .create_topic("n", TopicConfig::default().with_fsync(FsyncPolicy::Never))
        .expect("create");
    let (_, wait) = broker
        .produce_deferred("n", 0, common::batch(&[b"c".to_vec()], None, 1), Acks::All)
        .expect("append");
    assert_eq!(wait, None, "`never` never waits");
}

#[test]
fn durable_futures_resolve_once_durable_and_report_unknown_partitions_and_a_closed_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .with_partitions(3)
                .with_fsync(FsyncPolicy::Commit),
        )
        .expect("create");
    let mut waits = Vec::new();
    for i in 0..60 {
        let partition = i % 3;
        let (outcome, up_to) = broker
            .produce_deferred(
                "t",
                partition,
                common::batch(&[format!("{i}").into_bytes()], None, 1),
                Acks::All,
            )
            .expect("append");
        let up_to = up_to.expect("acks=all under commit waits");
        assert_eq!(up_to, outcome.last_offset + 1);
        waits.push((partition, up_to, broker.durable("t", partition, up_to)));
    }
    let results = futures::executor::block_on(futures::future::join_all(
        waits
            .into_iter()
            .map(|(p, up_to, w)| async move { (p, up_to, w.await) }),
    ));
    let meta = broker.topic_metadata("t").expect("meta");
    for (partition, up_to, result) in results {
        result.expect("durable");
        assert!(meta.partitions[partition as usize].durable_offset >= up_to);
    }

    let unknown = broker.durable("nope", 0, 1).wait();
    assert!(
        matches!(unknown, Err(sluice_log::Error::UnknownTopic { .. })),
        "{unknown:?}"
    );
    let no_partition = broker.durable("t", 7, 1).wait();
    assert!(no_partition.is_err(), "{no_partition:?}");

    broker.close().expect("close");
    let closed = broker.durable("t", 0, 1_000).wait();
    assert!(
        matches!(closed, Err(sluice_log::Error::Closed(_))),
        "{closed:?}"
    );
}
