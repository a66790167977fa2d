//! Sliding windows (Kafka Streams' `SlidingWindows`): windows of a fixed time difference
//! `d`, both ends inclusive, that exist only where records are: for each record at `t`
//! the window `[t - d, t]` (ending at it), and `[t + 1, t + 1 + d]` (starting just after
//! it) when that one holds records. So every distinct set of records that fit within `d`
//! of each other gets exactly one window, without the empty or repeated windows of a
//! hopping window with a 1 ms advance.
//!
//! Each key's records are kept (a window store with a changelog) for `2d + grace`; a record
//! recomputes the windows that hold it from them. A window closes when stream time passes
//! its end plus the grace; a record whose windows are all closed is dropped and counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::Serde;
use sluice_runtime::topology::StoreSpec;

use crate::change::{Change, ChangeSerde, ListSerde};
use crate::windows::{Expiry, millis};
use crate::{Data, Grouped, Table, Windowed, WindowedSerde};

/// Windows of a fixed time difference that slide with the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    difference_ms: i64,
    grace_ms: i64,
}

impl SlidingWindows {
    /// Records at most `difference` apart share a window; no grace period.
    pub fn with_time_difference(difference: Duration) -> Self {
        Self {
            difference_ms: millis(difference),
            grace_ms: 0,
        }
    }

    /// Accepts records up to `grace` after a window's end (in stream time).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// The starts of the windows that the records at `times` (sorted) define.
    pub fn starts(&self, times: &[i64]) -> BTreeSet<i64> {
        let d = self.difference_ms;
        let mut starts = BTreeSet::new();
        for (i, &t) in times.iter().enumerate() {
            starts.insert(t.saturating_sub(d));
            let after = times[i..]
                .iter()
                .any(|&u| u > t && u <= t.saturating_add(1 + d));
            if after {
                starts.insert(t.saturating_add(1));
            }
        }
        starts
    }
}

/// A grouped stream with sliding windows, ready to aggregate.
#[derive(Debug, Clone)]
pub struct SlidingGrouped<K, V> {
    grouped: Grouped<K, V>,
    windows: SlidingWindows,
}

impl<K: Data, V: Data> Grouped<K, V> {
    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingGrouped<K, V> {
        SlidingGrouped {
            grouped: self.clone(),
            windows,
        }
    }
}

type Fold<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

struct SlidingAggregate<K, V, A> {
    store: String,
    records: String,
    windows: SlidingWindows,
    fold: Fold<K, V, A>,
    expiry: Expiry,
}

impl<K: Data, V: Data, A: Data> Processor<K, V, Windowed<K>, Change<A>>
    for SlidingAggregate<K, V, A>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        r: Record<K, V>,
    ) -> ProcessResult {
        let (t, d, grace) = (
            r.timestamp,
            self.windows.difference_ms,
            self.windows.grace_ms,
        );
        let now = ctx.stream_time().max(t);
        let closed = |start: i64| start.saturating_add(d).saturating_add(grace) < now;
        if closed(t) {
            ctx.record_dropped("late: every sliding window of the record is closed");
            return Ok(());
        }
        let mut records = ctx.window_store::<K, Vec<V>>(&self.records)?;
        let mut here = records
            .fetch(&r.key, t, t)?
            .next()
            .transpose()?
            .map(|(_, l)| l)
            .unwrap_or_default();
        let first_at_t = here.is_empty();
        here.push(r.value);
        records.put(&r.key, t, &here)?;
        let span = d.saturating_mul(2).saturating_add(2);
        let near = records
            .fetch(&r.key, t.saturating_sub(span), t.saturating_add(span))?
            .collect::<sluice_runtime::Result<Vec<_>>>()?;
        let times: Vec<i64> = near.iter().map(|(time, _)| *time).collect();
        let affected = self.windows.starts(&times).into_iter().filter(|&s| {
            let holds_t = s <= t && t <= s.saturating_add(d);
            // The window starting just after `t` is new only with the first record at `t`.
            let starts_after_t = s == t.saturating_add(1) && first_at_t;
            (holds_t || starts_after_t) && !closed(s)
        });
        for start in affected.collect::<Vec<_>>() {
            let end = start.saturating_add(d);
            let mut acc: Option<A> = None;
            for (_, list) in near.iter().filter(|(time, _)| (start..=end).contains(time)) {
                for v in list {
                    acc = Some((self.fold)(&r.key, v.clone(), acc));
                }
            }
            let Some(acc) = acc else { continue };
            let mut store = ctx.window_store::<K, A>(&self.store)?;
            let old = store
                .fetch(&r.key, start, start)?
                .next()
                .transpose()?
                .map(|(_, a)| a);
            store.put(&r.key, start, &acc)?;
            let key = Windowed {
                key: r.key.clone(),
                start,
                end,
            };
            ctx.forward(Record {
                key,
                value: Change {
                    new: Some(acc),
                    old,
                },
                timestamp: t,
                headers: r.headers.clone(),
            })?;
        }
        if self.expiry.due() {
            ctx.window_store::<K, Vec<V>>(&self.records)?.expire()?;
            ctx.window_store::<K, A>(&self.store)?.expire()?;
        }
        Ok(())
    }
}

fn duration_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

impl<K: Data, V: Data> SlidingGrouped<K, V> {
    /// Records per key and sliding window, in window store `name`.
    pub fn count(&self, name: &str) -> Table<Windowed<K>, u64> {
        self.aggregate(name, || 0u64, |_, _, n| n + 1)
    }

    /// Each window's records folded with `reduce`, from the first.
    pub fn reduce(
        &self,
        name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Table<Windowed<K>, V> {
        let values = self.grouped.stream.values.clone();
        self.fold_with(name, Arc::new(crate::grouped::reducing(reduce)), values)
    }

    /// Each window's records folded with `fold(key, value, aggregate)` from `init()`.
    pub fn aggregate<A: Data>(
        &self,
        name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> Table<Windowed<K>, A> {
        self.fold_with(
            name,
            Arc::new(move |k, v, acc| fold(k, v, acc.unwrap_or_else(&init))),
            A::serde(),
        )
    }

    fn fold_with<A: Data>(
        &self,
        name: &str,
        fold: Fold<K, V, A>,
        aggregates: Arc<dyn Serde<A>>,
    ) -> Table<Windowed<K>, A> {
        let input = self.grouped.repartitioned(name);
        let keys = input.keys.clone();
        let windows = self.windows;
        let (store, records) = (name.to_string(), format!("{name}-records"));
        let (s, rs) = (store.clone(), records.clone());
        let node = input.add::<SlidingAggregate<K, V, A>, Windowed<K>, Change<A>>(
            "sliding-aggregate",
            &[&input.node],
            move || SlidingAggregate {
                store: s.clone(),
                records: rs.clone(),
                windows,
                fold: fold.clone(),
                expiry: Expiry::default(),
            },
        );
        let (d, g) = (windows.difference_ms, windows.grace_ms);
        let spec = StoreSpec::window::<K, A>(
            &store,
            keys.clone(),
            aggregates.clone(),
            duration_ms(d.saturating_add(g).saturating_add(1)),
        );
        input.add_store(spec, &node);
        let values = ListSerde(input.values.clone());
        let kept = duration_ms(d.saturating_mul(3).saturating_add(g).saturating_add(3));
        let spec = StoreSpec::window::<K, Vec<V>>(&records, keys.clone(), values, kept);
        input.add_store(spec, &node);
        let windowed_keys: Arc<dyn Serde<Windowed<K>>> = Arc::new(WindowedSerde(keys));
        Table {
            changes: input.derive(
                node,
                windowed_keys,
                Arc::new(ChangeSerde(aggregates.clone())),
                false,
            ),
            store: Some(store),
            getter: None,
            values: aggregates,
            // A sliding window's end is inclusive: final once stream time passes end + grace.
            window_grace: Some(g.saturating_add(1)),
        }
    }
}
