//! [`WindowStore`]: values per (key, window start) with retention, over one column family.
//! Entries are laid out time first (`window start` as order-preserving big-endian bytes,
//! then the serialized key), so that a time range is one contiguous scan and retention is a
//! scan of the oldest entries; a fetch for one key scans its time range and keeps that key.

use std::ops::Bound;

use super::retention::{Retention, time_bytes, time_of};
use super::{StateDb, WriteOverlay};
use crate::error::Result;
use crate::serde::Serde;

/// A window as stored: (serialized key, window start, serialized value).
type RawWindow = (Vec<u8>, i64, Vec<u8>);

/// A windowed key-value store of one task. Writes go to the overlay; reads see it first.
pub struct WindowStore<K, V> {
    db: StateDb,
    family: String,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
    /// Windows that start before the newest start written minus the retention are expired
    /// (writes to them are dropped, `expire` deletes them).
    retention: Retention,
}

impl<K, V> std::fmt::Debug for WindowStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStore")
            .field("family", &self.family)
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
    ) -> Result<Self> {
        let retention = Retention::open(&db, &family, retention_ms)?;
        Ok(Self {
            db,
            family,
            keys,
            values,
            retention,
        })
    }

    fn composite(&self, key: &K, start: i64) -> Result<Vec<u8>> {
        let mut out = time_bytes(start).to_vec();
        out.extend_from_slice(&self.keys.serialize(key)?);
        Ok(out)
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

    /// Every live entry with `from <= start <= to`, as (serialized key, start, raw value).
    fn scan(&self, overlay: &WriteOverlay, from: i64, to: i64) -> Result<Vec<RawWindow>> {
        let from = from.max(self.retention.cutoff());
        if from > to {
            return Ok(Vec::new());
        }
        let (low, high) = (time_bytes(from), time_bytes(to.saturating_add(1)));
        let upper = if to == i64::MAX {
            Bound::Unbounded
        } else {
            Bound::Excluded(&high[..])
        };
        Ok(self
            .db
            .merged_scan(&self.family, overlay, Bound::Included(&low[..]), upper)?
            .into_iter()
            .filter_map(|(k, v)| time_of(&k).map(|t| (k[8..].to_vec(), t, v)))
            .collect())
    }

    /// `key`'s windows starting in `[from, to]`, oldest first.
    pub fn fetch(
        &self,
        overlay: &WriteOverlay,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, V)>> {
        let key = self.keys.serialize(key)?;
        self.scan(overlay, from, to)?
            .into_iter()
            .filter(|(k, _, _)| *k == key)
            .map(|(_, t, v)| Ok((t, self.values.deserialize(&v)?)))
            .collect()
    }

    /// Windows starting in `[from, to]` of keys whose serialized form is in
    /// `[key_from, key_to]`, by start then key.
    pub fn fetch_range(
        &self,
        overlay: &WriteOverlay,
        key_from: &K,
        key_to: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(K, i64, V)>> {
        let (low, high) = (self.keys.serialize(key_from)?, self.keys.serialize(key_to)?);
        self.scan(overlay, from, to)?
            .into_iter()
            .filter(|(k, _, _)| *k >= low && *k <= high)
            .map(|(k, t, v)| Ok((self.keys.deserialize(&k)?, t, self.values.deserialize(&v)?)))
            .collect()
    }

    /// Every window starting in `[from, to]`, by start then key.
    pub fn fetch_all(
        &self,
        overlay: &WriteOverlay,
        from: i64,
        to: i64,
    ) -> Result<Vec<(K, i64, V)>> {
        self.scan(overlay, from, to)?
            .into_iter()
            .map(|(k, t, v)| Ok((self.keys.deserialize(&k)?, t, self.values.deserialize(&v)?)))
            .collect()
    }

    /// Deletes (in the overlay) every window older than the retention; returns how many.
    pub fn expire(&self, overlay: &mut WriteOverlay) -> Result<usize> {
        self.retention.expire(&self.db, &self.family, overlay)
    }
}
