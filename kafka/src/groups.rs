//! Consumer groups for command-line tools: listing them, describing one (its state and
//! members, with each member's partitions decoded from its assignment), and committing a
//! group's offsets from outside it, as `kafka-consumer-groups.sh --reset-offsets` does.
//!
//! Listing and describing go through librdkafka's `rd_kafka_list_groups` (ListGroups on
//! every broker, then DescribeGroups); committed offsets are read with
//! [`Cluster::committed_offsets`](sluice_log::cluster::Cluster::committed_offsets).

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, DefaultConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use sluice_log::TopicPartition;

use crate::admin::KafkaCluster;
use crate::error::{KafkaClusterError, Result};

/// A consumer group as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group: String,
    /// Its state as Kafka spells it (`Empty`, `PreparingRebalance`, `CompletingRebalance`,
    /// `Stable`, `Dead`).
    pub state: String,
    /// Its protocol type (`consumer` for Kafka consumers).
    pub protocol_type: String,
    /// The assignor of the current generation (`range`, ...), empty when none.
    pub protocol: String,
    /// Its members.
    pub members: Vec<GroupMemberDescription>,
}

/// One member of a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `client.id`.
    pub client_id: String,
    /// The host it connects from.
    pub client_host: String,
    /// Its partitions, decoded from its assignment (empty when the group is not a consumer
    /// group, or the assignment is not in the consumer protocol's format).
    pub partitions: Vec<TopicPartition>,
}

impl KafkaCluster {
    /// The ids of the cluster's groups (those with members or committed offsets), sorted.
    pub fn list_groups(&self) -> Result<Vec<String>> {
        let list = self
            .admin
            .inner()
            .fetch_group_list(None, self.config().timeout())
            .map_err(KafkaClusterError::client("listing the consumer groups"))?;
        let mut groups: Vec<String> = list.groups().iter().map(|g| g.name().to_string()).collect();
        groups.sort_unstable();
        groups.dedup();
        Ok(groups)
    }

    /// `group` as the cluster describes it; `None` when the cluster does not know it (it
    /// has neither members nor committed offsets).
    pub fn describe_group(&self, group: &str) -> Result<Option<GroupDescription>> {
        let list = self
            .admin
            .inner()
            .fetch_group_list(Some(group), self.config().timeout())
            .map_err(KafkaClusterError::client(format!(
                "describing consumer group `{group}`"
            )))?;
        let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
            return Ok(None);
        };
        if info.state() == "Dead" {
            return Ok(None);
        }
        let consumer = info.protocol_type() == "consumer";
        let members = info
            .members()
            .iter()
            .map(|m| GroupMemberDescription {
                member_id: m.id().to_string(),
                client_id: m.client_id().to_string(),
                client_host: m.client_host().to_string(),
                partitions: m
                    .assignment()
                    .filter(|_| consumer)
                    .and_then(decode_assignment)
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Some(GroupDescription {
            group: info.name().to_string(),
            state: info.state().to_string(),
            protocol_type: info.protocol_type().to_string(),
            protocol: info.protocol().to_string(),
            members,
        }))
    }

    /// Commits `offsets` for `group` from outside it (generation -1, no member id), as
    /// `kafka-consumer-groups.sh --reset-offsets` does. The cluster accepts that only while
    /// the group has no active members; check [`describe_group`](Self::describe_group)
    /// first for a clear refusal.
    pub fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let mut client = self.config().client_config();
        client
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer<DefaultConsumerContext> =
            client.create().map_err(KafkaClusterError::Config)?;
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for (tp, offset) in offsets {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(KafkaClusterError::client(format!(
                    "committing offset {offset} of {tp} for group `{group}`"
                )))?;
        }
        consumer
            .commit(&list, CommitMode::Sync)
            .map_err(KafkaClusterError::client(format!(
                "committing the offsets of group `{group}`"
            )))
    }
}

/// The partitions of a member's assignment in the consumer protocol's format
/// (ConsumerProtocolAssignment, every version: version i16, then an array of topic (string)
/// and partitions (array of i32), then user data); `None` when it does not parse.
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    let mut reader = Reader { bytes, at: 0 };
    let _version = reader.i16()?;
    let topics = reader.len()?;
    let mut partitions = Vec::new();
    for _ in 0..topics {
        let name_len = usize::try_from(reader.i16()?).ok()?;
        let name = std::str::from_utf8(reader.take(name_len)?)
            .ok()?
            .to_string();
        let count = reader.len()?;
        for _ in 0..count {
            partitions.push(TopicPartition::new(name.as_str(), reader.i32()?));
        }
    }
    partitions.sort_unstable_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Some(partitions)
}

/// Big-endian reads from a byte slice, `None` past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// An array length: -1 (null) is empty.
    fn len(&mut self) -> Option<usize> {
        let n = self.i32()?;
        if n < 0 {
            return Some(0);
        }
        // Every element takes at least 4 bytes: a length beyond what is left is corrupt.
        let n = usize::try_from(n).ok()?;
        (n <= self.bytes.len().saturating_sub(self.at) / 2).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (name, partitions) in topics {
            bytes.extend((name.len() as i16).to_be_bytes());
            bytes.extend(name.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes()); // no user data
        bytes
    }

    #[test]
    fn assignments_decode_sorted() {
        let bytes = assignment(&[("orders", &[2, 0]), ("audit", &[1])]);
        let decoded = decode_assignment(&bytes).expect("parses");
        assert_eq!(
            decoded,
            vec![
                TopicPartition::new("audit", 1),
                TopicPartition::new("orders", 0),
                TopicPartition::new("orders", 2),
            ]
        );
    }

    #[test]
    fn truncated_or_corrupt_assignments_do_not_parse() {
        let bytes = assignment(&[("orders", &[0, 1])]);
        assert_eq!(decode_assignment(&bytes[..bytes.len() - 9]), None);
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        assert_eq!(decode_assignment(&huge), None);
        assert_eq!(decode_assignment(&[]), None);
    }
}
