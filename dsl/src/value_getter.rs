//! Lazy tables and their value getters (docs/architecture.md §4). A table made by
//! `filter`, `filter_not` or `map_values` has no store of its own: each change of its
//! parent goes through the operator's function ([`TableValues`]: the old value as well as
//! the new, so deletes and re-grouping keep working), and a join that needs the table's
//! value for a key reads it through a [`ValueGetter`]: the nearest materialized ancestor's
//! store, connected to the join's processor, and the chain of functions between that
//! ancestor and the table (Kafka Streams' `KTableValueGetter`). `Table::materialized_as`
//! gives a table a store of its own ([`MaterializeChanges`]).

use std::fmt;
use std::sync::Arc;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record, StoreAccess};

use crate::change::Change;
use crate::{Data, Stream};

/// A lazy operator's function of a row: the key and the parent's value to this table's
/// value (`None`: the key has no row here).
pub(crate) type RowFn<K, V, V2> = Arc<dyn Fn(&K, V) -> Option<V2> + Send + Sync>;

/// Reads a key's value from `StoreAccess`.
type Read<K, V> =
    Arc<dyn Fn(&mut StoreAccess<'_>, &K) -> sluice_runtime::Result<Option<V>> + Send + Sync>;

/// How a processor reads a key-value table's current value for a key: from a key-value
/// store (the table's own, or its nearest materialized ancestor's) and through the chain
/// of lazy operators since that store.
pub(crate) struct ValueGetter<K, V> {
    store: String,
    read: Read<K, V>,
}

impl<K, V> Clone for ValueGetter<K, V> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            read: self.read.clone(),
        }
    }
}

impl<K, V> fmt::Debug for ValueGetter<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueGetter")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<K: Data, V: Data> ValueGetter<K, V> {
    /// Reads the key-value store `store` (`K -> V`) as it is.
    pub fn of_store(store: &str) -> Self {
        let name = store.to_string();
        Self {
            store: store.to_string(),
            read: Arc::new(move |stores, key| stores.kv_store::<K, V>(&name)?.get(key)),
        }
    }

    /// The values of this getter passed through `f`: the getter of a lazy table derived
    /// from this one.
    pub fn then<V2: Data>(&self, f: RowFn<K, V, V2>) -> ValueGetter<K, V2> {
        let read = self.read.clone();
        ValueGetter {
            store: self.store.clone(),
            read: Arc::new(move |stores, key| Ok(read(stores, key)?.and_then(|v| f(key, v)))),
        }
    }

    /// Connects the store read to processor `node` (added on `stream`'s builder), so the
    /// node can use [`ValueGetter::get`].
    pub fn connect<KS: Data, VS: Data>(&self, stream: &Stream<KS, VS>, node: &str) {
        stream.connect_store(&self.store, node);
    }

    /// The value of `key` as processor `ctx` (connected by [`ValueGetter::connect`]) sees
    /// it now.
    pub fn get<KO, VO>(
        &self,
        ctx: &mut ProcessorContext<'_, KO, VO>,
        key: &K,
    ) -> sluice_runtime::Result<Option<V>> {
        (self.read)(&mut ctx.stores(), key)
    }
}

/// A lazy table operator: forwards each change of the parent with its new and old value
/// passed through `f`; a change that neither side survives is not forwarded (the key had
/// no row in this table and still has none), as a materialized table forwards nothing for
/// a delete of an absent key.
pub(crate) struct TableValues<K, V, V2> {
    pub f: RowFn<K, V, V2>,
}

impl<K: Data, V: Data, V2: Data> Processor<K, Change<V>, K, Change<V2>> for TableValues<K, V, V2> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        r: Record<K, Change<V>>,
    ) -> ProcessResult {
        let Change { new, old } = r.value;
        let new = new.and_then(|v| (self.f)(&r.key, v));
        let old = old.and_then(|v| (self.f)(&r.key, v));
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(Record {
            key: r.key,
            value: Change { new, old },
            timestamp: r.timestamp,
            headers: r.headers,
        })?;
        Ok(())
    }
}

/// `Table::materialized_as`: writes each change's new value (or delete) to the store and
/// forwards the change as it came.
pub(crate) struct MaterializeChanges {
    pub store: String,
}

impl<K: Data, V: Data> Processor<K, Change<V>> for MaterializeChanges {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, Change<V>>,
    ) -> ProcessResult {
        let mut store = ctx.kv_store::<K, V>(&self.store)?;
        match &r.value.new {
            Some(v) => store.put(&r.key, v)?,
            None => store.delete(&r.key)?,
        }
        ctx.forward(r)?;
        Ok(())
    }
}
