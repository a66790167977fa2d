//! A task's uncommitted state writes: puts and deletes by column family and key, read before
//! RocksDB so the task sees its own writes, dropped on abort, applied after the commit.
//! Lookups allocate nothing (one map per column family, keyed by the raw key bytes).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

type Family = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Uncommitted writes of one task's transaction. `None` marks a delete.
#[derive(Debug, Default, Clone)]
pub struct WriteOverlay {
    families: HashMap<String, Family>,
    len: usize,
}

impl WriteOverlay {
    fn family(&mut self, family: &str) -> &mut Family {
        if !self.families.contains_key(family) {
            self.families.insert(family.to_string(), Family::new());
        }
        self.families
            .get_mut(family)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    fn write(&mut self, family: &str, key: Vec<u8>, value: Option<Vec<u8>>) {
        if self.family(family).insert(key, value).is_none() {
            self.len += 1;
        }
    }

    /// Records a put.
    pub fn put(&mut self, family: &str, key: Vec<u8>, value: Vec<u8>) {
        self.write(family, key, Some(value));
    }

    /// Records a delete.
    pub fn delete(&mut self, family: &str, key: Vec<u8>) {
        self.write(family, key, None);
    }

    /// `Some(Some(v))` written, `Some(None)` deleted, `None` untouched here.
    pub fn get(&self, family: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        self.families.get(family)?.get(key).map(|v| v.as_deref())
    }

    /// The writes of `family` with keys in the bounds, in key order (the bounds are not
    /// borrowed past the call). Bounds that hold no key (`from` above `to`) give nothing.
    pub fn range<'a>(
        &'a self,
        family: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + use<'a> {
        self.families
            .get(family)
            .filter(|_| !holds_nothing(from, to))
            .map(|writes| writes.range::<[u8], _>((from, to)))
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// How many keys were written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Moves every write of `other` into this overlay (later writes win).
    pub fn merge(&mut self, other: WriteOverlay) {
        for (family, writes) in other.families {
            for (key, value) in writes {
                self.write(&family, key, value);
            }
        }
    }

    /// Every write, by column family, for `StateDb::apply`.
    pub(crate) fn into_families(self) -> HashMap<String, Family> {
        self.families
    }
}

/// Whether no key lies between the bounds (`BTreeMap::range` panics on some of these: a
/// start above the end, or equal excluded bounds).
fn holds_nothing(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_that_hold_nothing_give_nothing() {
        let mut overlay = WriteOverlay::default();
        for key in [b"a", b"c", b"e"] {
            overlay.put("f", key.to_vec(), b"v".to_vec());
        }
        let keys = |from, to| -> Vec<Vec<u8>> {
            overlay
                .range("f", from, to)
                .map(|(k, _)| k.to_vec())
                .collect()
        };
        assert!(keys(Bound::Included(b"e"), Bound::Included(b"a")).is_empty());
        assert!(keys(Bound::Excluded(b"c"), Bound::Excluded(b"c")).is_empty());
        assert!(keys(Bound::Included(b"c"), Bound::Excluded(b"c")).is_empty());
        assert_eq!(
            keys(Bound::Included(b"c"), Bound::Included(b"c")),
            vec![b"c".to_vec()]
        );
        assert_eq!(
            keys(Bound::Excluded(b"a"), Bound::Unbounded),
            vec![b"c".to_vec(), b"e".to_vec()]
        );
    }
}
