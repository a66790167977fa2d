//! sluice-runtime: the Processor API, topologies, tasks, RocksDB state stores and the
//! exactly-once commit loop (DESIGN §3).
//!
//! Nothing is built here yet: the runtime arrives with its own issue, on top of the
//! transactions of `sluice-log`. It holds no placeholder functionality on purpose.

pub use sluice_log as log;
