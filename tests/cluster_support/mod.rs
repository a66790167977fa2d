//! Helpers for tests that run the same code on any `sluice_log::cluster::Cluster` (the
//! embedded `Broker`, Apache Kafka or `sluice broker` through `sluice_kafka::KafkaCluster`).
//! Include it with `mod cluster_support;` from a test in `tests/`.

#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::time::{Duration, Instant};

use sluice_log::cluster::{Cluster, ClusterConsumer, ConsumerSpec, OffsetAt};
use sluice_log::{ConsumerRecord, TopicPartition};

/// Every committed record of `topic`, read_committed from each partition's earliest
/// offset up to its high watermark as of the call: each partition's records in offset
/// order (partitions interleaved as they were polled). Panics if the reader does not reach
/// the end within `bound` (an open transaction holds a read_committed reader back).
pub fn read_committed_to_end<C: Cluster>(
    cluster: &C,
    topic: &str,
    bound: Duration,
) -> Vec<ConsumerRecord> {
    let partitions = cluster
        .partition_count(topic)
        .expect("partition count")
        .unwrap_or_else(|| panic!("no topic {topic}"));
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for tp in &tps {
        starts.push((
            tp.clone(),
            cluster
                .list_offset(tp, OffsetAt::Earliest)
                .expect("earliest offset"),
        ));
        ends.push(cluster.list_offset(tp, OffsetAt::Latest).expect("end"));
    }
    let mut consumer = cluster
        .consumer(&ConsumerSpec::read_committed(format!("{topic}-reader")))
        .expect("consumer");
    consumer.assign(&starts).expect("assign");
    let deadline = Instant::now() + bound;
    let mut out = Vec::new();
    loop {
        let behind = tps
            .iter()
            .zip(&ends)
            .find(|(tp, end)| consumer.position(tp).expect("position") < **end);
        let Some((tp, end)) = behind else {
            return out;
        };
        assert!(
            Instant::now() < deadline,
            "{tp} not read to its end ({end}) within {bound:?}"
        );
        out.extend(consumer.poll(Duration::from_millis(50)).expect("poll"));
    }
}

/// Whether `group` has committed every partition of each of `topics` up to its high
/// watermark, checked in the order given. Give the topics upstream first (an app's inputs
/// before the repartition topics its sub-topologies write and read): an upstream topic
/// fully committed means the records it caused downstream are committed too (the same
/// transaction), so a downstream topic checked after it cannot look caught up while
/// records derived from the upstream one are still to come.
pub fn committed_to_end<C: Cluster>(cluster: &C, group: &str, topics: &[String]) -> bool {
    for topic in topics {
        let partitions = cluster
            .partition_count(topic)
            .expect("partition count")
            .unwrap_or_else(|| panic!("no topic {topic}"));
        let tps: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(topic.as_str(), p))
            .collect();
        let committed = cluster
            .committed_offsets(group, &tps)
            .expect("committed offsets");
        for (tp, offset) in committed {
            let end = cluster.list_offset(&tp, OffsetAt::Latest).expect("end");
            let from = match offset {
                Some(offset) => offset,
                None => cluster
                    .list_offset(&tp, OffsetAt::Earliest)
                    .expect("earliest offset"),
            };
            if from < end {
                return false;
            }
        }
    }
    true
}
