//! [`KeyValueStore`]: a typed key-value store of one task over its column family, reading
//! through the task's overlay. Ranges and prefixes are in the order of the serialized keys
//! (big-endian integers and strings sort naturally; bincode's varints do not), and stream:
//! RocksDB is read as the iterator goes.

use std::ops::Bound;

use super::{StateDb, StoreIter, WriteOverlay};
use crate::error::Result;
use crate::serde::Serde;

/// A typed key-value store. Writes go to the overlay passed in; reads see the overlay first.
pub struct KeyValueStore<K, V> {
    db: StateDb,
    family: String,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
}

impl<K, V> std::fmt::Debug for KeyValueStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueStore")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl<K, V> KeyValueStore<K, V> {
    pub(super) fn new(
        db: StateDb,
        family: String,
        keys: Box<dyn Serde<K>>,
        values: Box<dyn Serde<V>>,
    ) -> Self {
        Self {
            db,
            family,
            keys,
            values,
        }
    }

    /// The value of `key`: the overlay's if it wrote it, else the committed one.
    pub fn get(&self, overlay: &WriteOverlay, key: &K) -> Result<Option<V>> {
        let key = self.keys.serialize(key)?;
        let raw = match overlay.get(&self.family, &key) {
            Some(written) => written.map(<[u8]>::to_vec),
            None => self.db.get_raw(&self.family, &key)?,
        };
        raw.map(|v| self.values.deserialize(&v)).transpose()
    }

    /// Writes `key = value` into the overlay.
    pub fn put(&self, overlay: &mut WriteOverlay, key: &K, value: &V) -> Result<()> {
        overlay.put(
            &self.family,
            self.keys.serialize(key)?,
            self.values.serialize(value)?,
        );
        Ok(())
    }

    /// Deletes `key` in the overlay.
    pub fn delete(&self, overlay: &mut WriteOverlay, key: &K) -> Result<()> {
        overlay.delete(&self.family, self.keys.serialize(key)?);
        Ok(())
    }

    fn scan<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<StoreIter<'a, (K, V)>> {
        let merged = self.db.merged_scan(&self.family, overlay, from, to)?;
        Ok(Box::new(merged.map(move |item| {
            let (k, v) = item?;
            Ok((self.keys.deserialize(&k)?, self.values.deserialize(&v)?))
        })))
    }

    /// Entries with `from <= key <= to` (serialized order), overlay included, streamed.
    pub fn range<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        from: &K,
        to: &K,
    ) -> Result<StoreIter<'a, (K, V)>> {
        let (from, to) = (self.keys.serialize(from)?, self.keys.serialize(to)?);
        self.scan(overlay, Bound::Included(&from), Bound::Included(&to))
    }

    /// Entries whose serialized key starts with `prefix`, streamed.
    pub fn prefix_scan<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        prefix: &[u8],
    ) -> Result<StoreIter<'a, (K, V)>> {
        let end = prefix_end(prefix);
        let to = match &end {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        self.scan(overlay, Bound::Included(prefix), to)
    }

    /// Every entry, overlay included, in serialized key order, streamed from RocksDB (memory
    /// stays flat however many entries there are).
    pub fn all<'a>(&'a self, overlay: &'a WriteOverlay) -> Result<StoreIter<'a, (K, V)>> {
        self.scan(overlay, Bound::Unbounded, Bound::Unbounded)
    }
}

/// The smallest byte string above every string starting with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
