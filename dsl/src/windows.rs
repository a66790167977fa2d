//! Time windows for grouped streams: [`TimeWindows`] (tumbling when the advance equals the
//! size, hopping otherwise) with a grace period, the [`Windowed`] key of their results, and
//! the windowed aggregations. A record belongs to every window `[start, start + size)` that
//! holds its timestamp, with `start` a multiple of the advance. A window closes when the
//! task's stream time reaches its end plus the grace period; a record whose windows are all
//! closed is dropped and counted (`AppMetrics::records_dropped`,
//! `TopologyTestDriver::dropped_records`).

use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::Serde;
use sluice_runtime::topology::StoreSpec;

use crate::change::{Change, ChangeSerde};
use crate::{Data, Grouped, Stream, Table};

/// How often a windowed processor deletes what its stores' retention has passed.
#[derive(Debug, Default)]
pub(crate) struct Expiry {
    since: u32,
}

impl Expiry {
    /// Records between two expiry passes.
    const EVERY: u32 = 1024;

    /// Counts a record; true once every [`Expiry::EVERY`] records.
    pub fn due(&mut self) -> bool {
        self.since += 1;
        if self.since >= Self::EVERY {
            self.since = 0;
            return true;
        }
        false
    }
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Fixed-size windows, tumbling or hopping, with a grace period for late records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` (advance = size) and no grace period.
    pub fn of(size: Duration) -> Self {
        let size_ms = millis(size).max(1);
        Self {
            size_ms,
            advance_ms: size_ms,
            grace_ms: 0,
        }
    }

    /// Hopping windows: a new window every `advance` (at most the size).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = millis(advance).clamp(1, self.size_ms);
        self
    }

    /// Accepts records up to `grace` after a window's end (in stream time).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// The starts of the windows holding `timestamp`, oldest first.
    pub fn starts_for(&self, timestamp: i64) -> Vec<i64> {
        let last = timestamp.div_euclid(self.advance_ms);
        let first = (timestamp - self.size_ms).div_euclid(self.advance_ms) + 1;
        (first..=last).map(|k| k * self.advance_ms).collect()
    }

    /// The window size in ms.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

/// A key with the window it was aggregated in: `[start, end)` for time windows;
/// `[start, end]` (both inclusive: the first and last record) for session windows and for
/// sliding windows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K> {
    /// The key.
    pub key: K,
    /// The window's start (inclusive), ms.
    pub start: i64,
    /// The window's end, ms (exclusive for time windows, inclusive for session and sliding
    /// windows).
    pub end: i64,
}

/// `Windowed<K>` as the key's bytes followed by the start and end, 8 bytes big-endian each.
pub struct WindowedSerde<K>(pub Arc<dyn Serde<K>>);

impl<K> std::fmt::Debug for WindowedSerde<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WindowedSerde").field(&self.0).finish()
    }
}

impl<K> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> sluice_runtime::Result<Vec<u8>> {
        let mut out = self.0.serialize(&value.key)?;
        out.extend_from_slice(&value.start.to_be_bytes());
        out.extend_from_slice(&value.end.to_be_bytes());
        Ok(out)
    }
    fn deserialize(&self, bytes: &[u8]) -> sluice_runtime::Result<Windowed<K>> {
        let bad = || sluice_runtime::Error::Serde {
            type_name: "Windowed",
            reason: format!("{} bytes is too short for a window", bytes.len()),
        };
        let split = bytes.len().checked_sub(16).ok_or_else(bad)?;
        let (key, times) = bytes.split_at(split);
        let start = i64::from_be_bytes(times[..8].try_into().map_err(|_| bad())?);
        let end = i64::from_be_bytes(times[8..].try_into().map_err(|_| bad())?);
        Ok(Windowed {
            key: self.0.deserialize(key)?,
            start,
            end,
        })
    }
}

impl<K: Data> Data for Windowed<K> {
    fn serde() -> Arc<dyn Serde<Self>> {
        Arc::new(WindowedSerde(K::serde()))
    }
}

/// A grouped stream with its windows, ready to aggregate.
#[derive(Debug, Clone)]
pub struct WindowedGrouped<K, V> {
    grouped: Grouped<K, V>,
    windows: TimeWindows,
}

impl<K: Data, V: Data> Grouped<K, V> {
    /// Aggregates per key and time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> WindowedGrouped<K, V> {
        WindowedGrouped {
            grouped: self.clone(),
            windows,
        }
    }
}

type Fold<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

struct WindowAggregate<K, V, A> {
    store: String,
    windows: TimeWindows,
    fold: Fold<K, V, A>,
    expiry: Expiry,
}

impl<K: Data, V: Data, A: Data> Processor<K, V, Windowed<K>, Change<A>>
    for WindowAggregate<K, V, A>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        r: Record<K, V>,
    ) -> ProcessResult {
        // Stream time as it is with this record in it.
        let now = ctx.stream_time().max(r.timestamp);
        let open: Vec<i64> = self
            .windows
            .starts_for(r.timestamp)
            .into_iter()
            .filter(|start| {
                start
                    .saturating_add(self.windows.size_ms)
                    .saturating_add(self.windows.grace_ms)
                    > now
            })
            .collect();
        if open.is_empty() {
            ctx.record_dropped("late: every window of the record is closed");
            return Ok(());
        }
        for start in open {
            let mut store = ctx.window_store::<K, A>(&self.store)?;
            let current = store
                .fetch(&r.key, start, start)?
                .next()
                .transpose()?
                .map(|(_, a)| a);
            let next = (self.fold)(&r.key, r.value.clone(), current.clone());
            store.put(&r.key, start, &next)?;
            let key = Windowed {
                key: r.key.clone(),
                start,
                end: start + self.windows.size_ms,
            };
            ctx.forward(Record {
                key,
                value: Change {
                    new: Some(next),
                    old: current,
                },
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })?;
        }
        if self.expiry.due() {
            ctx.window_store::<K, A>(&self.store)?.expire()?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> WindowedGrouped<K, V> {
    /// Records per key and window, in window store `name`.
    pub fn count(&self, name: &str) -> Table<Windowed<K>, u64> {
        self.aggregate(name, || 0u64, |_, _, n| n + 1)
    }

    /// Each key's records in each window folded with `reduce`, from the first.
    pub fn reduce(
        &self,
        name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Table<Windowed<K>, V> {
        let values = self.grouped.stream.values.clone();
        self.fold_with(name, crate::grouped::reducing(reduce), values)
    }

    /// Each key's records in each window folded with `fold` from `init()`.
    pub fn aggregate<A: Data>(
        &self,
        name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> Table<Windowed<K>, A> {
        self.fold_with(
            name,
            move |k, v, acc| fold(k, v, acc.unwrap_or_else(&init)),
            A::serde(),
        )
    }

    fn fold_with<A: Data>(
        &self,
        name: &str,
        fold: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
        aggregates: Arc<dyn Serde<A>>,
    ) -> Table<Windowed<K>, A> {
        let input = self.grouped.repartitioned(name);
        let keys = input.keys.clone();
        let fold: Fold<K, V, A> = Arc::new(fold);
        let (store, windows) = (name.to_string(), self.windows);
        let mut inner = input.inner.borrow_mut();
        let node = inner.name(input.name_token, "window-aggregate");
        let parent = input.node.clone();
        inner.add(|t| {
            t.add_processor::<WindowAggregate<K, V, A>, K, V, Windowed<K>, Change<A>>(
                &node,
                &[&parent],
                move || WindowAggregate {
                    store: store.clone(),
                    windows,
                    fold: fold.clone(),
                    expiry: Expiry::default(),
                },
            )
        });
        let retention = Duration::from_millis(
            u64::try_from(windows.size_ms.saturating_add(windows.grace_ms)).unwrap_or(u64::MAX),
        );
        let spec = StoreSpec::window::<K, A>(name, keys.clone(), aggregates.clone(), retention);
        let at = node.clone();
        inner.add(|t| t.add_state_store(spec, &[&at]));
        drop(inner);
        let windowed_keys: Arc<dyn Serde<Windowed<K>>> = Arc::new(WindowedSerde(keys));
        let changes = Stream::new(
            input.inner.clone(),
            node,
            windowed_keys,
            Arc::new(ChangeSerde(aggregates.clone())),
            false,
        );
        Table {
            changes,
            store: Some(name.to_string()),
            getter: None,
            values: aggregates,
            window_grace: Some(windows.grace_ms),
        }
    }
}
