//! The sparse indexes of a segment, kept in memory and written beside the log when the segment
//! is sealed (or the log is closed). The active segment's indexes are rebuilt by the recovery
//! scan on open, so they need no write per entry.
//!
//! `.index`: (relative offset u32, position u32) big-endian pairs, one per
//! `index_interval_bytes` of log. `.timeindex`: (max timestamp i64, relative offset u32): the
//! segment's largest timestamp so far, recorded whenever it grows at an index point.

/// Offset index: where in the log file a batch with a given relative offset starts.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn push(&mut self, relative_offset: u32, position: u32) {
        self.entries.push((relative_offset, position));
    }

    /// Position of the last indexed batch whose relative offset is <= `relative_offset`, or 0.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let idx = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if idx == 0 { 0 } else { self.entries[idx - 1].1 }
    }

    /// The newest entry: (relative offset, position).
    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Decodes an index file, or `None` when it is torn or does not fit a log of `log_len`
    /// bytes (entries must rise and point inside the log).
    pub(crate) fn decode(bytes: &[u8], log_len: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut entries = Vec::with_capacity(bytes.len() / 8);
        for chunk in bytes.chunks_exact(8) {
            let o = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let p = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if u64::from(p) >= log_len {
                return None;
            }
            if let Some(&(lo, lp)) = entries.last()
                && (o <= lo || p <= lp)
            {
                return None;
            }
            entries.push((o, p));
        }
        Some(Self { entries })
    }
}

/// Time index: for a target timestamp, the offset after which to start looking.
#[derive(Debug, Default, Clone)]
pub(crate) struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Records that every record up to `relative_offset` has a timestamp <= `max_timestamp`.
    pub(crate) fn push(&mut self, max_timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(ts, _)) if ts >= max_timestamp => {}
            _ => self.entries.push((max_timestamp, relative_offset)),
        }
    }

    /// The largest relative offset all of whose records (and those before it) are older than
    /// `timestamp`, or `None` when no entry is.
    pub(crate) fn last_before(&self, timestamp: i64) -> Option<u32> {
        let idx = self.entries.partition_point(|&(ts, _)| ts < timestamp);
        if idx == 0 {
            None
        } else {
            Some(self.entries[idx - 1].1)
        }
    }

    /// The newest timestamp recorded.
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|&(ts, _)| ts)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for &(ts, o) in &self.entries {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    /// Decodes a time index file, or `None` when torn or not rising.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(12) {
            return None;
        }
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / 12);
        for chunk in bytes.chunks_exact(12) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let o = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if let Some(&(lts, lo)) = entries.last()
                && (ts <= lts || o < lo)
            {
                return None;
            }
            entries.push((ts, o));
        }
        Some(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(10, 4096);
        idx.push(20, 8192);
        assert_eq!(idx.lookup(5), 0);
        assert_eq!(idx.lookup(10), 4096);
        assert_eq!(idx.lookup(19), 4096);
        assert_eq!(idx.lookup(25), 8192);
        let round = OffsetIndex::decode(&idx.encode(), 10_000).map(|i| i.lookup(25));
        assert_eq!(round, Some(8192));
        assert!(
            OffsetIndex::decode(&idx.encode(), 8000).is_none(),
            "entry past the log end"
        );
        assert!(
            OffsetIndex::decode(&idx.encode()[..7], 10_000).is_none(),
            "torn entry"
        );
    }

    #[test]
    fn time_index_keeps_only_rising_timestamps() {
        let mut idx = TimeIndex::default();
        idx.push(100, 0);
        idx.push(90, 5);
        idx.push(200, 9);
        assert_eq!(idx.last_before(100), None);
        assert_eq!(idx.last_before(150), Some(0));
        assert_eq!(idx.last_before(201), Some(9));
        assert_eq!(
            TimeIndex::decode(&idx.encode()).and_then(|i| i.max_timestamp()),
            Some(200)
        );
    }
}
