//! [`GlobalTable`]: a table that every instance keeps whole (all partitions of its topic),
//! for joins by any key without repartitioning: a stream record looks up the row whose key
//! a function of the record chooses (a foreign key, say). The table is filled before
//! processing starts and then follows its topic on a thread of its own; it is not part of
//! the tasks' transactions, so a record sees the table as far as it has been read then
//! (as in Kafka Streams).

use std::sync::Arc;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::Serde;
use sluice_runtime::topology::StoreSpec;

use crate::{Data, Stream, StreamBuilder};

/// A table replicated whole to every instance.
#[derive(Clone)]
pub struct GlobalTable<K, V> {
    store: String,
    topic: String,
    _types: std::marker::PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for GlobalTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalTable")
            .field("store", &self.store)
            .field("topic", &self.topic)
            .finish()
    }
}

impl<K, V> GlobalTable<K, V> {
    /// The store holding the table (`<topic>-global`).
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

impl StreamBuilder {
    /// The global table of `topic` (every partition, on every instance), in store
    /// `<topic>-global`, with the default serdes of `K` and `V` (they must be the topic's).
    pub fn global_table<K: Data, V: Data>(&self, topic: &str) -> GlobalTable<K, V> {
        self.global_table_with(topic, K::serde(), V::serde())
    }

    /// [`StreamBuilder::global_table`] with the given serdes.
    pub fn global_table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> GlobalTable<K, V> {
        let store = format!("{topic}-global");
        let spec = StoreSpec::key_value::<K, V>(&store, keys, values);
        self.inner
            .borrow_mut()
            .add(|t| t.add_global_store(spec, topic));
        GlobalTable {
            store,
            topic: topic.to_string(),
            _types: std::marker::PhantomData,
        }
    }
}

/// The key of the global row a record joins.
type KeyFn<K, V, KG> = Arc<dyn Fn(&K, &V) -> KG + Send + Sync>;
/// The joiner; `None` emits nothing.
type Joiner<K, V, VG, VR> = Arc<dyn Fn(&K, V, Option<VG>) -> Option<VR> + Send + Sync>;

struct GlobalJoin<K, V, KG, VG, VR> {
    store: String,
    key: KeyFn<K, V, KG>,
    joiner: Joiner<K, V, VG, VR>,
}

impl<K: Data, V: Data, KG: Data, VG: Data, VR: Data> Processor<K, V, K, VR>
    for GlobalJoin<K, V, KG, VG, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, V>) -> ProcessResult {
        let lookup = (self.key)(&r.key, &r.value);
        let row = ctx.kv_store::<KG, VG>(&self.store)?.get(&lookup)?;
        if let Some(value) = (self.joiner)(&r.key, r.value, row) {
            ctx.forward(Record {
                key: r.key,
                value,
                timestamp: r.timestamp,
                headers: r.headers,
            })?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Stream<K, V> {
    /// Each record joined with the row of `table` at the key `key(record)` chooses (inner:
    /// records without a row are dropped). No repartitioning is needed.
    pub fn join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalTable<KG, VG>,
        key: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&K, V, VG) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR> {
        self.global_join(
            "join-global",
            table,
            Arc::new(key),
            Arc::new(move |k, v, row| row.map(|row| joiner(k, v, row))),
        )
    }

    /// Each record joined with the row at `key(record)`, or with `None` when there is none.
    pub fn left_join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalTable<KG, VG>,
        key: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&K, V, Option<VG>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR> {
        self.global_join(
            "left-join-global",
            table,
            Arc::new(key),
            Arc::new(move |k, v, row| Some(joiner(k, v, row))),
        )
    }

    fn global_join<KG: Data, VG: Data, VR: Data>(
        &self,
        kind: &str,
        table: &GlobalTable<KG, VG>,
        key: KeyFn<K, V, KG>,
        joiner: Joiner<K, V, VG, VR>,
    ) -> Stream<K, VR> {
        let name = self.next_node_name(kind);
        let store = table.store.clone();
        self.add_as::<GlobalJoin<K, V, KG, VG, VR>, K, VR>(&name, &[&self.node], move || {
            GlobalJoin {
                store: store.clone(),
                key: key.clone(),
                joiner: joiner.clone(),
            }
        });
        self.connect_store(&table.store, &name);
        self.derive(name, self.keys.clone(), VR::serde(), self.key_changed)
    }
}
