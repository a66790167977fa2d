//! [`KafkaCluster`] as a backend of the runtime's seam (`sluice_log::cluster::Cluster`):
//! the admin calls map onto sluice-kafka's own, internal topics get Kafka configs for
//! their kind, and consumers are [`KafkaConsumer`]s sharing the cluster's config.

use rdkafka::consumer::ConsumerGroupMetadata;
use sluice_log::ProducerRecord;
use sluice_log::TopicPartition;
use sluice_log::cluster::{
    Cluster, ConsumerSpec, GroupEvent, GroupMember, GroupSpec, InternalTopic, InternalTopicKind,
    OffsetAt, ProducerSpec, TxnProducer,
};

use crate::admin::{KafkaCluster, TopicSpec};
use crate::consumer::KafkaConsumer;
use crate::error::KafkaClusterError;
use crate::member::KafkaMember;
use crate::producer::{KafkaDelivery, KafkaProducer};

/// The topic configs of an internal topic of `kind` with `partitions` partitions (`-1`: the
/// cluster's `num.partitions`).
pub fn internal_topic_spec(kind: InternalTopicKind, partitions: i32) -> TopicSpec {
    match kind {
        // Compacted, as Kafka Streams creates changelogs: the newest value of every key stays.
        InternalTopicKind::Changelog => TopicSpec::changelog(partitions),
        // Kept until the runtime has committed reading them: no time retention
        // (`retention.ms=-1`, as Kafka Streams, KIP-284), since records with old timestamps
        // would be deleted unread; the app purges what it has committed (DeleteRecords,
        // every `repartition_purge_interval`).
        InternalTopicKind::Repartition => TopicSpec::new(partitions)
            .with_config("cleanup.policy", "delete")
            .with_config("retention.ms", "-1"),
        InternalTopicKind::DeadLetter => TopicSpec::new(partitions),
    }
}

impl Cluster for KafkaCluster {
    type Error = KafkaClusterError;
    type Consumer = KafkaConsumer;
    type Producer = KafkaProducer;
    type Member = KafkaMember;

    fn partition_count(&self, topic: &str) -> Result<Option<i32>, KafkaClusterError> {
        KafkaCluster::partition_count(self, topic)
    }

    fn create_internal_topic(
        &self,
        topic: &str,
        spec: &InternalTopic,
    ) -> Result<(), KafkaClusterError> {
        let topic_spec = internal_topic_spec(spec.kind, spec.partitions.unwrap_or(-1));
        self.create_topic(topic, &topic_spec).map(|_| ())
    }

    fn list_offset(&self, tp: &TopicPartition, at: OffsetAt) -> Result<i64, KafkaClusterError> {
        let offsets = self.offsets(&tp.topic, tp.partition)?;
        Ok(match at {
            OffsetAt::Earliest => offsets.earliest,
            OffsetAt::Latest => offsets.latest,
        })
    }

    fn consumer(&self, spec: &ConsumerSpec) -> Result<KafkaConsumer, KafkaClusterError> {
        KafkaConsumer::new(self.config(), spec)
    }

    fn producer(&self, spec: &ProducerSpec) -> Result<KafkaProducer, KafkaClusterError> {
        KafkaProducer::new(self.config(), spec)
    }

    fn member(&self, spec: &GroupSpec) -> Result<KafkaMember, KafkaClusterError> {
        KafkaMember::new(self.config(), spec)
    }

    fn delete_records(&self, tp: &TopicPartition, before: i64) -> Result<(), KafkaClusterError> {
        KafkaCluster::delete_records(self, &tp.topic, tp.partition, before).map(|_| ())
    }

    fn committed_offsets(
        &self,
        group: &str,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, KafkaClusterError> {
        // An assign-mode handle of the group asks without joining it; one per group, kept.
        let mut readers = self
            .offset_readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reader = match readers.entry(group.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let config = self.config().clone().set("group.id", group);
                let spec = ConsumerSpec::read_committed(format!("{group}-offsets"));
                e.insert(KafkaConsumer::new(&config, &spec)?)
            }
        };
        reader.committed(tps)
    }
}

impl GroupMember for KafkaMember {
    type Error = KafkaClusterError;
    type Metadata = ConsumerGroupMetadata;

    fn poll_group(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<GroupEvent, KafkaClusterError> {
        KafkaMember::poll_group(self, timeout)
    }

    fn metadata(&self) -> Result<ConsumerGroupMetadata, KafkaClusterError> {
        KafkaMember::metadata(self)
    }

    fn committed(
        &mut self,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, KafkaClusterError> {
        KafkaMember::committed(self, tps)
    }

    fn commit_offsets(
        &mut self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<(), KafkaClusterError> {
        KafkaMember::commit_offsets(self, offsets)
    }

    fn leave(self) -> Result<(), KafkaClusterError> {
        KafkaMember::leave(self)
    }
}

impl TxnProducer for KafkaProducer {
    type Error = KafkaClusterError;
    type Delivery = KafkaDelivery;
    type GroupMetadata = ConsumerGroupMetadata;

    fn init_transactions(&mut self) -> Result<(), KafkaClusterError> {
        KafkaProducer::init_transactions(self)
    }

    fn begin_transaction(&mut self) -> Result<(), KafkaClusterError> {
        KafkaProducer::begin_transaction(self)
    }

    fn send(&mut self, record: ProducerRecord) -> Result<(), KafkaClusterError> {
        KafkaProducer::send(self, &record)
    }

    fn send_tracked(&mut self, record: ProducerRecord) -> Result<KafkaDelivery, KafkaClusterError> {
        KafkaProducer::send_tracked(self, &record)
    }

    fn flush(&mut self) -> Result<(), KafkaClusterError> {
        KafkaProducer::flush(self)
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &ConsumerGroupMetadata,
    ) -> Result<(), KafkaClusterError> {
        KafkaProducer::send_offsets_to_transaction(self, offsets, group)
    }

    fn commit_transaction(&mut self) -> Result<(), KafkaClusterError> {
        KafkaProducer::commit_transaction(self)
    }

    fn abort_transaction(&mut self) -> Result<(), KafkaClusterError> {
        KafkaProducer::abort_transaction(self)
    }

    fn close(self) -> Result<(), KafkaClusterError> {
        KafkaProducer::close(self)
    }

    fn abandon(self) {
        // librdkafka's destroy drops what is queued and leaves the transaction open on the
        // cluster, as a kill would.
        drop(self);
    }
}

impl sluice_log::cluster::ClusterConsumer for KafkaConsumer {
    type Error = KafkaClusterError;

    fn assign(&mut self, at: &[(TopicPartition, i64)]) -> Result<(), KafkaClusterError> {
        KafkaConsumer::assign(self, at)
    }

    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), KafkaClusterError> {
        KafkaConsumer::seek(self, tp, offset)
    }

    fn poll(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Vec<sluice_log::ConsumerRecord>, KafkaClusterError> {
        KafkaConsumer::poll(self, timeout)
    }

    fn position(&mut self, tp: &TopicPartition) -> Result<i64, KafkaClusterError> {
        KafkaConsumer::position(self, tp)
    }

    fn current_lag(&mut self, tp: &TopicPartition) -> Result<Option<i64>, KafkaClusterError> {
        KafkaConsumer::current_lag(self, tp)
    }
}
