//! The runtime's error type: each variant says what failed and where (store, task, topic,
//! partition, offset).

/// Result alias of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that do not decode as the expected type, or a value that does not encode.
    #[error("cannot (de)serialize {type_name}: {reason}")]
    Serde {
        /// The Rust type.
        type_name: &'static str,
        /// What the serde said.
        reason: String,
    },
    /// RocksDB failed.
    #[error("state store error while {action} (store `{store}`): {source}")]
    Rocks {
        /// What was being done.
        action: &'static str,
        /// The store (column family), or the database path.
        store: String,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// A store that was never registered, or registered twice.
    #[error("state store `{0}`: {1}")]
    Store(String, &'static str),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] sluice_log::Error),
}
