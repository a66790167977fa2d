//! [`Grouped`]: a stream grouped by key, and its aggregations (count, reduce, aggregate),
//! each kept in a RocksDB key-value store with a changelog and giving a [`Table`] of the
//! latest aggregate per key. When the key may have changed since the source, the records
//! first go through a repartition topic named `<store>-repartition`, so each key's records
//! meet in one task.

use std::sync::Arc;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::Serde;
use sluice_runtime::topology::StoreSpec;

use crate::change::{Change, ChangeSerde};
use crate::{Data, Stream, Table};

/// A stream grouped by key, ready to aggregate.
#[derive(Debug, Clone)]
pub struct Grouped<K, V> {
    pub(crate) stream: Stream<K, V>,
}

/// The function folding a record into its key's aggregate (`None` before the first).
type Aggregator<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

/// `reduce` as a fold: the first value starts the aggregate.
pub(crate) fn reducing<K, V>(
    reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
) -> impl Fn(&K, V, Option<V>) -> V + Send + Sync + 'static {
    move |_, v, acc| match acc {
        Some(acc) => reduce(acc, v),
        None => v,
    }
}

/// Folds each record into its key's aggregate in store `store` and forwards the new one.
struct Aggregate<K, V, A> {
    store: String,
    fold: Aggregator<K, V, A>,
}

impl<K: Data, V: Data, A: Data> Processor<K, V, K, Change<A>> for Aggregate<K, V, A> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        r: Record<K, V>,
    ) -> ProcessResult {
        let mut store = ctx.kv_store::<K, A>(&self.store)?;
        let current = store.get(&r.key)?;
        let next = (self.fold)(&r.key, r.value, current.clone());
        store.put(&r.key, &next)?;
        ctx.forward(Record {
            key: r.key,
            value: Change {
                new: Some(next),
                old: current,
            },
            timestamp: r.timestamp,
            headers: r.headers,
        })?;
        Ok(())
    }
}

impl<K: Data, V: Data> Grouped<K, V> {
    /// The stream to aggregate: through `<name>-repartition` if its key may have changed.
    pub(crate) fn repartitioned(&self, name: &str) -> Stream<K, V> {
        if self.stream.key_changed {
            self.stream.repartition(&format!("{name}-repartition"))
        } else {
            self.stream.clone()
        }
    }

    /// The number of records per key, in store `name`.
    pub fn count(&self, name: &str) -> Table<K, u64> {
        self.aggregate(name, || 0u64, |_, _, n| n + 1)
    }

    /// The records of each key folded with `reduce(aggregate, value)`, starting from the
    /// key's first value, in store `name`.
    pub fn reduce(
        &self,
        name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Table<K, V> {
        self.fold_with(name, reducing(reduce), self.stream.values.clone())
    }

    /// The records of each key folded with `fold(key, value, aggregate)` from `init()`, in
    /// store `name`, with the default serde of `A`.
    pub fn aggregate<A: Data>(
        &self,
        name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> Table<K, A> {
        self.aggregate_with(name, init, fold, A::serde())
    }

    /// [`Grouped::aggregate`] with the aggregate's serde given.
    pub fn aggregate_with<A: Data>(
        &self,
        name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        aggregates: Arc<dyn Serde<A>>,
    ) -> Table<K, A> {
        self.fold_with(
            name,
            move |k, v, acc| fold(k, v, acc.unwrap_or_else(&init)),
            aggregates,
        )
    }

    fn fold_with<A: Data>(
        &self,
        name: &str,
        fold: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
        aggregates: Arc<dyn Serde<A>>,
    ) -> Table<K, A> {
        let input = self.repartitioned(name);
        let keys = input.keys.clone();
        let fold: Aggregator<K, V, A> = Arc::new(fold);
        let store = name.to_string();
        let mut inner = input.inner.borrow_mut();
        let node = inner.name(input.name_token, "aggregate");
        let parent = input.node.clone();
        inner.add(|t| {
            t.add_processor::<Aggregate<K, V, A>, K, V, K, Change<A>>(
                &node,
                &[&parent],
                move || Aggregate {
                    store: store.clone(),
                    fold: fold.clone(),
                },
            )
        });
        let spec = StoreSpec::key_value::<K, A>(name, keys.clone(), aggregates.clone());
        let at = node.clone();
        inner.add(|t| t.add_state_store(spec, &[&at]));
        drop(inner);
        Table {
            changes: Stream::new(
                input.inner.clone(),
                node,
                keys,
                Arc::new(ChangeSerde(aggregates.clone())),
                false,
            ),
            store: Some(name.to_string()),
            getter: Some(crate::value_getter::ValueGetter::of_store(name)),
            values: aggregates,
            window_grace: None,
        }
    }
}
