//! [`Table`]: the latest value per key, updated by a stream of [`Change`]s (each update
//! forwards the key's new value together with the one it replaced, deletes included).
//! A table is materialized (kept in a RocksDB store with a changelog) when it has to be:
//! sources (`StreamBuilder::table`, `Stream::to_table`), aggregations, table-table and
//! foreign-key join results, and any table given `materialized_as(name)`. `filter`,
//! `filter_not` and `map_values` make *lazy* tables, as in Kafka Streams: no store, no
//! changelog; their changes are the parent's passed through the function, and a join or
//! `group_by` that needs their values reads them through the nearest materialized
//! ancestor's store (`value_getter.rs`, docs/architecture.md §4). `group_by` re-keys a
//! table; its aggregations subtract a record's old value from its old group and add the new
//! value to the new group ([`GroupedTable`]).

use std::sync::Arc;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::{OptionSerde, Serde};
use sluice_runtime::topology::StoreSpec;

use crate::change::{Change, ChangeSerde};
use crate::value_getter::{MaterializeChanges, RowFn, TableValues, ValueGetter};
use crate::{Data, Stream};

/// A table of the latest value per key.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    pub(crate) changes: Stream<K, Change<V>>,
    /// The table's own store: sources, `to_table`, aggregations, join results and
    /// `materialized_as` have one (a suppressed table: the store of its held updates);
    /// `None` for a lazy table (`filter`, `filter_not`, `map_values`).
    pub(crate) store: Option<String>,
    /// How a processor reads the table's value for a key: its own key-value store, or its
    /// nearest materialized ancestor's through the lazy operators since. `None` when no
    /// key-value store keyed like the table is upstream (windowed and suppressed tables,
    /// and lazy tables derived from them): such a table cannot be joined.
    pub(crate) getter: Option<ValueGetter<K, V>>,
    pub(crate) values: Arc<dyn Serde<V>>,
    /// For a windowed table: how long after a window's `end` its value may still change
    /// (its value is final once stream time reaches `end` plus this).
    pub(crate) window_grace: Option<i64>,
}

/// Writes each new value (or delete) to the store and forwards the change it made.
pub(crate) struct Materialize {
    pub store: String,
}

impl<K: Data, V: Data> Processor<K, Option<V>, K, Change<V>> for Materialize {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, Option<V>>,
    ) -> ProcessResult {
        let mut store = ctx.kv_store::<K, V>(&self.store)?;
        let old = store.get(&r.key)?;
        match &r.value {
            Some(v) => store.put(&r.key, v)?,
            None if old.is_none() => return Ok(()),
            None => store.delete(&r.key)?,
        }
        let Record {
            key,
            value: new,
            timestamp,
            headers,
        } = r;
        ctx.forward(Record {
            key,
            value: Change { new, old },
            timestamp,
            headers,
        })?;
        Ok(())
    }
}

impl<K: Data, V: Data> Stream<K, Option<V>> {
    /// Materializes this stream of new values (`None`: delete) as a table in store `store`,
    /// repartitioning first (through `<store>-repartition`) if the key may have changed.
    pub(crate) fn materialize(&self, store: &str, values: Arc<dyn Serde<V>>) -> Table<K, V> {
        let input = if self.key_changed {
            self.repartition(&format!("{store}-repartition"))
        } else {
            self.clone()
        };
        let name = store.to_string();
        let node = input.add::<Materialize, K, Change<V>>("to-table", &[&input.node], move || {
            Materialize {
                store: name.clone(),
            }
        });
        let spec = StoreSpec::key_value::<K, V>(store, input.keys.clone(), values.clone());
        input.add_store(spec, &node);
        let changes = input.derive(
            node,
            input.keys.clone(),
            Arc::new(ChangeSerde(values.clone())),
            false,
        );
        Table {
            changes,
            store: Some(store.to_string()),
            getter: Some(ValueGetter::of_store(store)),
            values,
            window_grace: None,
        }
    }
}

impl<K: Data, V: Data> Stream<K, V> {
    /// This stream as a table in store `store`: each record is its key's new value.
    pub fn to_table(&self, store: &str) -> Table<K, V> {
        let values = self.values.clone();
        self.flat_map_inner(
            "to-table-values",
            |k, v| vec![(k, Some(v))],
            self.keys.clone(),
            Arc::new(OptionSerde(values.clone())),
            self.key_changed,
        )
        .materialize(store, values)
    }
}

impl<K: Data, V: Data> Table<K, V> {
    /// Names the next operator applied to this table (see [`Stream::named`]).
    pub fn named(&self, name: &str) -> Self {
        Self {
            changes: self.changes.named(name),
            ..self.clone()
        }
    }

    /// The table's own store: `Some` for a materialized table (a source, `to_table`, an
    /// aggregation, a join result, or [`Table::materialized_as`]: a key-value store to read
    /// with `TopologyTestDriver::kv_store`; a windowed aggregation's is a window or session
    /// store, and a suppressed table's holds its updates not yet emitted), `None` for a
    /// lazy table (`filter`, `filter_not`, `map_values`), which has none.
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The table's updates as a stream: one record per change, the key's new value, or
    /// `None` when the key was deleted (written to a topic as a null value, a tombstone).
    pub fn to_stream(&self) -> Stream<K, Option<V>> {
        self.changes.flat_map_inner(
            "to-stream",
            |k, c: Change<V>| vec![(k, c.new)],
            self.changes.keys.clone(),
            Arc::new(OptionSerde(self.values.clone())),
            false,
        )
    }

    /// The table's new values as a stream, deletes left out (for tables that never delete,
    /// such as aggregations).
    pub fn to_value_stream(&self) -> Stream<K, V> {
        self.changes.flat_map_inner(
            "to-value-stream",
            |k, c: Change<V>| c.new.map(|v| (k, v)).into_iter().collect(),
            self.changes.keys.clone(),
            self.values.clone(),
            false,
        )
    }

    /// The rows for which `keep` holds, as a lazy table (no store; see the module doc): a
    /// key whose new value fails the predicate, and whose old value passed, is deleted
    /// downstream (a tombstone); an update that fails it before and after sends nothing.
    pub fn filter(&self, keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Table<K, V> {
        self.lazy(
            "table-filter",
            self.values.clone(),
            Arc::new(move |k, v| if keep(k, &v) { Some(v) } else { None }),
        )
    }

    /// The rows for which `drop` does not hold, as a lazy table (see [`Table::filter`]).
    pub fn filter_not(&self, drop: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Table<K, V> {
        self.lazy(
            "table-filter-not",
            self.values.clone(),
            Arc::new(move |k, v| if drop(k, &v) { None } else { Some(v) }),
        )
    }

    /// Each row's value mapped by `f`, as a lazy table (deletes stay deletes). `f` is
    /// applied to the old value of each change as well as the new, and again whenever a
    /// join reads the row, so it should be a pure function of its arguments.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> Table<K, V2> {
        self.lazy(
            "table-map-values",
            V2::serde(),
            Arc::new(move |k, v| Some(f(k, v))),
        )
    }

    /// [`Table::map_values`] with the serde of the new values (for downstream topics, and
    /// for the store of a later `materialized_as`) given.
    pub fn map_values_with<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
        values: impl Serde<V2> + 'static,
    ) -> Table<K, V2> {
        self.lazy(
            "table-map-values",
            Arc::new(values),
            Arc::new(move |k, v| Some(f(k, v))),
        )
    }

    /// This table with a store of its own named `store` (and its changelog topic,
    /// `<application id>-<store>-changelog`), to read with `TopologyTestDriver::kv_store`
    /// (apps have no interactive queries yet). Joins read it from that store. A table that already
    /// has a store gets a second copy under `store`.
    pub fn materialized_as(&self, store: &str) -> Table<K, V> {
        let name = store.to_string();
        let node = self.changes.add::<MaterializeChanges, K, Change<V>>(
            "table-materialize",
            &[&self.changes.node],
            move || MaterializeChanges {
                store: name.clone(),
            },
        );
        let spec =
            StoreSpec::key_value::<K, V>(store, self.changes.keys.clone(), self.values.clone());
        self.changes.add_store(spec, &node);
        Table {
            changes: self.changes.derive(
                node,
                self.changes.keys.clone(),
                self.changes.values.clone(),
                self.changes.key_changed,
            ),
            store: Some(store.to_string()),
            getter: Some(ValueGetter::of_store(store)),
            values: self.values.clone(),
            window_grace: self.window_grace,
        }
    }

    /// A lazy table whose value for a key is `f(key, this table's value)` (`None`: no row).
    fn lazy<V2: Data>(
        &self,
        kind: &str,
        values: Arc<dyn Serde<V2>>,
        f: RowFn<K, V, V2>,
    ) -> Table<K, V2> {
        let g = f.clone();
        let node = self.changes.add::<TableValues<K, V, V2>, K, Change<V2>>(
            kind,
            &[&self.changes.node],
            move || TableValues { f: g.clone() },
        );
        Table {
            changes: self.changes.derive(
                node,
                self.changes.keys.clone(),
                Arc::new(ChangeSerde(values.clone())),
                self.changes.key_changed,
            ),
            store: None,
            getter: self.getter.as_ref().map(|getter| getter.then(f)),
            values,
            window_grace: self.window_grace,
        }
    }

    /// The table's store, or for a lazy table the node its changes come from (for errors).
    pub(crate) fn describe(&self) -> &str {
        self.store.as_deref().unwrap_or(&self.changes.node)
    }

    /// The getter through which `user` (a join, as an error names it) reads the table;
    /// records a build error
    /// (and returns a getter of a store that cannot be read) if the table is not a
    /// key-value table.
    pub(crate) fn joinable(&self, user: &str) -> ValueGetter<K, V> {
        match &self.getter {
            Some(getter) => getter.clone(),
            None => {
                self.changes.fail(format!(
                    "{user} joins `{}`, a table that cannot be read by key: a windowed \
                     table (its store holds windows) or a suppressed one (its store holds \
                     the updates not yet emitted), or a lazy table derived from one. Join \
                     the table before it is suppressed, or give a key-value view of it a \
                     store with `materialized_as` (a windowed table's windows are then \
                     never expired from that store)",
                    self.describe()
                ));
                ValueGetter::of_store(self.describe())
            }
        }
    }

    /// Re-keys the table: each row becomes the row `f(key, value)` of the result, grouped
    /// (through the repartition topic `<store>-repartition` of the aggregation) for
    /// `count`, `reduce` or `aggregate` with an adder and a subtractor.
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> GroupedTable<K2, V2> {
        let regrouped = self.changes.flat_map_inner(
            "table-group-by",
            move |k, c: Change<V>| {
                let mut out = Vec::with_capacity(2);
                if let Some(old) = c.old {
                    let (k2, v2) = f(&k, &old);
                    out.push((
                        k2,
                        Change {
                            new: None,
                            old: Some(v2),
                        },
                    ));
                }
                if let Some(new) = c.new {
                    let (k2, v2) = f(&k, &new);
                    out.push((
                        k2,
                        Change {
                            new: Some(v2),
                            old: None,
                        },
                    ));
                }
                out
            },
            K2::serde(),
            Change::<V2>::serde(),
            true,
        );
        GroupedTable {
            regrouped,
            values: V2::serde(),
        }
    }
}

/// A table re-keyed by [`Table::group_by`], ready to aggregate.
#[derive(Debug, Clone)]
pub struct GroupedTable<K, V> {
    /// Subtractions (`old` only) and additions (`new` only) under the new keys.
    regrouped: Stream<K, Change<V>>,
    /// The serde of the new values.
    values: Arc<dyn Serde<V>>,
}

/// One step of a table aggregation: the key, its aggregate so far (`None` before the
/// first), a subtraction or addition; the new aggregate (`None`: nothing to store yet).
type Step<K, V, A> = Arc<dyn Fn(&K, Option<A>, &Change<V>) -> Option<A> + Send + Sync>;

/// Applies each subtraction and addition to its key's aggregate.
struct TableAggregate<K, V, A> {
    store: String,
    step: Step<K, V, A>,
}

impl<K: Data, V: Data, A: Data> Processor<K, Change<V>, K, Change<A>> for TableAggregate<K, V, A> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        r: Record<K, Change<V>>,
    ) -> ProcessResult {
        let mut store = ctx.kv_store::<K, A>(&self.store)?;
        let before = store.get(&r.key)?;
        let Some(acc) = (self.step)(&r.key, before.clone(), &r.value) else {
            return Ok(());
        };
        store.put(&r.key, &acc)?;
        ctx.forward(Record {
            key: r.key,
            value: Change {
                new: Some(acc),
                old: before,
            },
            timestamp: r.timestamp,
            headers: r.headers,
        })?;
        Ok(())
    }
}

impl<K: Data, V: Data> GroupedTable<K, V> {
    /// The number of rows per new key, in store `store`.
    pub fn count(&self, store: &str) -> Table<K, u64> {
        self.aggregate(
            store,
            || 0u64,
            |_, _, n| n + 1,
            |_, _, n: u64| n.saturating_sub(1),
        )
    }

    /// Per new key: `init()`, plus `add(key, value, aggregate)` for each row that joins the
    /// group and `subtract(key, value, aggregate)` for each row that leaves it (a row
    /// whose value changes leaves with its old value, then joins with its new one).
    pub fn aggregate<A: Data>(
        &self,
        store: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        subtract: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> Table<K, A> {
        self.aggregate_with(store, init, add, subtract, A::serde())
    }

    /// [`GroupedTable::aggregate`] with the aggregate's serde given.
    pub fn aggregate_with<A: Data>(
        &self,
        store: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        subtract: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        aggregates: Arc<dyn Serde<A>>,
    ) -> Table<K, A> {
        let step = move |k: &K, acc: Option<A>, c: &Change<V>| {
            let mut acc = acc.unwrap_or_else(&init);
            if let Some(old) = &c.old {
                acc = subtract(k, old, acc);
            }
            if let Some(new) = &c.new {
                acc = add(k, new, acc);
            }
            Some(acc)
        };
        self.fold(store, Arc::new(step), aggregates)
    }

    /// Per new key, the rows folded with `add(aggregate, value)` from the first one, and
    /// `subtract(aggregate, value)` applied for each row that leaves, in store `store`.
    pub fn reduce(
        &self,
        store: &str,
        add: impl Fn(V, &V) -> V + Send + Sync + 'static,
        subtract: impl Fn(V, &V) -> V + Send + Sync + 'static,
    ) -> Table<K, V> {
        let step = move |_: &K, mut acc: Option<V>, c: &Change<V>| {
            if let Some(old) = &c.old {
                acc = acc.map(|a| subtract(a, old));
            }
            if let Some(new) = &c.new {
                acc = Some(match acc {
                    Some(a) => add(a, new),
                    None => new.clone(),
                });
            }
            acc
        };
        let values = self.values.clone();
        self.fold(store, Arc::new(step), values)
    }

    fn fold<A: Data>(
        &self,
        store: &str,
        step: Step<K, V, A>,
        aggregates: Arc<dyn Serde<A>>,
    ) -> Table<K, A> {
        let input = self.regrouped.repartition(&format!("{store}-repartition"));
        let name = store.to_string();
        let node = input.add::<TableAggregate<K, V, A>, K, Change<A>>(
            "table-aggregate",
            &[&input.node],
            move || TableAggregate {
                store: name.clone(),
                step: step.clone(),
            },
        );
        let spec = StoreSpec::key_value::<K, A>(store, input.keys.clone(), aggregates.clone());
        input.add_store(spec, &node);
        Table {
            changes: input.derive(
                node,
                input.keys.clone(),
                Arc::new(ChangeSerde(aggregates.clone())),
                false,
            ),
            store: Some(store.to_string()),
            getter: Some(ValueGetter::of_store(store)),
            values: aggregates,
            window_grace: None,
        }
    }
}
