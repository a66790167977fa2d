//! sluice: exactly-once stream processing on a built-in partitioned log.
//!
//! This facade re-exports the crates: [`log`] (the partitioned log, its embedded broker and
//! clients), [`runtime`] (processors, state stores, the exactly-once commit loop), [`dsl`]
//! (the typed streams-and-tables DSL), [`server`] (the log served over Kafka's wire
//! protocol, so any Kafka client can produce to and consume from it) and, with the `kafka`
//! feature, `kafka` (apps and clients on any Kafka cluster). [`prelude`] holds the names
//! most programs need, and [`Error`] is the one error type every crate's error converts
//! into. The command-line tool, the `sluice` binary, is its own package, `sluice-cli`
//! (`cli/`), so a program that depends on this crate never builds clap.
//!
//! ```
//! use sluice::log::{Broker, BrokerConfig, TopicConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
//! broker.create_topic("orders", TopicConfig::default().with_partitions(4)).unwrap();
//! ```

mod error;

pub use error::{Error, Result};
pub use sluice_dsl as dsl;
/// Kafka clusters (the `kafka` feature, on by default): `App::start(&KafkaCluster)`.
#[cfg(feature = "kafka")]
pub use sluice_kafka as kafka;
pub use sluice_log as log;
pub use sluice_runtime as runtime;
pub use sluice_server as server;

/// The names most programs need, in one `use sluice::prelude::*;`: the log and its clients,
/// the DSL's builder, streams, tables and window types, and the app that runs a topology.
///
/// ```
/// use sluice::prelude::*;
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path(), BrokerConfig::default())?;
/// broker.create_topic("clicks", TopicConfig::default())?;
/// let b = StreamBuilder::new();
/// b.stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(TimeWindows::of(Duration::from_secs(60)))
///     .count("clicks-per-minute");
/// let app = App::new("clicks", b.build()?, AppConfig::default())?;
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod prelude {
    pub use sluice_dsl::{
        BufferConfig, Change, GlobalTable, JoinWindows, SessionWindows, SlidingWindows, Stream,
        StreamBuilder, Suppressed, Table, TimeWindows, Windowed,
    };
    pub use sluice_log::{
        Broker, BrokerConfig, Consumer, ConsumerConfig, ConsumerRecord, FsyncPolicy, Producer,
        ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
    };
    pub use sluice_runtime::app::{App, AppHandle, AppMetrics};
    pub use sluice_runtime::{AppConfig, ProcessingGuarantee};
}
