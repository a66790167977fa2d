//! sluice-runtime: the Processor API, topologies, tasks, RocksDB state stores and the
//! exactly-once commit loop (DESIGN §3).
//!
//! Built so far: [`serde`] (how keys and values become bytes), [`state`] (RocksDB
//! key-value, window and session stores, one column family per store and task, with the
//! per-task write overlay that a task reads through and that is applied with its checkpoint
//! in one `WriteBatch` after the commit, and the restore of a store from its changelog), and
//! [`topology`] (the validated graph of sources, processors, sinks and stores, split into
//! sub-topologies). The Processor API, tasks and the exactly-once commit loop come next.
//!
//! ```
//! use sluice_runtime::serde::{BigEndianSerde, StringSerde};
//! use sluice_runtime::state::{StateDb, StoreName};
//! let dir = tempfile::tempdir().unwrap();
//! let db = StateDb::open(dir.path()).unwrap();
//! let counts = StoreName::new("counts", 0);
//! let mut overlay = db.overlay();
//! let store = db.kv_store(&counts, StringSerde, BigEndianSerde).unwrap();
//! store.put(&mut overlay, &"apple".to_string(), &3u64).unwrap();
//! assert_eq!(store.get(&overlay, &"apple".to_string()).unwrap(), Some(3));  // reads through
//! db.apply(overlay, &[(counts.clone(), 42)]).unwrap();                         // after the commit
//! assert_eq!(db.checkpoint(&counts).unwrap(), Some(42));
//! ```

pub mod error;
pub mod serde;
pub mod state;
pub mod topology;

pub use error::{Error, Result};
pub use sluice_log as log;
