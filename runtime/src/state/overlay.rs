//! A task's uncommitted state writes: puts and deletes by (column family, key), read before
//! RocksDB so the task sees its own writes, dropped on abort, applied after the commit.

use std::collections::BTreeMap;
use std::ops::Bound;

/// Uncommitted writes of one task's transaction. `None` marks a delete.
#[derive(Debug, Default, Clone)]
pub struct WriteOverlay {
    writes: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>,
}

impl WriteOverlay {
    /// Records a put.
    pub fn put(&mut self, family: &str, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert((family.to_string(), key), Some(value));
    }

    /// Records a delete.
    pub fn delete(&mut self, family: &str, key: Vec<u8>) {
        self.writes.insert((family.to_string(), key), None);
    }

    /// `Some(Some(v))` written, `Some(None)` deleted, `None` untouched here.
    pub fn get(&self, family: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes
            .get(&(family.to_string(), key.to_vec()))
            .map(|v| v.as_deref())
    }

    /// The writes of `family` with keys in the bounds, in key order.
    pub fn range<'a>(
        &'a self,
        family: &'a str,
        from: Bound<&'a [u8]>,
        to: Bound<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        self.writes
            .range((family.to_string(), Vec::new())..)
            .take_while(move |((f, _), _)| f == family)
            .filter(move |((_, k), _)| {
                let above = match from {
                    Bound::Included(b) => k.as_slice() >= b,
                    Bound::Excluded(b) => k.as_slice() > b,
                    Bound::Unbounded => true,
                };
                let below = match to {
                    Bound::Included(b) => k.as_slice() <= b,
                    Bound::Excluded(b) => k.as_slice() < b,
                    Bound::Unbounded => true,
                };
                above && below
            })
            .map(|((_, k), v)| (k.as_slice(), v.as_deref()))
    }

    /// How many keys were written.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Every write, for `StateDb::apply`.
    pub(crate) fn into_writes(self) -> BTreeMap<(String, Vec<u8>), Option<Vec<u8>>> {
        self.writes
    }
}
