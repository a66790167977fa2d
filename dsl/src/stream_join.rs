//! Stream-stream joins over [`JoinWindows`]: a left record at time `t` joins every right
//! record of its key with a timestamp in `[t - before, t + after]` (so a right record at
//! `t'` joins left records in `[t' - after, t' + before]`), whichever arrives first. Both
//! sides are buffered in window stores (with changelogs) for `before + after + grace`.
//!
//! `left_join` and `outer_join` follow Kafka Streams 3.1+ in emitting a record that found
//! no partner with `None` only once its window has closed (stream time past `t + after +
//! grace` for a left record, `t' + before + grace` for a right one), and stricter than it,
//! only once no partner can come any more: a late partner is accepted until its own window
//! closes, so the `None` waits until stream time passes `t + before + after + grace` (either
//! side). So no result is emitted and later contradicted: the left or outer join's output is
//! that of the join of all accepted records. A record arriving after its window closed is
//! dropped and counted.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::Serde;
use sluice_runtime::topology::StoreSpec;

use crate::change::ListSerde;
use crate::windows::Expiry;
use crate::{Data, Stream};

/// How far apart in time two records may be to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    before_ms: i64,
    after_ms: i64,
    grace_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JoinWindows {
    /// Records at most `difference` apart join (either way), no grace.
    pub fn of(difference: Duration) -> Self {
        let ms = millis(difference);
        Self {
            before_ms: ms,
            after_ms: ms,
            grace_ms: 0,
        }
    }
    /// A right record may be up to `before` older than the left one.
    pub fn before(mut self, before: Duration) -> Self {
        self.before_ms = millis(before);
        self
    }
    /// A right record may be up to `after` newer than the left one.
    pub fn after(mut self, after: Duration) -> Self {
        self.after_ms = millis(after);
        self
    }
    /// How long after a window closes (in stream time) its late records are still joined.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }
    /// Whether a left record at `left` and a right record at `right` join.
    pub fn joins(&self, left: i64, right: i64) -> bool {
        left.saturating_sub(self.before_ms) <= right && right <= left.saturating_add(self.after_ms)
    }
    /// How long a record must stay buffered.
    fn retention(&self) -> Duration {
        let ms = self
            .before_ms
            .saturating_add(self.after_ms)
            .saturating_add(self.grace_ms)
            .saturating_add(1);
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

/// A record of either side, as the join processor receives it.
#[derive(Debug, Clone)]
pub(crate) enum Side<L, R> {
    Left(L),
    Right(R),
}

/// `Side` as a tag byte (0 left, 1 right) and the value.
pub(crate) struct SideSerde<L, R>(Arc<dyn Serde<L>>, Arc<dyn Serde<R>>);

impl<L, R> fmt::Debug for SideSerde<L, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SideSerde<{:?}, {:?}>", self.0, self.1)
    }
}

impl<L, R> Serde<Side<L, R>> for SideSerde<L, R> {
    fn serialize(&self, value: &Side<L, R>) -> sluice_runtime::Result<Vec<u8>> {
        let (tag, mut bytes) = match value {
            Side::Left(l) => (0, self.0.serialize(l)?),
            Side::Right(r) => (1, self.1.serialize(r)?),
        };
        bytes.insert(0, tag);
        Ok(bytes)
    }
    fn deserialize(&self, bytes: &[u8]) -> sluice_runtime::Result<Side<L, R>> {
        match bytes.split_first() {
            Some((0, rest)) => Ok(Side::Left(self.0.deserialize(rest)?)),
            Some((1, rest)) => Ok(Side::Right(self.1.deserialize(rest)?)),
            _ => Err(sluice_runtime::Error::Serde {
                type_name: "join side",
                reason: "expected a tag byte 0 or 1".into(),
            }),
        }
    }
}

impl<L: Data, R: Data> Data for Side<L, R> {
    fn serde() -> Arc<dyn Serde<Self>> {
        Arc::new(SideSerde(L::serde(), R::serde()))
    }
}

/// Which records without a partner are emitted (with `None`) when their window closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unmatched {
    Neither,
    Left,
    Both,
}

/// The joiner of a pair (`None` for a side without a partner); `None` emits nothing.
type Joiner<K, L, R, VR> = Arc<dyn Fn(&K, Option<&L>, Option<&R>) -> Option<VR> + Send + Sync>;

/// The names of the four window stores of one join.
#[derive(Debug, Clone)]
struct Stores {
    left: String,
    right: String,
    left_unmatched: String,
    right_unmatched: String,
}

struct StreamJoin<K, L, R, VR> {
    windows: JoinWindows,
    emit: Unmatched,
    joiner: Joiner<K, L, R, VR>,
    stores: Stores,
    expiry: Expiry,
}

/// Appends `value` to `key`'s list at `time` in window store `store`.
fn append<K: Data, V: Data, KO: Data, VO: Data>(
    ctx: &mut ProcessorContext<'_, KO, VO>,
    store: &str,
    key: &K,
    time: i64,
    value: V,
) -> sluice_runtime::Result<()> {
    let mut store = ctx.window_store::<K, Vec<V>>(store)?;
    let mut list = store
        .fetch(key, time, time)?
        .next()
        .transpose()?
        .map(|(_, l)| l)
        .unwrap_or_default();
    list.push(value);
    store.put(key, time, &list)?;
    Ok(())
}

impl<K: Data, L: Data, R: Data, VR: Data> StreamJoin<K, L, R, VR> {
    fn emit(
        &self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        key: &K,
        (l, r): (Option<&L>, Option<&R>),
        timestamp: i64,
        headers: &[sluice_runtime::log::batch::Header],
    ) -> sluice_runtime::Result<()> {
        match (self.joiner)(key, l, r) {
            Some(value) => ctx.forward(Record {
                key: key.clone(),
                value,
                timestamp,
                headers: headers.to_vec(),
            }),
            None => Ok(()),
        }
    }

    /// Emits (with `None`) and forgets the unmatched records of `store` that no partner can
    /// join any more at stream time `now`: those more than `reach` plus grace behind it.
    fn close_unmatched<V: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        store: &str,
        reach: i64,
        now: i64,
        pair: impl Fn(&V) -> (Option<&L>, Option<&R>),
    ) -> sluice_runtime::Result<()> {
        let closed_before = now.saturating_sub(reach.saturating_add(self.windows.grace_ms));
        let closed = ctx
            .window_store::<K, Vec<V>>(store)?
            .fetch_all(i64::MIN, closed_before.saturating_sub(1))?
            .collect::<sluice_runtime::Result<Vec<_>>>()?;
        for (key, time, list) in closed {
            ctx.window_store::<K, Vec<V>>(store)?.delete(&key, time)?;
            for v in &list {
                self.emit(ctx, &key, pair(v), time, &[])?;
            }
        }
        Ok(())
    }
}

/// How a record of one side meets the other: its side's stores (buffer, waiting records),
/// the other side's, the times of the partners it joins, and which records without a
/// partner wait for one (`emit`).
struct Meeting<'a> {
    own: (&'a str, &'a str),
    other: (&'a str, &'a str),
    window: (i64, i64),
    /// This side's records without a partner wait (and are emitted with `None`).
    keep_unmatched: bool,
    /// The other side's records without a partner wait (and stop waiting once joined).
    other_waits: bool,
}

/// The pair a record and its partner make, in (left, right) order.
type Pair<This, Other, L, R> = for<'a> fn(&'a This, &'a Other) -> (Option<&'a L>, Option<&'a R>);

impl<K: Data, L: Data, R: Data, VR: Data> StreamJoin<K, L, R, VR> {
    /// Joins a record of one side with the other side's buffered partners, keeps it waiting
    /// if it found none (when its side waits), ends the wait of the partners it found, and
    /// buffers it.
    fn meet<This: Data, Other: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        (key, t, value, headers): (&K, i64, &This, &[sluice_runtime::log::batch::Header]),
        m: Meeting<'_>,
        pair: Pair<This, Other, L, R>,
    ) -> sluice_runtime::Result<()> {
        let (from, to) = m.window;
        let partners = ctx
            .window_store::<K, Vec<Other>>(m.other.0)?
            .fetch(key, from, to)?
            .collect::<sluice_runtime::Result<Vec<_>>>()?;
        for (time, list) in &partners {
            for partner in list {
                self.emit(ctx, key, pair(value, partner), t.max(*time), headers)?;
            }
        }
        if partners.is_empty() {
            if m.keep_unmatched {
                append(ctx, m.own.1, key, t, value.clone())?;
            }
        } else if m.other_waits {
            let mut waiting = ctx.window_store::<K, Vec<Other>>(m.other.1)?;
            let waited = waiting
                .fetch(key, from, to)?
                .collect::<sluice_runtime::Result<Vec<_>>>()?;
            for (time, _) in waited {
                waiting.delete(key, time)?;
            }
        }
        append(ctx, m.own.0, key, t, value.clone())
    }
}

impl<K: Data, L: Data, R: Data, VR: Data> Processor<K, Side<L, R>, K, VR>
    for StreamJoin<K, L, R, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        r: Record<K, Side<L, R>>,
    ) -> ProcessResult {
        let (t, w) = (r.timestamp, self.windows);
        let now = ctx.stream_time().max(t);
        let reach = match r.value {
            Side::Left(_) => w.after_ms,
            Side::Right(_) => w.before_ms,
        };
        if t.saturating_add(reach).saturating_add(w.grace_ms) < now {
            ctx.record_dropped("late: the record's join window is closed");
            return Ok(());
        }
        let s = self.stores.clone();
        // A record without a partner waits until none can come: a partner is accepted until
        // its own window closes, so up to `before + after + grace` after the record (either
        // side). Close first: writing this record to a store of waiting records moves that
        // store's retention, which would hide the records a jump of stream time closes.
        let reach = w.before_ms.saturating_add(w.after_ms);
        if self.emit != Unmatched::Neither {
            self.close_unmatched::<L>(ctx, &s.left_unmatched, reach, now, |l| (Some(l), None))?;
        }
        if self.emit == Unmatched::Both {
            self.close_unmatched::<R>(ctx, &s.right_unmatched, reach, now, |r| (None, Some(r)))?;
        }
        let (key, headers) = (&r.key, &r.headers);
        match &r.value {
            Side::Left(l) => {
                let meeting = Meeting {
                    own: (&s.left, &s.left_unmatched),
                    other: (&s.right, &s.right_unmatched),
                    window: (t.saturating_sub(w.before_ms), t.saturating_add(w.after_ms)),
                    keep_unmatched: self.emit != Unmatched::Neither,
                    other_waits: self.emit == Unmatched::Both,
                };
                self.meet(ctx, (key, t, l, headers), meeting, |l, r| {
                    (Some(l), Some(r))
                })?;
            }
            Side::Right(right) => {
                let meeting = Meeting {
                    own: (&s.right, &s.right_unmatched),
                    other: (&s.left, &s.left_unmatched),
                    window: (t.saturating_sub(w.after_ms), t.saturating_add(w.before_ms)),
                    keep_unmatched: self.emit == Unmatched::Both,
                    other_waits: self.emit != Unmatched::Neither,
                };
                self.meet(ctx, (key, t, right, headers), meeting, |r, l| {
                    (Some(l), Some(r))
                })?;
            }
        }
        if self.expiry.due() {
            ctx.window_store::<K, Vec<L>>(&s.left)?.expire()?;
            ctx.window_store::<K, Vec<R>>(&s.right)?.expire()?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Stream<K, V> {
    /// Each pair of records of one key from this stream and `other` whose timestamps
    /// `windows` accepts, joined (inner join). The result's timestamp is the later one.
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &Stream<K, VO>,
        windows: JoinWindows,
        joiner: impl Fn(&K, &V, &VO) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR> {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |k, l, r| Some(joiner(k, l?, r?)));
        self.stream_join("join", other, windows, Unmatched::Neither, joiner)
    }

    /// [`Stream::join`], and each record of this stream that found no partner by the time
    /// its window closed, joined with `None`.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &Stream<K, VO>,
        windows: JoinWindows,
        joiner: impl Fn(&K, &V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR> {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |k, l, r| Some(joiner(k, l?, r)));
        self.stream_join("left-join", other, windows, Unmatched::Left, joiner)
    }

    /// [`Stream::join`], and each record of either stream that found no partner by the
    /// time its window closed, joined with `None` for the other side.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &Stream<K, VO>,
        windows: JoinWindows,
        joiner: impl Fn(&K, Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> Stream<K, VR> {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |k, l, r| Some(joiner(k, l, r)));
        self.stream_join("outer-join", other, windows, Unmatched::Both, joiner)
    }

    fn stream_join<VO: Data, VR: Data>(
        &self,
        kind: &str,
        other: &Stream<K, VO>,
        windows: JoinWindows,
        emit: Unmatched,
        joiner: Joiner<K, V, VO, VR>,
    ) -> Stream<K, VR> {
        let name = self.next_node_name(kind);
        let left = self
            .co_partitioned(&format!("{name}-left-repartition"))
            .map_values(Side::<V, VO>::Left);
        let right = other
            .co_partitioned(&format!("{name}-right-repartition"))
            .map_values(Side::<V, VO>::Right);
        let both = left.merge(&right);
        let stores = Stores {
            left: format!("{name}-left-store"),
            right: format!("{name}-right-store"),
            left_unmatched: format!("{name}-left-unmatched-store"),
            right_unmatched: format!("{name}-right-unmatched-store"),
        };
        let s = stores.clone();
        both.add_as::<StreamJoin<K, V, VO, VR>, K, VR>(&name, &[&both.node], move || StreamJoin {
            windows,
            emit,
            joiner: joiner.clone(),
            stores: s.clone(),
            expiry: Expiry::default(),
        });
        let (keys, retention) = (both.keys.clone(), windows.retention());
        let (lefts, rights) = (self.values.clone(), other.values.clone());
        let specs = [
            StoreSpec::window::<K, Vec<V>>(
                &stores.left,
                keys.clone(),
                ListSerde(lefts.clone()),
                retention,
            ),
            StoreSpec::window::<K, Vec<VO>>(
                &stores.right,
                keys.clone(),
                ListSerde(rights.clone()),
                retention,
            ),
            // Records waiting for a partner leave in time order as their windows close.
            StoreSpec::time_ordered_window::<K, Vec<V>>(
                &stores.left_unmatched,
                keys.clone(),
                ListSerde(lefts),
                retention,
            ),
            StoreSpec::time_ordered_window::<K, Vec<VO>>(
                &stores.right_unmatched,
                keys.clone(),
                ListSerde(rights),
                retention,
            ),
        ];
        for spec in specs {
            both.add_store(spec, &name);
        }
        both.derive(name, keys, VR::serde(), false)
    }
}
