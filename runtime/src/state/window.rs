//! [`WindowStore`]: values per (key, window start) with retention, over one column family.
//! Entries are laid out time first (`window start` as order-preserving big-endian bytes,
//! then the serialized key), so that a time range is one contiguous scan and retention is a
//! scan of the oldest entries; a fetch for one key scans its time range and keeps that key.

use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};

use super::{StateDb, WriteOverlay};
use crate::error::Result;
use crate::serde::Serde;

/// A window as stored: (serialized key, window start, serialized value).
type RawWindow = (Vec<u8>, i64, Vec<u8>);

/// Order-preserving bytes of a timestamp: the sign bit flipped, big-endian.
pub(super) fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn time_of(bytes: &[u8]) -> Option<i64> {
    let array = <[u8; 8]>::try_from(bytes.get(..8)?).ok()?;
    Some((u64::from_be_bytes(array) ^ (1 << 63)) as i64)
}

/// A windowed key-value store of one task. Writes go to the overlay; reads see it first.
pub struct WindowStore<K, V> {
    db: StateDb,
    family: String,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
    retention_ms: i64,
    /// The largest window start written: windows older than this minus the retention are
    /// expired (writes to them are dropped, `expire` deletes them).
    observed: AtomicI64,
}

impl<K, V> std::fmt::Debug for WindowStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStore")
            .field("family", &self.family)
            .field("retention_ms", &self.retention_ms)
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
        // The newest window on disk sets the observed time, so retention holds across reopens.
        let observed = db
            .last_key_raw(&family)?
            .and_then(|k| time_of(&k))
            .unwrap_or(i64::MIN);
        Ok(Self {
            db,
            family,
            keys,
            values,
            retention_ms,
            observed: AtomicI64::new(observed),
        })
    }

    fn cutoff(&self) -> i64 {
        self.observed
            .load(Ordering::Relaxed)
            .saturating_sub(self.retention_ms)
    }

    fn composite(&self, key: &K, start: i64) -> Result<Vec<u8>> {
        let mut out = time_bytes(start).to_vec();
        out.extend_from_slice(&self.keys.serialize(key)?);
        Ok(out)
    }

    /// Writes the value of `key`'s window starting at `start`. A write to a window already
    /// past retention is dropped (returns false), as Kafka's window stores do.
    pub fn put(&self, overlay: &mut WriteOverlay, key: &K, start: i64, value: &V) -> Result<bool> {
        self.observed.fetch_max(start, Ordering::Relaxed);
        if start < self.cutoff() {
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
        let from = from.max(self.cutoff());
        if from > to {
            return Ok(Vec::new());
        }
        let (low, high) = (time_bytes(from), time_bytes(to.saturating_add(1)));
        let bounds = (
            Bound::Included(&low[..]),
            if to == i64::MAX {
                Bound::Unbounded
            } else {
                Bound::Excluded(&high[..])
            },
        );
        let mut merged = self.db.scan_raw(&self.family, bounds.0, bounds.1)?;
        for (key, value) in overlay.range(&self.family, bounds.0, bounds.1) {
            match value {
                Some(v) => merged.insert(key.to_vec(), v.to_vec()),
                None => merged.remove(key),
            };
        }
        Ok(merged
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
        let cutoff = self.cutoff();
        if cutoff == i64::MIN {
            return Ok(0);
        }
        let high = time_bytes(cutoff);
        let mut doomed: std::collections::BTreeSet<Vec<u8>> = self
            .db
            .scan_raw(&self.family, Bound::Unbounded, Bound::Excluded(&high[..]))?
            .into_keys()
            .collect();
        doomed.extend(
            overlay
                .range(&self.family, Bound::Unbounded, Bound::Excluded(&high[..]))
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.to_vec()),
        );
        let count = doomed.len();
        for key in doomed {
            overlay.delete(&self.family, key);
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bytes_sort_like_timestamps() {
        let times = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in times.windows(2) {
            assert!(time_bytes(w[0]) < time_bytes(w[1]), "{} vs {}", w[0], w[1]);
            assert_eq!(time_of(&time_bytes(w[0])), Some(w[0]));
        }
    }
}
