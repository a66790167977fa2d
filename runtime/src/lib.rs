//! sluice-runtime: the Processor API, topologies, tasks, RocksDB state stores and the
//! exactly-once commit loop (docs/architecture.md §3).
//!
//! - [`processor`]: what users write ([`Processor`](processor::Processor)) and what it sees
//!   ([`ProcessorContext`](processor::ProcessorContext)).
//! - [`topology`]: the typed, validated graph of sources, processors, sinks and stores,
//!   split into sub-topologies.
//! - [`serde`]: how keys and values become bytes.
//! - [`state`]: RocksDB key-value, window and session stores behind a per-task write
//!   overlay, changelogs and restore.
//! - [`app`]: running a topology on a broker ([`App`](app::App)), exactly once.
//! - [`testkit`]: the [`TopologyTestDriver`](testkit::TopologyTestDriver) and the
//!   fault-injection harness.
//!
//! A processor that keeps a count per key in a RocksDB store, run as an exactly-once app on
//! the embedded log until it has committed everything written to its input:
//!
//! ```
//! use std::time::Duration;
//! use sluice_runtime::app::App;
//! use sluice_runtime::log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
//! use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
//! use sluice_runtime::serde::{BigEndianSerde, StringSerde};
//! use sluice_runtime::topology::{StoreSpec, TopologyBuilder};
//! use sluice_runtime::AppConfig;
//!
//! #[derive(Debug)]
//! struct Count;
//! impl Processor<String, String, String, u64> for Count {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, u64>,
//!                r: Record<String, String>) -> ProcessResult {
//!         let mut counts = ctx.kv_store::<String, u64>("counts")?;
//!         let n = counts.get(&r.key)?.unwrap_or(0) + 1;
//!         counts.put(&r.key, &n)?;
//!         ctx.forward(r.with_value(n))?;
//!         Ok(())
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path().join("log"), BrokerConfig::default())?;
//! broker.create_topic("words", TopicConfig::default())?;
//! broker.create_topic("counts", TopicConfig::default())?;
//! let producer = Producer::new(&broker, ProducerConfig::default())?;
//! for word in ["a", "b", "a"] {
//!     producer.send(ProducerRecord::new("words", word).with_key(word))?;
//! }
//! producer.flush()?;
//!
//! let mut b = TopologyBuilder::new();
//! b.add_source("in", &["words"], StringSerde, StringSerde)?;
//! b.add_processor("count", &["in"], || Count)?;
//! b.add_state_store(StoreSpec::key_value::<String, u64>("counts", StringSerde, BigEndianSerde), &["count"])?;
//! b.add_sink::<String, u64>("out", "counts", &["count"], StringSerde, BigEndianSerde)?;
//! let config = AppConfig::default().with_state_dir(dir.path().join("state"));
//! let handle = App::new("counter", b.build()?, config)?.start(&broker)?;
//! assert!(handle.wait_until_caught_up(Duration::from_secs(60))?);
//! assert_eq!(handle.metrics().records_processed, 3);
//! handle.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod app;
pub mod config;
pub mod error;
pub mod processor;
pub mod serde;
pub mod state;
pub mod task;
pub mod testkit;
pub mod topology;

pub use config::{AppConfig, DeserializationHandler, ProcessingGuarantee};
pub use error::{Error, ErrorClass, Result};
pub use sluice_log as log;
