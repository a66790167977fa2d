//! The transactional producer and the group consumer through their public API: a
//! consume-transform-produce loop with `send_offsets_to_transaction` that is exactly-once
//! across a crash of the processing instance, rebalances between group members, and the
//! classification of transactional errors.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_log::{
    Consumer, ConsumerConfig, Error, Producer, ProducerConfig, ProducerRecord, RebalanceListener,
    TopicConfig, TopicPartition, TxnErrorKind,
};

fn drain_values(consumer: &mut Consumer) -> Vec<String> {
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 5 {
        let records = consumer.poll(Duration::from_millis(20)).expect("poll");
        if records.is_empty() {
            idle += 1;
        }
        out.extend(
            records
                .into_iter()
                .map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned()),
        );
    }
    out
}

/// Reads up to `max` input records as group `g`, writes each upper-cased to `out` and
/// commits output and input offsets in one transaction. Returns how many it processed.
fn process_once(
    broker: &sluice_log::Broker,
    producer: &Producer,
    max: usize,
    commit: bool,
) -> usize {
    let mut consumer = Consumer::new(
        broker,
        ConsumerConfig::default()
            .with_group_id("g")
            .with_max_poll_records(max)
            .with_heartbeat_interval(Duration::ZERO),
    );
    consumer.subscribe(&["in"], ()).expect("subscribe");
    let records = consumer.poll(Duration::from_millis(200)).expect("poll");
    producer.begin_transaction().expect("begin");
    let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for r in &records {
        let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_uppercase();
        producer
            .send(ProducerRecord::new("out", value))
            .expect("send");
        next.insert(TopicPartition::new("in", r.partition), r.offset + 1);
    }
    let offsets: Vec<_> = next.into_iter().collect();
    producer
        .send_offsets_to_transaction(&offsets, &consumer.group_metadata().expect("metadata"))
        .expect("offsets");
    if commit {
        producer.commit_transaction().expect("commit");
    } else {
        producer.abort_transaction().expect("abort");
    }
    records.len()
}

#[test]
fn consume_transform_produce_is_exactly_once_across_an_instance_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("in", TopicConfig::default().with_partitions(2))
        .expect("create");
    broker
        .create_topic("out", TopicConfig::default())
        .expect("create");
    let input = Producer::new(&broker, ProducerConfig::default()).expect("producer");
    for i in 0..20 {
        input
            .send(ProducerRecord::new("in", format!("v{i}")).with_key(format!("k{i}")))
            .expect("send");
    }
    input.flush().expect("flush");

    let config = ProducerConfig::default().with_transactional_id("upper");
    let first = Producer::new(&broker, config.clone()).expect("producer");
    first.init_transactions().expect("init");
    assert_eq!(process_once(&broker, &first, 7, true), 7);
    // An aborted round leaves neither output nor offsets behind.
    assert_eq!(process_once(&broker, &first, 5, false), 5);
    // The instance crashes mid-transaction: output written, nothing committed.
    first.begin_transaction().expect("begin");
    first
        .send(ProducerRecord::new("out", "HALF-DONE"))
        .expect("send");
    first.flush().expect("flush");
    // A new instance fences it and picks up from the committed offsets.
    let second = Producer::new(&broker, config).expect("producer");
    second.init_transactions().expect("init");
    assert!(matches!(
        first.commit_transaction().map_err(|e| e.txn_kind()),
        Err(TxnErrorKind::Fatal)
    ));
    let mut processed = 7;
    while processed < 20 {
        let n = process_once(&broker, &second, 6, true);
        assert!(n > 0, "progress stalled at {processed}");
        processed += n;
    }
    assert_eq!(processed, 20);

    let mut reader = Consumer::new(&broker, ConsumerConfig::default());
    reader
        .assign(vec![TopicPartition::new("out", 0)])
        .expect("assign");
    let mut out = drain_values(&mut reader);
    out.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("V{i}")).collect();
    want.sort();
    assert_eq!(
        out, want,
        "each input exactly once in the output, no aborted or half-done record"
    );
    let committed = broker.offset_fetch("g", &[], true).expect("offsets");
    let total: i64 = committed.iter().filter_map(|(_, o)| *o).sum();
    assert_eq!(
        total, 20,
        "the group's offsets cover exactly the processed input"
    );
}

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("assigned {}", partitions.len()));
    }
}

#[test]
fn group_members_share_partitions_and_resume_from_committed_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default().with_partitions(4))
        .expect("create");
    for p in 0..4 {
        broker
            .produce(
                "t",
                p,
                common::batch(&[format!("p{p}").into_bytes()], None, 1),
            )
            .expect("produce");
    }
    let config = ConsumerConfig::default()
        .with_group_id("g")
        .with_heartbeat_interval(Duration::ZERO);
    let events = Recorder::default();
    let mut a = Consumer::new(&broker, config.clone());
    a.subscribe(&["t"], events.clone()).expect("subscribe");
    assert_eq!(a.assignment().len(), 4);
    let mut b = Consumer::new(&broker, config.clone());
    b.subscribe(&["t"], ()).expect("subscribe");
    // a learns of the rebalance on its next poll and gives up two partitions.
    let first_poll = a.poll(Duration::from_millis(10)).expect("poll").len();
    assert_eq!(a.assignment().len() + b.assignment().len(), 4);
    assert_eq!(a.assignment().len(), 2, "sticky and balanced");
    assert_eq!(
        *events.0.lock().expect("lock"),
        vec!["assigned 4".to_string(), "revoked 2".to_string()]
    );
    let seen_a = drain_values(&mut a);
    a.commit_sync().expect("commit");
    let seen_b = drain_values(&mut b);
    b.commit_sync().expect("commit");
    assert_eq!(
        first_poll + seen_a.len() + seen_b.len(),
        4,
        "each record once across the group"
    );
    drop(b); // leaves the group
    a.poll(Duration::from_millis(10)).expect("poll");
    assert_eq!(a.assignment().len(), 4);
    // Everything was committed: a fresh member of the group reads only new records.
    broker
        .produce("t", 0, common::batch(&[b"new".to_vec()], None, 1))
        .expect("produce");
    drop(a);
    let mut c = Consumer::new(&broker, config);
    c.subscribe(&["t"], ()).expect("subscribe");
    assert_eq!(drain_values(&mut c), vec!["new".to_string()]);
}

#[test]
fn transactional_calls_in_the_wrong_state_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default())
        .expect("create");
    let producer = Producer::new(
        &broker,
        ProducerConfig::default().with_transactional_id("x"),
    )
    .expect("producer");
    assert!(
        matches!(producer.begin_transaction(), Err(Error::IllegalState(_))),
        "begin before init"
    );
    producer.init_transactions().expect("init");
    assert!(
        matches!(
            producer.send(ProducerRecord::new("t", "v")),
            Err(Error::IllegalState(_))
        ),
        "send outside"
    );
    producer.begin_transaction().expect("begin");
    assert!(
        matches!(producer.begin_transaction(), Err(Error::IllegalState(_))),
        "nested begin"
    );
    producer.send(ProducerRecord::new("t", "v")).expect("send");
    producer.commit_transaction().expect("commit");
    assert!(
        matches!(producer.commit_transaction(), Err(Error::IllegalState(_))),
        "commit without begin"
    );
    let plain = Producer::new(&broker, ProducerConfig::default()).expect("producer");
    assert!(
        matches!(plain.init_transactions(), Err(Error::IllegalState(_))),
        "no transactional id"
    );
}

#[test]
fn current_lag_counts_what_is_readable_beyond_the_polled_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("lagged", TopicConfig::default())
        .expect("topic");
    let plain = Producer::new(&broker, ProducerConfig::default()).expect("producer");
    for i in 0..5 {
        plain
            .send(ProducerRecord::new("lagged", format!("v{i}")))
            .expect("send");
    }
    plain.flush().expect("flush");
    let txn = Producer::new(
        &broker,
        ProducerConfig::default().with_transactional_id("lagger"),
    )
    .expect("producer");
    txn.init_transactions().expect("init");
    txn.begin_transaction().expect("begin");
    txn.send(ProducerRecord::new("lagged", "open"))
        .expect("send");
    txn.flush().expect("flush");

    let tp = TopicPartition::new("lagged", 0);
    let mut consumer = Consumer::new(
        &broker,
        ConsumerConfig::default()
            .with_max_poll_records(2)
            .with_auto_offset_reset(sluice_log::OffsetReset::Earliest),
    );
    consumer.assign(vec![tp.clone()]).expect("assign");
    assert_eq!(
        consumer.current_lag(&tp).expect("lag"),
        None,
        "before any fetch"
    );
    let first = consumer.poll(Duration::from_secs(1)).expect("poll");
    assert_eq!(first.len(), 2);
    // read_committed: the open transaction is beyond the last stable offset.
    assert_eq!(consumer.current_lag(&tp).expect("lag"), Some(3));
    let mut seen = first.len();
    while seen < 5 {
        seen += consumer.poll(Duration::from_secs(1)).expect("poll").len();
    }
    assert_eq!(consumer.current_lag(&tp).expect("lag"), Some(0));
    txn.commit_transaction().expect("commit");
    let last = consumer.poll(Duration::from_secs(1)).expect("poll");
    assert_eq!(last.len(), 1, "the committed record");
    assert_eq!(consumer.current_lag(&tp).expect("lag"), Some(0));
}
