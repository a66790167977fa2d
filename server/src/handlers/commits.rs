//! What OffsetCommit and TxnOffsetCommit share: the per-partition refusals Kafka makes
//! before storing a commit (unknown partitions, oversized metadata) and the per-partition
//! codes of the answer, found by hashing so a commit of n partitions costs O(n).

use std::collections::HashMap;

use kafka_protocol::ResponseError as Code;
use sluice_log::TopicPartition;
use sluice_log::group::CommittedOffset;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

/// Splits commits into those to write and those refused, as Kafka refuses them: a topic or
/// partition that does not exist (UNKNOWN_TOPIC_OR_PARTITION) or metadata over
/// `offset.metadata.max.bytes` (OFFSET_METADATA_TOO_LARGE). Refused ones are not stored.
pub fn check_commit_partitions(
    broker: &sluice_log::Broker,
    offsets: Vec<CommittedOffset>,
) -> (Vec<CommittedOffset>, Vec<(TopicPartition, i16)>) {
    let mut known = Vec::with_capacity(offsets.len());
    let mut refused = Vec::new();
    for (tp, offset, metadata) in offsets {
        let exists = broker
            .partition_count(&tp.topic)
            .is_ok_and(|count| tp.partition >= 0 && tp.partition < count);
        if !exists {
            refused.push((tp, Code::UnknownTopicOrPartition.code()));
        } else if metadata.len() > MAX_METADATA_BYTES {
            refused.push((tp, Code::OffsetMetadataTooLarge.code()));
        } else {
            known.push((tp, offset, metadata));
        }
    }
    (known, refused)
}

/// A commit's outcome per partition: a refused partition's code (see
/// [`check_commit_partitions`]), else the commit's. Found by hashing, so answering a commit
/// of n partitions costs O(n).
#[derive(Debug)]
pub struct CommitCodes {
    code: i16,
    refused: HashMap<String, HashMap<i32, i16>>,
}

impl CommitCodes {
    /// The commit's code and the refused partitions.
    pub fn new(code: i16, refused: Vec<(TopicPartition, i16)>) -> Self {
        let mut by_topic: HashMap<String, HashMap<i32, i16>> = HashMap::new();
        for (tp, code) in refused {
            by_topic
                .entry(tp.topic)
                .or_default()
                .insert(tp.partition, code);
        }
        Self {
            code,
            refused: by_topic,
        }
    }

    /// The same with the commit's code passed through `f`.
    pub fn map_code(mut self, f: impl FnOnce(i16) -> i16) -> Self {
        self.code = f(self.code);
        self
    }

    /// The codes of one topic's partitions.
    pub fn topic(&self, topic: &str) -> TopicCodes<'_> {
        TopicCodes {
            code: self.code,
            refused: self.refused.get(topic),
        }
    }
}

/// [`CommitCodes`] of one topic.
#[derive(Debug, Clone, Copy)]
pub struct TopicCodes<'a> {
    code: i16,
    refused: Option<&'a HashMap<i32, i16>>,
}

impl TopicCodes<'_> {
    /// The code for one partition: its refusal, or the commit's outcome.
    pub fn of(&self, partition: i32) -> i16 {
        self.refused
            .and_then(|r| r.get(&partition))
            .copied()
            .unwrap_or(self.code)
    }
}
