//! Topic administration beyond what the runtime needs, for command-line tools: listing the
//! topics, adding partitions, and a partition's last stable offset (the end a read_committed
//! consumer reads up to).

use std::time::Instant;

use rdkafka::admin::{AdminClient, NewPartitions};
use rdkafka::client::DefaultClientContext;

use crate::admin::{KafkaCluster, RETRY_BACKOFF, leader_moving, single};
use crate::error::{KafkaClusterError, Result};

/// Kafka's internal topics (its `Topic.isInternal`): group offsets, transaction state and
/// share-group state.
const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// Whether `topic` is one of Kafka's internal topics (`__consumer_offsets`,
/// `__transaction_state`, `__share_group_state`).
pub fn is_internal_topic(topic: &str) -> bool {
    INTERNAL_TOPICS.contains(&topic)
}

impl KafkaCluster {
    /// Every topic in the cluster's metadata, internal ones included, sorted by name.
    pub fn list_topics(&self) -> Result<Vec<String>> {
        Ok(self
            .topic_partition_counts()?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// Every topic in the cluster's metadata with its partition count, internal ones
    /// included, sorted by name; one metadata request.
    pub fn topic_partition_counts(&self) -> Result<Vec<(String, i32)>> {
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, self.config().timeout())
            .map_err(KafkaClusterError::client("listing the topics"))?;
        let mut topics: Vec<(String, i32)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let count = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
                (t.name().to_string(), count)
            })
            .collect();
        topics.sort_unstable();
        Ok(topics)
    }

    /// Raises `topic` to `total` partitions (Kafka's CreatePartitions), then waits until the
    /// metadata shows all of them with a leader, so producers and consumers see them at once.
    /// The cluster refuses a total that is not more than the topic has
    /// (`INVALID_PARTITIONS`) and an unknown topic (`UNKNOWN_TOPIC_OR_PARTITION`).
    pub fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let count = usize::try_from(total).map_err(|_| KafkaClusterError::Topic {
            call: "adding partitions to topic",
            topic: topic.to_string(),
            code: rdkafka::error::RDKafkaErrorCode::InvalidPartitions,
        })?;
        let new_partitions = NewPartitions::new(topic, count);
        let options = self.options();
        let results =
            futures::executor::block_on(self.admin.create_partitions([&new_partitions], &options))
                .map_err(KafkaClusterError::client(format!(
                    "adding partitions to topic `{topic}`"
                )))?;
        single(results, "adding partitions to topic", topic)?.map_err(|(_, code)| {
            KafkaClusterError::Topic {
                call: "adding partitions to topic",
                topic: topic.to_string(),
                code,
            }
        })?;
        let deadline = Instant::now() + self.config().timeout();
        while self.partition_count(topic)?.unwrap_or(0) < total {
            if Instant::now() >= deadline {
                return Err(KafkaClusterError::Timeout {
                    call: format!("waiting for the new partitions of topic `{topic}`"),
                    waited: self.config().timeout(),
                });
            }
            std::thread::sleep(RETRY_BACKOFF);
        }
        self.wait_until_led(topic)
    }

    /// Each partition's last stable offset (the first offset of its oldest open
    /// transaction, or the high watermark when none is open: where read_committed consumers
    /// stop), from its leader, in the order of `partitions`. Asks through a client of its
    /// own whose `isolation.level` is `read_committed`: ListOffsets answers with the last
    /// stable offset then.
    pub fn last_stable_offsets(&self, topic: &str, partitions: &[i32]) -> Result<Vec<i64>> {
        let mut client = self.config().client_config();
        client.set("isolation.level", "read_committed");
        let reader: AdminClient<DefaultClientContext> =
            client.create().map_err(KafkaClusterError::Config)?;
        let timeout = self.config().timeout();
        partitions
            .iter()
            .map(|&partition| {
                let deadline = Instant::now() + timeout;
                loop {
                    let answer = reader.inner().fetch_watermarks(
                        topic,
                        partition,
                        deadline.saturating_duration_since(Instant::now()),
                    );
                    match answer {
                        Ok((_, stable)) => return Ok(stable),
                        Err(e)
                            if e.rdkafka_error_code().is_some_and(leader_moving)
                                && Instant::now() < deadline =>
                        {
                            std::thread::sleep(RETRY_BACKOFF);
                        }
                        Err(source) => {
                            return Err(KafkaClusterError::Client {
                                call: format!(
                                    "listing the last stable offset of {topic}-{partition}"
                                ),
                                source,
                            });
                        }
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_internal_topics_are_internal() {
        assert!(is_internal_topic("__consumer_offsets"));
        assert!(is_internal_topic("__transaction_state"));
        assert!(!is_internal_topic("orders"));
        assert!(!is_internal_topic("__orders"));
    }
}
