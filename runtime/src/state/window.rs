//! [`WindowStore`]: values per (key, window start) with retention, over one column family,
//! in one of two layouts ([`WindowLayout`]). Key first (the default, `segments.rs`): one
//! key's windows in a time range are a short scan per time segment, what aggregations and
//! join buffers ask for. Time ordered: window start first (order-preserving bytes), then the
//! key, so a time range over all keys is one contiguous scan, what buffers emptied in time
//! order (suppression, a join's records waiting for a partner) ask for. Either way retention
//! drops the oldest entries as a range at the front.

use std::ops::Bound;

use super::retention::{Retention, time_bytes, time_of};
use super::segments::{Segments, segment_ms_for};
use super::{StateDb, StoreIter, WriteOverlay};
use crate::error::Result;
use crate::serde::Serde;

/// How a window store lays out its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowLayout {
    /// Segmented, key first: fast fetches of one key's windows.
    KeyFirst,
    /// Time first: fast scans of a time range over all keys, in time order.
    TimeOrdered,
}

/// A window as stored: (serialized key, window start, serialized value).
type RawWindow = (Vec<u8>, i64, Vec<u8>);

/// A windowed key-value store of one task. Writes go to the overlay; reads see it first.
pub struct WindowStore<K, V> {
    db: StateDb,
    family: String,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
    /// `None` for the time-ordered layout.
    segments: Option<Segments>,
    /// Windows that start before the newest start written minus the retention are expired
    /// (writes to them are dropped, `expire` deletes them).
    retention: Retention,
}

impl<K, V> std::fmt::Debug for WindowStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStore")
            .field("family", &self.family)
            .field("segments", &self.segments)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl<K, V> WindowStore<K, V> {
    pub(super) fn new(
        db: StateDb,
        family: String,
        keys: Box<dyn Serde<K>>,
        values: Box<dyn Serde<V>>,
        retention_ms: i64,
        layout: WindowLayout,
    ) -> Result<Self> {
        let (segments, retention) = match layout {
            WindowLayout::TimeOrdered => (None, Retention::open(&db, &family, retention_ms)?),
            WindowLayout::KeyFirst => {
                let segments = Segments {
                    segment_ms: segment_ms_for(retention_ms),
                    suffix: 8,
                };
                let newest = segments.newest(&db, &family, time_of)?;
                (
                    Some(segments),
                    Retention::new(retention_ms, newest.unwrap_or(i64::MIN)),
                )
            }
        };
        Ok(Self {
            db,
            family,
            keys,
            values,
            segments,
            retention,
        })
    }

    fn composite(&self, key: &K, start: i64) -> Result<Vec<u8>> {
        let key = self.keys.serialize(key)?;
        Ok(match &self.segments {
            Some(segments) => segments.compose(start, &key, &time_bytes(start)),
            None => {
                let mut out = time_bytes(start).to_vec();
                out.extend_from_slice(&key);
                out
            }
        })
    }

    /// Writes the value of `key`'s window starting at `start`. A write to a window already
    /// past retention is dropped (returns false), as Kafka's window stores do.
    pub fn put(&self, overlay: &mut WriteOverlay, key: &K, start: i64, value: &V) -> Result<bool> {
        self.retention.observe(start);
        if start < self.retention.cutoff() {
            return Ok(false);
        }
        overlay.put(
            &self.family,
            self.composite(key, start)?,
            self.values.serialize(value)?,
        );
        Ok(true)
    }

    /// Deletes `key`'s window starting at `start`.
    pub fn delete(&self, overlay: &mut WriteOverlay, key: &K, start: i64) -> Result<()> {
        overlay.delete(&self.family, self.composite(key, start)?);
        Ok(())
    }

    /// Every live entry with `from <= start <= to`, as (serialized key, start, raw value),
    /// streamed: time ordered, by start then key; key first, in the byte order of
    /// (segment, serialized key, start), as Kafka Streams' segmented stores.
    fn scan<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        from: i64,
        to: i64,
    ) -> Result<StoreIter<'a, RawWindow>> {
        let from = from.max(self.retention.cutoff());
        if from > to {
            return Ok(Box::new(std::iter::empty()));
        }
        if let Some(segments) = self.segments {
            let found = segments.scan_all(&self.db, &self.family, overlay, (from, to))?;
            return Ok(Box::new(found.filter_map(move |entry| {
                match entry {
                    Err(e) => Some(Err(e)),
                    Ok(e) => time_of(&e.suffix)
                        .filter(|t| (from..=to).contains(t))
                        .map(|t| Ok((e.key, t, e.value))),
                }
            })));
        }
        let (low, high) = (time_bytes(from), time_bytes(to.saturating_add(1)));
        let upper = if to == i64::MAX {
            Bound::Unbounded
        } else {
            Bound::Excluded(&high[..])
        };
        let found = self
            .db
            .merged_scan(&self.family, overlay, Bound::Included(&low[..]), upper)?;
        Ok(Box::new(found.filter_map(|item| match item {
            Err(e) => Some(Err(e)),
            Ok((k, v)) => time_of(&k).map(|t| Ok((k[8..].to_vec(), t, v))),
        })))
    }

    /// `key`'s windows starting in `[from, to]`, oldest first, streamed.
    pub fn fetch<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<StoreIter<'a, (i64, V)>> {
        let key = self.keys.serialize(key)?;
        let Some(segments) = self.segments else {
            let found = self.scan(overlay, from, to)?;
            return Ok(Box::new(found.filter_map(move |item| match item {
                Err(e) => Some(Err(e)),
                Ok((k, t, v)) => (k == key).then(|| Ok((t, self.values.deserialize(&v)?))),
            })));
        };
        // No window starts after the newest start written: that bounds the segments to scan.
        let from = from.max(self.retention.cutoff());
        let to = to.min(self.retention.observed());
        if from > to {
            return Ok(Box::new(std::iter::empty()));
        }
        let (low, high) = (time_bytes(from).to_vec(), time_bytes(to).to_vec());
        let found = segments.scan_key(
            &self.db,
            &self.family,
            overlay,
            key,
            (from, to),
            (low, high),
        );
        Ok(Box::new(found.filter_map(move |item| match item {
            Err(e) => Some(Err(e)),
            Ok(e) => time_of(&e.suffix).map(|t| Ok((t, self.values.deserialize(&e.value)?))),
        })))
    }

    /// Windows starting in `[from, to]` of keys whose serialized form is in
    /// `[key_from, key_to]`, streamed in [`WindowStore::fetch_all`]'s order.
    pub fn fetch_range<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        key_from: &K,
        key_to: &K,
        from: i64,
        to: i64,
    ) -> Result<StoreIter<'a, (K, i64, V)>> {
        let (low, high) = (self.keys.serialize(key_from)?, self.keys.serialize(key_to)?);
        let found = self.scan(overlay, from, to)?;
        Ok(Box::new(found.filter_map(move |item| match item {
            Err(e) => Some(Err(e)),
            Ok((k, t, v)) => (k >= low && k <= high).then(|| self.decode(k, t, v)),
        })))
    }

    /// Every window starting in `[from, to]`, streamed. Time-ordered stores give them by
    /// start, then key. Key-first stores (the default) in the byte order of their RocksDB
    /// keys, as Kafka Streams' segmented stores do: by time segment, then the serialized
    /// key followed by the start. One key's windows in a segment come together, unless its
    /// bytes are a prefix of another key's (`"a"` and `"ab"` as strings), whose windows may
    /// then sort between them.
    pub fn fetch_all<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        from: i64,
        to: i64,
    ) -> Result<StoreIter<'a, (K, i64, V)>> {
        let found = self.scan(overlay, from, to)?;
        Ok(Box::new(found.map(move |item| {
            let (k, t, v) = item?;
            self.decode(k, t, v)
        })))
    }

    fn decode(&self, key: Vec<u8>, start: i64, value: Vec<u8>) -> Result<(K, i64, V)> {
        Ok((
            self.keys.deserialize(&key)?,
            start,
            self.values.deserialize(&value)?,
        ))
    }

    /// Deletes (in the overlay) every window older than the retention; returns how many.
    pub fn expire(&self, overlay: &mut WriteOverlay) -> Result<usize> {
        match &self.segments {
            Some(segments) => segments.expire(
                &self.db,
                &self.family,
                overlay,
                self.retention.cutoff(),
                time_of,
            ),
            None => self.retention.expire(&self.db, &self.family, overlay),
        }
    }
}
