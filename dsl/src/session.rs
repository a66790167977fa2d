//! Session windows: per key, records closer together than the inactivity gap form one
//! session `[first timestamp, last timestamp]` (both inclusive). A record that falls
//! within the gap of one or more sessions merges them (their aggregates combined with the
//! merger) and extends the result; the merged-away sessions are deleted downstream (a
//! `None` for their `Windowed` key). A record is dropped and counted when the session it
//! would make ends more than the grace period behind stream time, as Kafka Streams does
//! (`mergedWindow.end() < streamTime - grace`). A session is final once stream time passes
//! its end plus gap plus grace: no record can extend it then, and a late record that
//! bridges it to an open session merges with the open one only.

use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::Serde;
use sluice_runtime::state::Session;
use sluice_runtime::topology::StoreSpec;

use crate::change::{Change, ChangeSerde};
use crate::windows::{Expiry, millis};
use crate::{Data, Grouped, Table, Windowed, WindowedSerde};

/// Sessions of activity separated by gaps of at least `gap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
}

impl SessionWindows {
    /// Sessions that end when a key sees no record for `gap`; no grace period.
    pub fn with_inactivity_gap(gap: Duration) -> Self {
        Self {
            gap_ms: millis(gap),
            grace_ms: 0,
        }
    }

    /// Accepts records up to `grace` after a session's end (in stream time).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// The inactivity gap in ms.
    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }
}

/// A grouped stream with session windows, ready to aggregate.
#[derive(Debug, Clone)]
pub struct SessionGrouped<K, V> {
    grouped: Grouped<K, V>,
    windows: SessionWindows,
}

impl<K: Data, V: Data> Grouped<K, V> {
    /// Aggregates per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionGrouped<K, V> {
        SessionGrouped {
            grouped: self.clone(),
            windows,
        }
    }
}

/// Folds a record into a session's aggregate (`None`: the session is new).
type Fold<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;
type Merger<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;

struct SessionAggregate<K, V, A> {
    store: String,
    windows: SessionWindows,
    fold: Fold<K, V, A>,
    merge: Merger<K, A>,
    expiry: Expiry,
}

impl<K: Data, V: Data, A: Data> Processor<K, V, Windowed<K>, Change<A>>
    for SessionAggregate<K, V, A>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        r: Record<K, V>,
    ) -> ProcessResult {
        let (t, w) = (r.timestamp, self.windows);
        let now = ctx.stream_time().max(t);
        let mut touched = ctx
            .session_store::<K, A>(&self.store)?
            .find_sessions(
                &r.key,
                t.saturating_sub(w.gap_ms),
                t.saturating_add(w.gap_ms),
            )?
            .collect::<sluice_runtime::Result<Vec<_>>>()?;
        // A closed session (past end + gap + grace: final, maybe emitted by a suppress, maybe
        // expired from the store) is never merged into, even by a late record that bridges it
        // to an open session; otherwise whether it merged would depend on the store's
        // retention and a final result could be deleted after its emission.
        touched.retain(|(s, _)| s.end.saturating_add(w.gap_ms).saturating_add(w.grace_ms) >= now);
        let mut merged = Session { start: t, end: t };
        for (s, _) in &touched {
            merged.start = merged.start.min(s.start);
            merged.end = merged.end.max(s.end);
        }
        if merged.end.saturating_add(w.grace_ms) < now {
            ctx.record_dropped("late: the record's session is closed");
            return Ok(());
        }
        let mut acc: Option<A> = None;
        let mut same_bounds: Option<A> = None;
        for (s, a) in &touched {
            if *s == merged {
                same_bounds = Some(a.clone());
            }
            acc = Some(match acc {
                None => a.clone(),
                Some(x) => (self.merge)(&r.key, x, a.clone()),
            });
        }
        let next = (self.fold)(&r.key, r.value, acc);
        for (s, a) in touched {
            if s == merged {
                continue;
            }
            ctx.session_store::<K, A>(&self.store)?.remove(&r.key, s)?;
            let gone = Windowed {
                key: r.key.clone(),
                start: s.start,
                end: s.end,
            };
            ctx.forward(Record::new(
                gone,
                Change {
                    new: None,
                    old: Some(a),
                },
                t,
            ))?;
        }
        ctx.session_store::<K, A>(&self.store)?
            .put(&r.key, merged, &next)?;
        let key = Windowed {
            key: r.key,
            start: merged.start,
            end: merged.end,
        };
        ctx.forward(Record {
            key,
            value: Change {
                new: Some(next),
                old: same_bounds,
            },
            timestamp: t,
            headers: r.headers,
        })?;
        if self.expiry.due() {
            ctx.session_store::<K, A>(&self.store)?.expire()?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> SessionGrouped<K, V> {
    /// Records per key and session, in session store `name`.
    pub fn count(&self, name: &str) -> Table<Windowed<K>, u64> {
        self.aggregate(name, || 0u64, |_, _, n| n + 1, |_, a, b| a + b)
    }

    /// Each session's records folded with `reduce` from the first; merging sessions
    /// combines their values with `reduce` too.
    pub fn reduce(
        &self,
        name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Table<Windowed<K>, V> {
        let reduce = Arc::new(reduce);
        let merge = reduce.clone();
        let values = self.grouped.stream.values.clone();
        self.fold_with(
            name,
            Arc::new(crate::grouped::reducing(move |a, b| reduce(a, b))),
            Arc::new(move |_, a, b| merge(a, b)),
            values,
        )
    }

    /// Each session's records folded with `fold(key, value, aggregate)` from `init()`;
    /// when a record joins sessions, their aggregates are combined with `merge(key, older,
    /// newer)` first.
    pub fn aggregate<A: Data>(
        &self,
        name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
    ) -> Table<Windowed<K>, A> {
        self.fold_with(
            name,
            Arc::new(move |k, v, acc| fold(k, v, acc.unwrap_or_else(&init))),
            Arc::new(merge),
            A::serde(),
        )
    }

    fn fold_with<A: Data>(
        &self,
        name: &str,
        fold: Fold<K, V, A>,
        merge: Merger<K, A>,
        aggregates: Arc<dyn Serde<A>>,
    ) -> Table<Windowed<K>, A> {
        let input = self.grouped.repartitioned(name);
        let keys = input.keys.clone();
        let (store, windows) = (name.to_string(), self.windows);
        let node = input.add::<SessionAggregate<K, V, A>, Windowed<K>, Change<A>>(
            "session-aggregate",
            &[&input.node],
            move || SessionAggregate {
                store: store.clone(),
                windows,
                fold: fold.clone(),
                merge: merge.clone(),
                expiry: Expiry::default(),
            },
        );
        let retention = Duration::from_millis(
            u64::try_from(
                windows
                    .gap_ms
                    .saturating_add(windows.grace_ms)
                    .saturating_add(1),
            )
            .unwrap_or(u64::MAX),
        );
        let spec = StoreSpec::session::<K, A>(name, keys.clone(), aggregates.clone(), retention);
        input.add_store(spec, &node);
        let windowed_keys: Arc<dyn Serde<Windowed<K>>> = Arc::new(WindowedSerde(keys));
        Table {
            changes: input.derive(
                node,
                windowed_keys,
                Arc::new(ChangeSerde(aggregates.clone())),
                false,
            ),
            store: Some(name.to_string()),
            getter: None,
            values: aggregates,
            // A session is final once no record can reach it: past its end + gap + grace.
            window_grace: Some(
                windows
                    .gap_ms
                    .saturating_add(windows.grace_ms)
                    .saturating_add(1),
            ),
        }
    }
}
