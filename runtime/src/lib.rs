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
