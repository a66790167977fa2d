//! docs/architecture.md §3.1 at the state layer, as a property: a hand-driven task (the commit protocol the
//! runtime's tasks will run) counts words with a RocksDB store behind a write overlay, sends
//! its output and changelog records and input offsets in one transaction, then applies the
//! overlay with the changelog checkpoint. Crashes before the commit, and after the commit but
//! before the RocksDB apply, restart the task: a new producer fences the old one, RocksDB
//! reopens at its checkpoint, the changelog is replayed from there, input resumes from the
//! committed offsets. State and output must equal the fold of the input, exactly once.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use sluice_log::{
    Broker, BrokerConfig, Consumer, ConsumerConfig, GroupMetadata, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
};
use sluice_runtime::serde::{BigEndianSerde, StringSerde};
use sluice_runtime::state::{
    KeyValueStore, StateDb, StoreName, changelog_records, changelog_topic, ensure_changelog_topic,
    restore,
};

const APP: &str = "wc";
const INPUT: &str = "in";
const OUTPUT: &str = "out";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    None,
    BeforeCommit,
    AfterCommitBeforeApply,
}

struct Task {
    db: StateDb,
    store: KeyValueStore<String, u64>,
    producer: Producer,
    consumer: Consumer,
    name: StoreName,
}

fn start_task(broker: &Broker, state_dir: &Path) -> Task {
    let name = StoreName::new("counts", 0);
    let changelog = changelog_topic(APP, "counts");
    // The order of docs/architecture.md §3.1: fence the previous incarnation first (its open transaction
    // is aborted), then restore (which waits for open transactions in the changelog).
    let producer = Producer::new(
        broker,
        ProducerConfig::default().with_transactional_id("wc-0-0"),
    )
    .expect("producer");
    producer.init_transactions().expect("init");
    let db = StateDb::open(state_dir).expect("state");
    restore(&db, &name, broker, &changelog, |_| {}).expect("restore");
    let store = db
        .kv_store(&name, StringSerde, BigEndianSerde)
        .expect("store");
    let tp = TopicPartition::new(INPUT, 0);
    let committed = broker
        .offset_fetch(APP, std::slice::from_ref(&tp), true)
        .expect("offsets");
    let mut consumer = Consumer::new(broker, ConsumerConfig::default().with_max_poll_records(5));
    consumer.assign(vec![tp.clone()]).expect("assign");
    if let Some(offset) = committed[0].1 {
        consumer.seek(&tp, offset).expect("seek");
    }
    Task {
        db,
        store,
        producer,
        consumer,
        name,
    }
}

/// One poll-process-commit round; returns false when there was no input.
fn round(broker: &Broker, task: &mut Task, crash: Crash) -> bool {
    let records = task.consumer.poll(Duration::from_millis(20)).expect("poll");
    if records.is_empty() {
        return false;
    }
    let mut overlay = task.db.overlay();
    task.producer.begin_transaction().expect("begin");
    for r in &records {
        let word = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        let count = task.store.get(&overlay, &word).expect("get").unwrap_or(0) + 1;
        task.store.put(&mut overlay, &word, &count).expect("put");
        task.producer
            .send(ProducerRecord::new(OUTPUT, count.to_be_bytes().to_vec()).with_key(word))
            .expect("send");
    }
    let changelog = changelog_topic(APP, "counts");
    for record in changelog_records(&overlay, &task.name, &changelog) {
        task.producer.send(record).expect("changelog");
    }
    let next = records.last().map_or(0, |r| r.offset + 1);
    let group = GroupMetadata {
        group_id: APP.into(),
        generation: -1,
        member_id: String::new(),
    };
    task.producer
        .send_offsets_to_transaction(&[(TopicPartition::new(INPUT, 0), next)], &group)
        .expect("offsets");
    if crash == Crash::BeforeCommit {
        return true;
    }
    task.producer.commit_transaction().expect("commit");
    if crash == Crash::AfterCommitBeforeApply {
        return true;
    }
    let checkpoint = broker
        .list_offsets(&changelog, 0, OffsetSpec::Latest)
        .expect("list")
        .map_or(0, |l| l.offset);
    task.db
        .apply(overlay, &[(task.name.clone(), checkpoint)])
        .expect("apply");
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(24)))]
    #[test]
    fn state_and_output_are_the_fold_of_the_input_exactly_once(
        words in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d"]), 1..40),
        crashes in prop::collection::vec(prop_oneof![
            3 => Just(Crash::None), 1 => Just(Crash::BeforeCommit), 1 => Just(Crash::AfterCommitBeforeApply)
        ], 1..20),
    ) {
        let log_dir = tempfile::tempdir().expect("tempdir");
        let state_dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::open(log_dir.path(), BrokerConfig::default()).expect("broker");
        broker.create_topic(INPUT, TopicConfig::default()).expect("input");
        broker.create_topic(OUTPUT, TopicConfig::default()).expect("output");
        ensure_changelog_topic(&broker, &changelog_topic(APP, "counts"), 1).expect("changelog");
        let input = Producer::new(&broker, ProducerConfig::default()).expect("producer");
        for w in &words {
            input.send(ProducerRecord::new(INPUT, w.to_string()).with_partition(0)).expect("send");
        }
        input.flush().expect("flush");

        let mut task = start_task(&broker, state_dir.path());
        let mut crash_plan = crashes.into_iter();
        let mut idle = 0;
        while idle < 3 {
            let crash = crash_plan.next().unwrap_or(Crash::None);
            if !round(&broker, &mut task, crash) {
                idle += 1;
                continue;
            }
            if crash != Crash::None {
                // The instance dies: unapplied overlays and the open transaction are lost.
                drop(task);
                task = start_task(&broker, state_dir.path());
            }
        }

        let mut model: BTreeMap<String, u64> = BTreeMap::new();
        for w in &words {
            *model.entry(w.to_string()).or_default() += 1;
        }
        let nothing_written = task.db.overlay();
        let state: BTreeMap<String, u64> = common::read_all(task.store.all(&nothing_written)).into_iter().collect();
        prop_assert_eq!(&state, &model, "state is the fold of the input");
        // Output (read_committed): per word, the counts 1..=n, each exactly once, in order.
        let mut reader = Consumer::new(&broker, ConsumerConfig::default());
        reader.assign(vec![TopicPartition::new(OUTPUT, 0)]).expect("assign");
        let mut outputs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut quiet = 0;
        while quiet < 3 {
            let records = reader.poll(Duration::from_millis(10)).expect("poll");
            if records.is_empty() {
                quiet += 1;
            }
            for r in records {
                let word = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
                let bytes: [u8; 8] = r.value.as_deref().unwrap_or_default().try_into().expect("u64");
                outputs.entry(word).or_default().push(u64::from_be_bytes(bytes));
            }
        }
        for (word, n) in &model {
            prop_assert_eq!(outputs.get(word).cloned().unwrap_or_default(), (1..=*n).collect::<Vec<u64>>(), "outputs of {}", word);
        }
        let committed = broker.offset_fetch(APP, &[TopicPartition::new(INPUT, 0)], true).expect("offsets");
        prop_assert_eq!(committed[0].1, Some(words.len() as i64), "input offsets cover the input exactly");
    }
}
