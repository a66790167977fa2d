//! The embedded backend of the [`Cluster`] seam: the in-process [`Broker`] and its
//! [`Consumer`], called directly (no copies, no threads added).

use std::time::Duration;

use super::{
    Cluster, ClusterConsumer, ClusterError, ConsumerSpec, Delivery, ErrorClass, InternalTopic,
    InternalTopicKind, OffsetAt, ProducerSpec, TxnProducer,
};
use crate::broker::{Broker, OffsetSpec};
use crate::client::{
    Consumer, ConsumerConfig, ConsumerRecord, DeliveryFuture, GroupMetadata, Producer,
    ProducerConfig, ProducerRecord,
};
use crate::error::Error;
use crate::topic::{CleanupPolicy, TopicConfig, TopicPartition};

impl ClusterError for Error {
    fn class(&self) -> ErrorClass {
        let cause = match self {
            Error::Delivery { source, .. } => source.as_ref(),
            other => other,
        };
        match cause {
            Error::ProducerFenced { .. } | Error::TxnProducerFenced { .. } => ErrorClass::Fenced,
            Error::IllegalGeneration { .. }
            | Error::UnknownMemberId { .. }
            | Error::RebalanceInProgress { .. } => ErrorClass::Migrated,
            _ => ErrorClass::Fatal,
        }
    }

    fn is_unknown_topic(&self) -> bool {
        matches!(
            self,
            Error::UnknownTopic { .. } | Error::UnknownPartition { .. }
        )
    }

    fn is_retriable(&self) -> bool {
        Error::is_retriable(self)
    }
}

impl Cluster for Broker {
    type Error = Error;
    type Consumer = Consumer;
    type Producer = Producer;
    type Member = super::EmbeddedMember;

    fn partition_count(&self, topic: &str) -> Result<Option<i32>, Error> {
        match Broker::partition_count(self, topic) {
            Ok(n) => Ok(Some(n)),
            Err(Error::UnknownTopic { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create_internal_topic(&self, topic: &str, spec: &InternalTopic) -> Result<(), Error> {
        let mut config = TopicConfig::default();
        if let Some(n) = spec.partitions {
            config = config.with_partitions(n);
        }
        match spec.kind {
            InternalTopicKind::Changelog => {
                config = config
                    .with_retention_ms(None)
                    .with_cleanup(CleanupPolicy::Compact);
            }
            // No time retention: the app purges what it has committed (DeleteRecords).
            InternalTopicKind::Repartition => config = config.with_retention_ms(None),
            InternalTopicKind::DeadLetter => {}
        }
        match self.create_topic(topic, config) {
            Ok(()) | Err(Error::TopicExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn delete_records(&self, tp: &TopicPartition, before: i64) -> Result<(), Error> {
        Broker::delete_records(self, &tp.topic, tp.partition, before).map(|_| ())
    }

    fn list_offset(&self, tp: &TopicPartition, at: OffsetAt) -> Result<i64, Error> {
        let spec = match at {
            OffsetAt::Earliest => OffsetSpec::Earliest,
            OffsetAt::Latest => OffsetSpec::Latest,
        };
        Ok(self
            .list_offsets(&tp.topic, tp.partition, spec)?
            .map_or(0, |listed| listed.offset))
    }

    fn consumer(&self, spec: &ConsumerSpec) -> Result<Consumer, Error> {
        Ok(Consumer::new(
            self,
            ConsumerConfig::default()
                .with_isolation(spec.isolation)
                .with_auto_offset_reset(spec.reset)
                .with_max_poll_records(spec.max_poll_records.max(1)),
        ))
    }

    fn member(&self, spec: &super::GroupSpec) -> Result<super::EmbeddedMember, Error> {
        Ok(super::EmbeddedMember::new(self, spec))
    }

    fn producer(&self, spec: &ProducerSpec) -> Result<Producer, Error> {
        let mut config = ProducerConfig::default()
            .with_transaction_timeout(spec.transaction_timeout)
            .with_linger_ms(u64::try_from(spec.linger.as_millis()).unwrap_or(u64::MAX));
        if let Some(id) = &spec.transactional_id {
            config = config.with_transactional_id(id.clone());
        }
        Producer::new(self, config)
    }

    fn committed_offsets(
        &self,
        group: &str,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, Error> {
        self.offset_fetch(group, tps, false)
    }

    #[cfg(feature = "fault-injection")]
    fn arm_txn_fault(&self, transactional_id: Option<&str>) -> bool {
        let hook: Option<crate::broker::TxnFaultHook> = transactional_id.map(|id| {
            let id = id.to_string();
            let hook: crate::broker::TxnFaultHook = std::sync::Arc::new(move |t: &str| t == id);
            hook
        });
        self.set_txn_fault_hook(hook);
        true
    }
}

impl Delivery for DeliveryFuture {
    type Error = Error;

    fn offset(self) -> Result<i64, Error> {
        Ok(self.wait()?.offset)
    }
}

impl TxnProducer for Producer {
    type Error = Error;
    type Delivery = DeliveryFuture;
    type GroupMetadata = GroupMetadata;

    fn init_transactions(&mut self) -> Result<(), Error> {
        Producer::init_transactions(self)
    }

    fn begin_transaction(&mut self) -> Result<(), Error> {
        Producer::begin_transaction(self)
    }

    fn send(&mut self, record: ProducerRecord) -> Result<(), Error> {
        // A failure reaches the next flush or commit; the future is not needed.
        drop(Producer::send(self, record)?);
        Ok(())
    }

    fn send_tracked(&mut self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        Producer::send(self, record)
    }

    fn flush(&mut self) -> Result<(), Error> {
        Producer::flush(self)
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
    ) -> Result<(), Error> {
        Producer::send_offsets_to_transaction(self, offsets, group)
    }

    fn commit_transaction(&mut self) -> Result<(), Error> {
        Producer::commit_transaction(self)
    }

    fn abort_transaction(&mut self) -> Result<(), Error> {
        Producer::abort_transaction(self)
    }

    fn close(self) -> Result<(), Error> {
        Producer::close(self)
    }

    fn abandon(self) {
        Producer::abandon(self);
    }
}

impl ClusterConsumer for Consumer {
    type Error = Error;

    fn assign(&mut self, at: &[(TopicPartition, i64)]) -> Result<(), Error> {
        Consumer::assign(self, at.iter().map(|(tp, _)| tp.clone()).collect())?;
        for (tp, offset) in at {
            Consumer::seek(self, tp, *offset)?;
        }
        Ok(())
    }

    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Error> {
        Consumer::seek(self, tp, offset)
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        Consumer::poll(self, timeout)
    }

    fn position(&mut self, tp: &TopicPartition) -> Result<i64, Error> {
        Consumer::position(self, tp)
    }

    fn current_lag(&mut self, tp: &TopicPartition) -> Result<Option<i64>, Error> {
        Consumer::current_lag(self, tp)
    }
}
