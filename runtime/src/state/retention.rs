//! Retention shared by the window and session stores: the newest time written (recovered
//! from the newest key on open, whose first 8 bytes are that time), the cutoff behind it, and
//! the expiry of everything older.

use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};

use super::{StateDb, WriteOverlay};
use crate::error::Result;

/// Order-preserving bytes of a timestamp: the sign bit flipped, big-endian.
pub(super) fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The timestamp at the start of a key written with [`time_bytes`].
pub(super) fn time_of(bytes: &[u8]) -> Option<i64> {
    let array = <[u8; 8]>::try_from(bytes.get(..8)?).ok()?;
    Some((u64::from_be_bytes(array) ^ (1 << 63)) as i64)
}

/// A store's retention: entries whose leading time is older than the newest time written
/// minus `retention_ms` are expired.
#[derive(Debug)]
pub(super) struct Retention {
    retention_ms: i64,
    observed: AtomicI64,
}

impl Retention {
    /// A retention of `retention_ms` behind `observed`, the newest time written so far.
    pub(super) fn new(retention_ms: i64, observed: i64) -> Self {
        Self {
            retention_ms,
            observed: AtomicI64::new(observed),
        }
    }

    /// The retention of `family`, its observed time taken from its newest committed key.
    pub(super) fn open(db: &StateDb, family: &str, retention_ms: i64) -> Result<Self> {
        let observed = db
            .last_key_raw(family)?
            .and_then(|k| time_of(&k))
            .unwrap_or(i64::MIN);
        Ok(Self {
            retention_ms,
            observed: AtomicI64::new(observed),
        })
    }

    /// Notes a time written.
    pub(super) fn observe(&self, time: i64) {
        self.observed.fetch_max(time, Ordering::Relaxed);
    }

    /// The newest time written.
    pub(super) fn observed(&self) -> i64 {
        self.observed.load(Ordering::Relaxed)
    }

    /// Times below this are expired.
    pub(super) fn cutoff(&self) -> i64 {
        self.observed
            .load(Ordering::Relaxed)
            .saturating_sub(self.retention_ms)
    }

    /// Deletes (in the overlay) every live entry of `family` older than the cutoff; returns
    /// how many.
    pub(super) fn expire(
        &self,
        db: &StateDb,
        family: &str,
        overlay: &mut WriteOverlay,
    ) -> Result<usize> {
        let cutoff = self.cutoff();
        if cutoff == i64::MIN {
            return Ok(0);
        }
        let high = time_bytes(cutoff);
        // Keys only, collected before the overlay is written to: as many as expire now.
        let doomed: Vec<Vec<u8>> = db
            .merged_scan(
                family,
                overlay,
                Bound::Unbounded,
                Bound::Excluded(&high[..]),
            )?
            .map(|item| item.map(|(key, _)| key))
            .collect::<Result<_>>()?;
        let count = doomed.len();
        for key in doomed {
            overlay.delete(family, key);
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
