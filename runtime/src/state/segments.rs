//! The segmented, key-first layout of window and session stores (as Kafka Streams' segmented
//! stores): an entry's RocksDB key is `[segment][serialized key][times]`, where `segment` is
//! the start of the time segment its time falls in (order-preserving bytes) and `times` a
//! fixed-size suffix (the window start; a session's end and start). One key's entries in a
//! time range are then a short scan per segment (a handful of segments span the retention),
//! not a scan over every key's entries in that range; and retention still drops the oldest
//! entries as one range at the front.

use std::ops::Bound;

use super::retention::{time_bytes, time_of};
use super::{StateDb, WriteOverlay};
use crate::error::Result;

/// The segment length for a retention: half of it, at least a minute (Kafka Streams'
/// default segment interval).
pub(super) fn segment_ms_for(retention_ms: i64) -> i64 {
    (retention_ms / 2).max(60_000)
}

/// How a store's entries are laid out in its column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segments {
    /// Length of a segment, ms.
    pub segment_ms: i64,
    /// Bytes of the time suffix after the serialized key.
    pub suffix: usize,
}

/// A raw entry: its serialized key, its time suffix and value.
pub(super) struct RawEntry {
    pub key: Vec<u8>,
    pub suffix: Vec<u8>,
    pub value: Vec<u8>,
}

impl Segments {
    /// The start of the segment holding `time`.
    pub fn segment_of(&self, time: i64) -> i64 {
        time.div_euclid(self.segment_ms)
            .saturating_mul(self.segment_ms)
    }

    /// The RocksDB key of an entry of `key` at `time` with suffix `suffix`.
    pub fn compose(&self, time: i64, key: &[u8], suffix: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + key.len() + suffix.len());
        out.extend_from_slice(&time_bytes(self.segment_of(time)));
        out.extend_from_slice(key);
        out.extend_from_slice(suffix);
        out
    }

    /// Splits a RocksDB key into (serialized key, suffix).
    fn split<'a>(&self, raw: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        let key_end = raw.len().checked_sub(self.suffix)?;
        Some((raw.get(8..key_end)?, raw.get(key_end..)?))
    }

    /// The segment starts from the one holding `from` to the one holding `to`, stepping by
    /// segment index (so the clamped first segment near `i64::MIN` does not shift the rest).
    fn between(&self, from: i64, to: i64) -> Vec<i64> {
        let (first, last) = (
            from.div_euclid(self.segment_ms),
            to.div_euclid(self.segment_ms),
        );
        (first..=last)
            .map(|index| index.saturating_mul(self.segment_ms))
            .collect()
    }

    /// Entries of `key` in segments `[from, to]` whose suffix is in `[low, high]`, oldest
    /// segment first, then by suffix.
    pub fn scan_key(
        &self,
        db: &StateDb,
        family: &str,
        overlay: &WriteOverlay,
        key: &[u8],
        (from, to): (i64, i64),
        (low, high): (&[u8], &[u8]),
    ) -> Result<Vec<RawEntry>> {
        let mut out = Vec::new();
        for segment in self.between(from, to) {
            let lower = self.compose(segment, key, low);
            let upper = self.compose(segment, key, high);
            let found = db.merged_scan(
                family,
                overlay,
                Bound::Included(&lower[..]),
                Bound::Included(&upper[..]),
            )?;
            out.extend(found.into_iter().filter_map(|(raw, value)| {
                let (k, suffix) = self.split(&raw)?;
                (k == key).then(|| RawEntry {
                    key: k.to_vec(),
                    suffix: suffix.to_vec(),
                    value,
                })
            }));
        }
        Ok(out)
    }

    /// Every entry in segments `[from, to]` (any key), unordered within a segment.
    pub fn scan_all(
        &self,
        db: &StateDb,
        family: &str,
        overlay: &WriteOverlay,
        (from, to): (i64, i64),
    ) -> Result<Vec<RawEntry>> {
        let low = time_bytes(self.segment_of(from));
        let upper = self.segment_of(to).checked_add(self.segment_ms);
        let high = upper.map(time_bytes);
        let upper = match &high {
            Some(h) => Bound::Excluded(&h[..]),
            None => Bound::Unbounded,
        };
        let found = db.merged_scan(family, overlay, Bound::Included(&low[..]), upper)?;
        Ok(found
            .into_iter()
            .filter_map(|(raw, value)| {
                let (k, suffix) = self.split(&raw)?;
                Some(RawEntry {
                    key: k.to_vec(),
                    suffix: suffix.to_vec(),
                    value,
                })
            })
            .collect())
    }

    /// The newest time committed in `family`: the largest time (read from each suffix by
    /// `time_in`) in its newest segment.
    pub fn newest(
        &self,
        db: &StateDb,
        family: &str,
        time_in: impl Fn(&[u8]) -> Option<i64>,
    ) -> Result<Option<i64>> {
        let Some(segment) = db.last_key_raw(family)?.and_then(|k| time_of(&k)) else {
            return Ok(None);
        };
        let entries = self.scan_all(db, family, &WriteOverlay::default(), (segment, segment))?;
        Ok(entries.iter().filter_map(|e| time_in(&e.suffix)).max())
    }

    /// Deletes (in the overlay) every entry whose time (read by `time_in`) is before
    /// `cutoff`: whole segments below the cutoff's, and the older entries of that one. (Reads
    /// skip them anyway, but a reopened store may recover an older newest time, and then
    /// they must not reappear.)
    pub fn expire(
        &self,
        db: &StateDb,
        family: &str,
        overlay: &mut WriteOverlay,
        cutoff: i64,
        time_in: impl Fn(&[u8]) -> Option<i64>,
    ) -> Result<usize> {
        if cutoff == i64::MIN {
            return Ok(0);
        }
        let segment = self.segment_of(cutoff);
        let boundary = time_bytes(segment);
        let mut doomed: Vec<Vec<u8>> = db
            .merged_scan(
                family,
                overlay,
                Bound::Unbounded,
                Bound::Excluded(&boundary[..]),
            )?
            .into_keys()
            .collect();
        for entry in self.scan_all(db, family, overlay, (cutoff, cutoff))? {
            if time_in(&entry.suffix).is_some_and(|t| t < cutoff) {
                doomed.push(self.compose(segment, &entry.key, &entry.suffix));
            }
        }
        let count = doomed.len();
        for key in doomed {
            overlay.delete(family, key);
        }
        Ok(count)
    }
}
