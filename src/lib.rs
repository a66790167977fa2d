//! sluice: exactly-once stream processing on a built-in partitioned log.
//!
//! This facade re-exports the crates: [`log`] (the partitioned log, its embedded broker and
//! clients), [`runtime`] (processors, state stores, the exactly-once commit loop) and [`dsl`]
//! (the typed streams-and-tables DSL) and [`server`] (the log served over Kafka's wire
//! protocol, so any Kafka client can produce to and consume from it). The `sluice` binary is
//! the command-line tool.
//!
//! ```
//! use sluice::log::{Broker, BrokerConfig, TopicConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
//! broker.create_topic("orders", TopicConfig::default().with_partitions(4)).unwrap();
//! ```

pub use sluice_dsl as dsl;
pub use sluice_log as log;
pub use sluice_runtime as runtime;
pub use sluice_server as server;

/// The names most programs need.
pub mod prelude {
    pub use sluice_log::{
        Broker, BrokerConfig, Consumer, ConsumerConfig, ConsumerRecord, FsyncPolicy, Producer,
        ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
    };
}
