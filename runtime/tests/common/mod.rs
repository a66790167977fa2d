//! Helpers shared by the runtime's integration tests.

#![allow(dead_code)]

pub mod apps;

/// Every item of a store scan, or the first error.
pub fn read_all<T>(
    scan: sluice_runtime::Result<sluice_runtime::state::StoreIter<'_, T>>,
) -> Vec<T> {
    scan.expect("scan starts")
        .collect::<sluice_runtime::Result<Vec<T>>>()
        .expect("scan reads")
}

/// Cases per property: `PROPTEST_CASES` if set, else `default`.
pub fn cases(default: u32) -> u32 {
    sluice_log::testing::proptest_cases(default)
}

use std::time::{Duration, Instant};

use sluice_log::{
    Broker, Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, TopicPartition,
};

/// Every committed record of `topic` (all partitions), read with read_committed up to the
/// last stable offset of each partition.
pub fn read_committed(broker: &Broker, topic: &str) -> Vec<ConsumerRecord> {
    let meta = broker.topic_metadata(topic).expect("topic metadata");
    let mut consumer = Consumer::new(
        broker,
        ConsumerConfig::default()
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    );
    let partitions: Vec<TopicPartition> = (0..meta.partitions.len() as i32)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(partitions.clone()).expect("assign");
    let mut out = Vec::new();
    for (tp, p) in partitions.iter().zip(&meta.partitions) {
        while consumer.position(tp).expect("position") < p.last_stable_offset {
            let batch = consumer.poll(Duration::from_millis(20)).expect("poll");
            if batch.is_empty() {
                break;
            }
            out.extend(batch);
        }
    }
    // Anything polled past the stable offsets of other partitions is kept too: it is
    // committed (read_committed never returns anything else).
    out.sort_by_key(|r| (r.partition, r.offset));
    out.dedup_by_key(|r| (r.partition, r.offset));
    out
}

/// Polls `check` every 20 ms until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
