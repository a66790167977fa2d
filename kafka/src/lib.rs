//! sluice on any Kafka cluster (Apache Kafka, a managed Kafka, or `sluice broker`), through
//! librdkafka (the `rdkafka` crate, built from source and linked statically).
//!
//! [`KafkaCluster::connect`] takes any librdkafka property ([`KafkaConfig::set`]):
//! `bootstrap.servers`, `security.protocol`, `sasl.mechanism` and the rest, so SSL and SASL
//! clusters work as they do for any librdkafka client. It holds:
//! - the admin side the runtime needs to start an app on a cluster: partition counts,
//!   creating its internal topics with Kafka configs (changelogs compacted), deleting
//!   topics, and a partition's earliest offset and high watermark;
//! - [`KafkaConsumer`]: the runtime's assign-mode, read_committed consumer;
//! - [`KafkaProducer`]: its transactional producer (tracked deliveries, offsets sent to the
//!   transaction with the group's metadata, fencing classed as `Fenced`);
//! - [`KafkaMember`]: its group member (classic protocol, `range`, co-partitioning checked);
//! - for command-line tools: listing topics, adding partitions, last stable offsets
//!   (`topics.rs`), and listing, describing and resetting consumer groups (`groups.rs`);
//! - all of them as the Kafka backend of the runtime's seam, `sluice_log::cluster::Cluster`
//!   (docs/architecture.md §8): `App::start(&KafkaCluster)` runs an app on the cluster.
//!
//! Here on a `sluice broker` served in-process (any Kafka cluster's bootstrap address works
//! the same way):
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let broker = sluice_log::Broker::open(dir.path(), sluice_log::BrokerConfig::default())?;
//! # let server = sluice_server::Server::bind(
//! #     broker.clone(),
//! #     "127.0.0.1:0".parse()?,
//! #     sluice_server::ServerConfig::default(),
//! # )?;
//! # let bootstrap = server.local_addr().to_string();
//! use sluice_kafka::{KafkaCluster, KafkaConfig, TopicSpec};
//! let cluster = KafkaCluster::connect(KafkaConfig::new(&bootstrap).set("client.id", "my-app"))?;
//! cluster.create_topic("orders", &TopicSpec::new(3))?;
//! assert_eq!(cluster.partition_count("orders")?, Some(3));
//! # drop(cluster);
//! # server.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admin;
mod cluster;
mod config;
mod consumer;
mod error;
mod groups;
mod member;
mod producer;
mod topics;

pub use admin::{Created, KafkaCluster, PartitionOffsets, TopicSpec};
pub use cluster::internal_topic_spec;
pub use config::KafkaConfig;
pub use consumer::{KafkaConsumer, LAG_STATS_INTERVAL_MS};
pub use error::{KafkaClusterError, Result};
pub use groups::{GroupDescription, GroupMemberDescription, decode_assignment};
pub use member::KafkaMember;
pub use producer::{KafkaDelivery, KafkaProducer};
pub use rdkafka;
pub use topics::is_internal_topic;
