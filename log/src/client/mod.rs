//! Clients shaped like Kafka's: the batching, idempotent [`Producer`] and the [`Consumer`].

mod accumulator;
mod consumer;
mod partitioner;
mod producer;
mod sender;

pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
