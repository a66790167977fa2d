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
    /// A remote cluster (Kafka) failed; the error says the call, topic and partition.
    #[error("{0}")]
    Cluster(Box<dyn sluice_log::cluster::ClusterError>),
    /// A processor returned an error or panicked on a record (or in a punctuation, offset -1).
    #[error("processor `{processor}` failed on {topic}-{partition} at offset {offset}: {reason}")]
    ProcessorFailed {
        /// The processor's name.
        processor: String,
        /// The record's topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// What went wrong.
        reason: String,
    },
    /// A record whose key or value the source's serdes cannot decode.
    #[error("cannot deserialize the record at {topic}-{partition} offset {offset}: {reason}")]
    Deserialization {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
        /// What the serde said.
        reason: String,
    },
    /// `forward_to` named a node that is not a child.
    #[error("processor `{processor}` has no child named `{child}`")]
    UnknownChild {
        /// The forwarding processor.
        processor: String,
        /// The name it gave.
        child: String,
    },
    /// A node was called while it was running (a bug: topologies are acyclic).
    #[error("node `{0}` was called while it was already running")]
    Reentrant(String),
    /// A processor asked for a store it is not connected to.
    #[error(
        "processor `{processor}` is not connected to state store `{store}` (add it with add_state_store)"
    )]
    StoreNotConnected {
        /// The store.
        store: String,
        /// The processor.
        processor: String,
    },
    /// A store asked for with other types or another kind than it was declared with.
    #[error("state store `{store}` is not a {requested}")]
    StoreType {
        /// The store.
        store: String,
        /// The type asked for.
        requested: &'static str,
    },
    /// The topology is invalid, or does not fit the topics on the broker.
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    /// A restore waited too long for a transaction open in the changelog to end.
    #[error(
        "restoring `{store}` stalled at {changelog}-{partition} offset {position} (end {end}): a transaction there stayed open"
    )]
    RestoreStalled {
        /// The store (column family).
        store: String,
        /// The changelog topic.
        changelog: String,
        /// Its partition.
        partition: i32,
        /// Where the restore stands.
        position: i64,
        /// The end it restores to.
        end: i64,
    },
    /// A topic the topology reads or writes does not exist on the broker.
    #[error("{role} topic `{topic}` does not exist: create it before starting the app")]
    MissingTopic {
        /// The topic.
        topic: String,
        /// `source` or `sink`.
        role: &'static str,
    },
    /// A bad configuration value.
    #[error("invalid configuration `{key}`: {reason}")]
    Config {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Fault injection stopped the instance dead (at this crash point, or because another
    /// thread of the instance was stopped).
    #[error("instance killed by fault injection at {at:?}")]
    Crashed {
        /// Where, if this thread hit the crash point.
        at: Option<crate::config::CrashPoint>,
    },
    /// The app is not in a state where this can be done.
    #[error("illegal state: {0}")]
    IllegalState(String),
}

/// What a stream thread does about an error (docs/architecture.md §3.2): one class per error,
/// one recovery per class. Defined with the cluster seam, so both backends class their own
/// errors.
pub use sluice_log::cluster::ErrorClass;

impl Error {
    /// A cluster backend's error: the embedded log's stays `Error::Log` (so it can be
    /// matched), any other is `Error::Cluster`.
    pub fn cluster<E: sluice_log::cluster::ClusterError>(error: E) -> Self {
        let mut slot = Some(error);
        if let Some(log) = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<sluice_log::Error>>()
            .and_then(Option::take)
        {
            return Error::Log(log);
        }
        match slot {
            Some(other) => Error::Cluster(Box::new(other)),
            None => Error::IllegalState("a cluster error went missing".into()),
        }
    }

    /// How a stream thread recovers from this error. A delivery failure is classed by its
    /// cause.
    pub fn class(&self) -> ErrorClass {
        use sluice_log::cluster::ClusterError;
        match self {
            Error::Log(log) => log.class(),
            Error::Cluster(remote) => remote.class(),
            _ => ErrorClass::Fatal,
        }
    }

    /// Whether the call that failed may succeed if made again.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Log(log) => log.is_retriable(),
            Error::Cluster(remote) => remote.is_retriable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Error, ErrorClass};
    use sluice_log::Error as Log;

    fn fenced() -> Log {
        Log::ProducerFenced {
            topic: "t".into(),
            partition: 0,
            producer_id: 7,
            epoch: 1,
            current_epoch: 2,
        }
    }

    #[test]
    fn fenced_errors_are_fenced_also_inside_a_delivery_failure() {
        assert_eq!(Error::Log(fenced()).class(), ErrorClass::Fenced);
        let txn = Log::TxnProducerFenced {
            transactional_id: "app-1-0".into(),
            producer_id: 7,
            epoch: 1,
            current_epoch: 2,
        };
        assert_eq!(Error::Log(txn).class(), ErrorClass::Fenced);
        let delivery = Log::Delivery {
            topic: "t".into(),
            partition: 0,
            source: Arc::new(fenced()),
        };
        assert_eq!(Error::Log(delivery).class(), ErrorClass::Fenced);
    }

    #[test]
    fn a_group_that_moved_on_is_migrated() {
        let errors = [
            Log::IllegalGeneration {
                group: "app".into(),
                generation: 3,
                current: 4,
            },
            Log::UnknownMemberId {
                group: "app".into(),
                member_id: "m-1".into(),
            },
            Log::RebalanceInProgress {
                group: "app".into(),
            },
        ];
        for e in errors {
            assert_eq!(Error::Log(e).class(), ErrorClass::Migrated);
        }
    }

    #[test]
    fn everything_else_is_fatal() {
        let unknown = Log::UnknownTopic { topic: "t".into() };
        assert_eq!(Error::Log(unknown).class(), ErrorClass::Fatal);
        assert_eq!(Error::IllegalState("x".into()).class(), ErrorClass::Fatal);
        // A delivery failure for another reason than fencing stops the thread too.
        let delivery = Log::Delivery {
            topic: "t".into(),
            partition: 0,
            source: Arc::new(Log::UnknownTopic { topic: "t".into() }),
        };
        assert_eq!(Error::Log(delivery).class(), ErrorClass::Fatal);
    }
}
