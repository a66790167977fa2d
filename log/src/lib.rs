//! sluice-log: the partitioned log under sluice (docs/architecture.md §2).
//!
//! It owns Kafka's v2 record batch format ([`batch`]), segment files with sparse indexes and
//! crash recovery ([`storage`]), idempotent producers, retention, the embedded [`Broker`]
//! whose methods mirror Kafka's RPCs, and the [`Producer`] and [`Consumer`] clients.
//!
//! ```
//! use sluice_log::{Broker, BrokerConfig, Consumer, ConsumerConfig, Producer, ProducerConfig,
//!                  ProducerRecord, TopicConfig, TopicPartition};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path(), BrokerConfig::default())?;
//! broker.create_topic("greetings", TopicConfig::default())?;
//!
//! let producer = Producer::new(&broker, ProducerConfig::default())?;
//! let delivery = producer.send(ProducerRecord::new("greetings", "hello").with_key("k"))?;
//! let metadata = delivery.wait()?;
//! assert_eq!(metadata.offset, 0);
//!
//! let mut consumer = Consumer::new(&broker, ConsumerConfig::default());
//! consumer.assign(vec![TopicPartition::new("greetings", 0)])?;
//! let records = consumer.poll(Duration::from_secs(1))?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Durability: every acknowledged write has been handed to the OS, so it survives a process
//! crash under every [`FsyncPolicy`]; what survives power loss depends on the policy (see its
//! doc).

pub mod batch;
pub mod broker;
pub mod client;
pub mod cluster;
pub mod crash_image;
pub mod error;
pub mod group;
pub mod storage;
pub mod testing;
pub mod topic;
pub mod txn;
mod util;
mod varint;

#[cfg(feature = "fault-injection")]
pub use broker::TxnFaultHook;
pub use broker::{
    Acks, Broker, BrokerConfig, FetchRequest, FetchedPartition, ListedOffset, OffsetSpec,
    PartitionLag, ProducerIdAndEpoch, TopicMetadata,
};
pub use client::{
    Consumer, ConsumerConfig, ConsumerRecord, DeliveryFuture, GroupMetadata, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, RebalanceListener, RecordMetadata, TxnErrorKind, murmur2,
    partition_for_key,
};
pub use error::{Error, Result};
pub use group::{
    ClassicGroupState, ClassicJoinMember, ClassicJoinRequest, ClassicJoinResponse,
    ClassicSyncResponse, GroupDescription, MemberDescription,
};
pub use storage::{AppendOutcome, DurableWait, PartitionData, PartitionInfo};
pub use topic::{CleanupPolicy, FsyncPolicy, TopicConfig, TopicPartition, validate_topic_name};
pub use txn::{AbortedTxn, ControlType, IsolationLevel, TxnState, TxnVersion};
pub use util::now_ms;
