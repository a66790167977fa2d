//! Store scans that stream: a RocksDB iterator over one column family's committed entries
//! between two bounds, merged in key order with the task's uncommitted writes
//! ([`WriteOverlay`]). Nothing is collected: a scan of ten million keys holds one entry at a
//! time (and RocksDB's blocks), so memory stays flat however large the store.
//!
//! The bounds go to RocksDB as `ReadOptions` bounds (lower inclusive, upper exclusive), so
//! the iterator stops at the upper bound without reading past it.

use std::iter::Peekable;
use std::ops::Bound;

use rocksdb::{DBIteratorWithThreadMode, IteratorMode, ReadOptions};

use super::{Db, StateDb, WriteOverlay};
use crate::error::{Error, Result};

/// A scan's items, typed: what every store scan (`all`, `range`, `prefix_scan`, window and
/// session fetches) returns. It reads RocksDB as it goes; an item is an error when RocksDB
/// fails mid-scan or an entry does not deserialize. Borrowing the store (and the task's
/// overlay), it ends before the next write to either.
pub type StoreIter<'a, T> = Box<dyn Iterator<Item = Result<T>> + 'a>;

/// A scan that may have failed to start, as a stream whose one item is then the error.
pub(crate) fn streamed<'a, T: 'a>(
    scan: Result<impl Iterator<Item = Result<T>> + 'a>,
) -> StoreIter<'a, T> {
    match scan {
        Ok(scan) => Box::new(scan),
        Err(e) => Box::new(std::iter::once(Err(e))),
    }
}

/// `bound` as an inclusive lower bound: `Excluded(k)` is `Included(k ++ [0])`, the smallest
/// key after `k`.
fn lower_inclusive(bound: Bound<&[u8]>) -> Option<Vec<u8>> {
    match bound {
        Bound::Included(k) => Some(k.to_vec()),
        Bound::Excluded(k) => Some([k, &[0]].concat()),
        Bound::Unbounded => None,
    }
}

/// `bound` as an exclusive upper bound: `Included(k)` is `Excluded(k ++ [0])`.
fn upper_exclusive(bound: Bound<&[u8]>) -> Option<Vec<u8>> {
    match bound {
        Bound::Included(k) => Some([k, &[0]].concat()),
        Bound::Excluded(k) => Some(k.to_vec()),
        Bound::Unbounded => None,
    }
}

/// The committed entries of one column family in key order, read from RocksDB as the
/// iteration goes.
pub(crate) struct RawScan<'a> {
    inner: DBIteratorWithThreadMode<'a, Db>,
    family: String,
}

impl Iterator for RawScan<'_> {
    type Item = Result<(Box<[u8]>, Box<[u8]>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        Some(item.map_err(|source| Error::Rocks {
            action: "scanning",
            store: self.family.clone(),
            source,
        }))
    }
}

impl StateDb {
    /// The committed entries of `family` with keys in `(from, to)`, streamed from RocksDB.
    pub(crate) fn scan_raw(
        &self,
        family: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<RawScan<'_>> {
        let cf = self
            .db
            .cf_handle(family)
            .ok_or_else(|| Error::Store(family.to_string(), "no such column family"))?;
        let mut options = ReadOptions::default();
        let lower = lower_inclusive(from);
        if let Some(upper) = upper_exclusive(to) {
            options.set_iterate_upper_bound(upper);
        }
        let mode = match &lower {
            Some(k) => IteratorMode::From(k, rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        let inner = self.db.iterator_cf_opt(&cf, options, mode);
        Ok(RawScan {
            inner,
            family: family.to_string(),
        })
    }

    /// The entries of `family` with keys in `(from, to)` as the task sees them: committed
    /// ones overlaid with the task's uncommitted writes (an overlay delete hides the
    /// committed entry), in key order, streamed.
    pub(crate) fn merged_scan<'a>(
        &'a self,
        family: &str,
        overlay: &'a WriteOverlay,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<MergedScan<'a>> {
        let committed = self.scan_raw(family, from, to)?.peekable();
        let written: OverlayWrites<'a> = Box::new(overlay.range(family, from, to));
        Ok(MergedScan {
            committed,
            written: written.peekable(),
            failed: false,
        })
    }
}

/// The overlay's writes in a key range: `None` is a delete.
type OverlayWrites<'a> = Box<dyn Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a>;

/// RocksDB's committed entries merged with the overlay's writes, key by key: the overlay's
/// write wins over a committed entry with the same key, and its deletes are left out.
pub(crate) struct MergedScan<'a> {
    committed: Peekable<RawScan<'a>>,
    written: Peekable<OverlayWrites<'a>>,
    /// RocksDB failed mid-scan: the error was the last item (what follows in the overlay
    /// would pass for the whole rest of the store).
    failed: bool,
}

impl Iterator for MergedScan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        if self.failed {
            return None;
        }
        loop {
            let order = match (self.committed.peek(), self.written.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(Ok((committed, _))), Some((written, _))) => (**committed).cmp(*written),
            };
            if order == Ordering::Less {
                let item = self.committed.next()?;
                self.failed = item.is_err();
                return Some(item.map(|(k, v)| (k.into_vec(), v.into_vec())));
            }
            if order == Ordering::Equal {
                self.committed.next();
            }
            if let Some((key, Some(value))) = self.written.next() {
                return Some(Ok((key.to_vec(), value.to_vec())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_and_inclusive_bounds_convert() {
        assert_eq!(
            lower_inclusive(Bound::Excluded(b"ab")),
            Some(b"ab\0".to_vec())
        );
        assert_eq!(
            upper_exclusive(Bound::Included(b"ab")),
            Some(b"ab\0".to_vec())
        );
        assert_eq!(lower_inclusive(Bound::Unbounded), None);
        assert_eq!(upper_exclusive(Bound::Excluded(b"z")), Some(b"z".to_vec()));
    }

    #[test]
    fn merge_prefers_the_overlay_and_drops_its_deletes() -> Result<()> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = StateDb::open(dir.path())?;
        db.ensure_family("f")?;
        let mut committed = db.overlay();
        for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("e", "5")] {
            committed.put("f", k.into(), v.into());
        }
        db.apply(committed, &[])?;
        let mut overlay = db.overlay();
        overlay.put("f", b"b".to_vec(), b"two".to_vec());
        overlay.delete("f", b"c".to_vec());
        overlay.put("f", b"d".to_vec(), b"4".to_vec());
        overlay.delete("f", b"x".to_vec());
        let all: Vec<_> = db
            .merged_scan("f", &overlay, Bound::Unbounded, Bound::Unbounded)?
            .collect::<Result<_>>()?;
        let expect: Vec<(Vec<u8>, Vec<u8>)> = [("a", "1"), ("b", "two"), ("d", "4"), ("e", "5")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(all, expect);
        let some: Vec<_> = db
            .merged_scan("f", &overlay, Bound::Excluded(b"a"), Bound::Included(b"d"))?
            .map(|item| item.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        assert_eq!(some, vec![b"b".to_vec(), b"d".to_vec()]);
        // Bounds the wrong way round hold nothing, with writes in the overlay or not.
        let none = db
            .merged_scan("f", &overlay, Bound::Included(b"e"), Bound::Included(b"a"))?
            .count();
        assert_eq!(none, 0);
        Ok(())
    }
}
