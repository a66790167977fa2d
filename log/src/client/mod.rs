//! Clients shaped like Kafka's: the batching, idempotent [`Producer`] and the [`Consumer`].

mod accumulator;
mod consumer;
mod consumer_group;
mod partitioner;
mod producer;
mod sender;
mod transactions;

pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use consumer_group::{GroupMetadata, RebalanceListener};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use transactions::TxnErrorKind;
