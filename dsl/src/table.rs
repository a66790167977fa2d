//! [`Table`]: the latest value per key, kept in a store and updated by a stream of changes
//! (each update forwards the key's new value). Built so far: the tables aggregations
//! return, and `to_stream`.

use std::sync::Arc;

use sluice_runtime::serde::Serde;

use crate::{Data, Stream};

/// A table of the latest value per key.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    updates: Stream<K, V>,
    store: String,
    keys: Arc<dyn Serde<K>>,
    values: Arc<dyn Serde<V>>,
}

impl<K: Data, V: Data> Table<K, V> {
    pub(crate) fn new(
        updates: Stream<K, V>,
        store: String,
        keys: Arc<dyn Serde<K>>,
        values: Arc<dyn Serde<V>>,
    ) -> Self {
        Self {
            updates,
            store,
            keys,
            values,
        }
    }

    /// The store holding the table (for `TopologyTestDriver::kv_store` and queries).
    pub fn store_name(&self) -> &str {
        &self.store
    }

    /// The table's updates as a stream: one record per change, the key's new value.
    pub fn to_stream(&self) -> Stream<K, V> {
        Stream::new(
            self.updates.inner.clone(),
            self.updates.node.clone(),
            self.keys.clone(),
            self.values.clone(),
            false,
        )
    }
}
