//! The segmented, key-first layout of window and session stores (as Kafka Streams' segmented
//! stores): an entry's RocksDB key is `[segment][serialized key][times]`, where `segment` is
//! the start of the time segment its time falls in (order-preserving bytes) and `times` a
//! fixed-size suffix (the window start; a session's end and start). One key's entries in a
//! time range are then a short scan per segment (a handful of segments span the retention),
//! not a scan over every key's entries in that range; and retention still drops the oldest
//! entries as one range at the front.

use std::ops::Bound;

use super::retention::{time_bytes, time_of};
use super::scan::streamed;
use super::{StateDb, StoreIter, WriteOverlay};
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

    /// Entries of `key` in segments `[from, to]` whose suffix is in `[low, high]`, oldest
    /// segment first, then by suffix; streamed, one segment's RocksDB iterator at a time.
    #[allow(clippy::too_many_arguments)]
    pub fn scan_key<'a>(
        self,
        db: &'a StateDb,
        family: &'a str,
        overlay: &'a WriteOverlay,
        key: Vec<u8>,
        (from, to): (i64, i64),
        (low, high): (Vec<u8>, Vec<u8>),
    ) -> StoreIter<'a, RawEntry> {
        // Stepping by segment index, so the clamped first segment near `i64::MIN` does not
        // shift the rest.
        let (first, last) = (
            from.div_euclid(self.segment_ms),
            to.div_euclid(self.segment_ms),
        );
        Box::new((first..=last).flat_map(move |index| {
            let segment = index.saturating_mul(self.segment_ms);
            let lower = self.compose(segment, &key, &low);
            let upper = self.compose(segment, &key, &high);
            let scan = db.merged_scan(
                family,
                overlay,
                Bound::Included(&lower[..]),
                Bound::Included(&upper[..]),
            );
            let key = key.clone();
            streamed(scan).filter_map(move |item| match item {
                Err(e) => Some(Err(e)),
                Ok((raw, value)) => {
                    let (k, suffix) = self.split(&raw)?;
                    (k == key.as_slice()).then(|| {
                        Ok(RawEntry {
                            key: k.to_vec(),
                            suffix: suffix.to_vec(),
                            value,
                        })
                    })
                }
            })
        }))
    }

    /// Every entry in segments `[from, to]` (any key): by segment, then serialized key,
    /// then suffix (as Kafka Streams' segmented stores iterate); streamed.
    pub fn scan_all<'a>(
        self,
        db: &'a StateDb,
        family: &str,
        overlay: &'a WriteOverlay,
        (from, to): (i64, i64),
    ) -> Result<StoreIter<'a, RawEntry>> {
        let low = time_bytes(self.segment_of(from));
        let upper = self.segment_of(to).checked_add(self.segment_ms);
        let high = upper.map(time_bytes);
        let upper = match &high {
            Some(h) => Bound::Excluded(&h[..]),
            None => Bound::Unbounded,
        };
        let found = db.merged_scan(family, overlay, Bound::Included(&low[..]), upper)?;
        Ok(Box::new(found.filter_map(move |item| match item {
            Err(e) => Some(Err(e)),
            Ok((raw, value)) => {
                let (k, suffix) = self.split(&raw)?;
                Some(Ok(RawEntry {
                    key: k.to_vec(),
                    suffix: suffix.to_vec(),
                    value,
                }))
            }
        })))
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
        let nothing_written = WriteOverlay::default();
        let mut newest = None;
        for entry in self.scan_all(db, family, &nothing_written, (segment, segment))? {
            newest = newest.max(time_in(&entry?.suffix));
        }
        Ok(newest)
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
        // Keys only, collected before the overlay is written to: as many as expire now.
        let mut doomed: Vec<Vec<u8>> = db
            .merged_scan(
                family,
                overlay,
                Bound::Unbounded,
                Bound::Excluded(&boundary[..]),
            )?
            .map(|item| item.map(|(key, _)| key))
            .collect::<Result<_>>()?;
        for entry in self.scan_all(db, family, overlay, (cutoff, cutoff))? {
            let entry = entry?;
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
