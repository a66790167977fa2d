//! Joins with a table: a stream joined with a [`Table`] (each record looks its key up in
//! the table as it is at that moment; the table's own updates emit nothing), and a table
//! joined with a table (either side's update recomputes the key's result, which is
//! materialized, so a key that stops matching is deleted downstream). A table is read
//! through its value getter (`value_getter.rs`): its own store, or for a lazy table its
//! nearest materialized ancestor's store, connected to the join's processor, and the
//! lazy operators' functions since. Both sides must be partitioned alike: a stream whose
//! key may have changed is repartitioned first, and the runtime checks at start that the
//! source topics have equal partition counts.

use std::marker::PhantomData;
use std::sync::Arc;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::OptionSerde;

use crate::value_getter::ValueGetter;
use crate::{Data, Stream, Table};

/// The joiner of a stream record with the table's value (`None`: no row), `None` to emit
/// nothing.
type StreamTableJoiner<K, V, VT, VR> = Arc<dyn Fn(&K, V, Option<VT>) -> Option<VR> + Send + Sync>;

/// Looks each record's key up in the table and joins.
struct StreamTableJoin<K, V, VT, VR> {
    table: ValueGetter<K, VT>,
    joiner: StreamTableJoiner<K, V, VT, VR>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V, K, VR>
    for StreamTableJoin<K, V, VT, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, V>) -> ProcessResult {
        let row = self.table.get(ctx, &r.key)?;
        if let Some(out) = (self.joiner)(&r.key, r.value, row) {
            ctx.forward(Record {
                key: r.key,
                value: out,
                timestamp: r.timestamp,
                headers: r.headers,
            })?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Stream<K, V> {
    /// Each record joined with its key's row in `table` (inner join: a record whose key has
    /// no row is dropped). The table is read as it is when the record is processed.
    pub fn join_table<VT: Data, VR: Data>(
        &self,
        table: &Table<K, VT>,
        joiner: impl Fn(&K, V, VT) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR> {
        self.stream_table_join(
            "join-table",
            table,
            Arc::new(move |k, v, row| row.map(|row| joiner(k, v, row))),
        )
    }

    /// Each record joined with its key's row in `table`, or with `None` when there is none.
    pub fn left_join_table<VT: Data, VR: Data>(
        &self,
        table: &Table<K, VT>,
        joiner: impl Fn(&K, V, Option<VT>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR> {
        self.stream_table_join(
            "left-join-table",
            table,
            Arc::new(move |k, v, row| Some(joiner(k, v, row))),
        )
    }

    fn stream_table_join<VT: Data, VR: Data>(
        &self,
        kind: &str,
        table: &Table<K, VT>,
        joiner: StreamTableJoiner<K, V, VT, VR>,
    ) -> Stream<K, VR> {
        let name = self.next_node_name(kind);
        let getter = table.joinable(&format!("`{name}`"));
        let input = self.co_partitioned(&format!("{name}-repartition"));
        let read = getter.clone();
        input.add_as::<StreamTableJoin<K, V, VT, VR>, K, VR>(&name, &[&input.node], move || {
            StreamTableJoin {
                table: read.clone(),
                joiner: joiner.clone(),
            }
        });
        getter.connect(&input, &name);
        input.derive(name, input.keys.clone(), VR::serde(), false)
    }
}

/// The joiner of two tables' rows for one key (`None`, `None` never happens); `None` means
/// "no row in the result".
type TableJoiner<K, V, VO, VR> =
    Arc<dyn Fn(&K, Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// On an update of either side, joins the key's current rows of both tables.
struct TableTableJoin<K, V, VO, VR> {
    left: ValueGetter<K, V>,
    right: ValueGetter<K, VO>,
    joiner: TableJoiner<K, V, VO, VR>,
    types: PhantomData<fn(K, V, VO)>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, (), K, Option<VR>>
    for TableTableJoin<K, V, VO, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<VR>>,
        r: Record<K, ()>,
    ) -> ProcessResult {
        let left = self.left.get(ctx, &r.key)?;
        let right = self.right.get(ctx, &r.key)?;
        let out = match (&left, &right) {
            (None, None) => None,
            (l, r_) => (self.joiner)(&r.key, l.as_ref(), r_.as_ref()),
        };
        ctx.forward(Record {
            key: r.key,
            value: out,
            timestamp: r.timestamp,
            headers: r.headers,
        })?;
        Ok(())
    }
}

impl<K: Data, V: Data> Table<K, V> {
    /// The keys with a row on both sides, joined, in store `store`.
    pub fn join<VO: Data, VR: Data>(
        &self,
        store: &str,
        other: &Table<K, VO>,
        joiner: impl Fn(&K, &V, &VO) -> VR + Send + Sync + 'static,
    ) -> Table<K, VR> {
        self.table_join(
            store,
            other,
            Arc::new(move |k, l, r| Some(joiner(k, l?, r?))),
        )
    }

    /// Every key of this table, joined with the other's row or `None`, in store `store`.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        store: &str,
        other: &Table<K, VO>,
        joiner: impl Fn(&K, &V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> Table<K, VR> {
        self.table_join(
            store,
            other,
            Arc::new(move |k, l, r| Some(joiner(k, l?, r))),
        )
    }

    /// Every key of either table, joined with what the other has, in store `store`.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        store: &str,
        other: &Table<K, VO>,
        joiner: impl Fn(&K, Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> Table<K, VR> {
        self.table_join(store, other, Arc::new(move |k, l, r| Some(joiner(k, l, r))))
    }

    fn table_join<VO: Data, VR: Data>(
        &self,
        store: &str,
        other: &Table<K, VO>,
        joiner: TableJoiner<K, V, VO, VR>,
    ) -> Table<K, VR> {
        let name = self.changes.next_node_name("table-join");
        let user = format!("`{name}`");
        let (left_getter, right_getter) = (self.joinable(&user), other.joinable(&user));
        let left = self.changes.map_values(|_| ());
        let right = other.changes.map_values(|_| ());
        let updates = left.merge(&right);
        let (l, r) = (left_getter.clone(), right_getter.clone());
        updates.add_as::<TableTableJoin<K, V, VO, VR>, K, Option<VR>>(
            &name,
            &[&updates.node],
            move || TableTableJoin {
                left: l.clone(),
                right: r.clone(),
                joiner: joiner.clone(),
                types: PhantomData,
            },
        );
        left_getter.connect(&updates, &name);
        right_getter.connect(&updates, &name);
        updates
            .derive(
                name,
                updates.keys.clone(),
                Arc::new(OptionSerde(VR::serde())),
                false,
            )
            .materialize(store, VR::serde())
    }
}
