//! [`SessionStore`]: values per (key, session `[start, end]`) with retention, over one
//! column family, laid out key first in time segments of the session end (`segments.rs`):
//! `[segment][serialized key][end][start]`. The sessions of one key that may still merge
//! with a new record (those ending at or after a time) are a short scan per segment, and
//! retention drops the sessions that ended longest ago as a range at the front.

use super::retention::{Retention, time_bytes, time_of};
use super::segments::{Segments, segment_ms_for};
use super::{StateDb, StoreIter, WriteOverlay};
use crate::error::Result;
use crate::serde::Serde;

/// A session window: the times of its first and last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Session {
    /// Timestamp of the first record.
    pub start: i64,
    /// Timestamp of the last record.
    pub end: i64,
}

/// A session store of one task. Writes go to the overlay; reads see it first.
pub struct SessionStore<K, V> {
    db: StateDb,
    family: String,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
    segments: Segments,
    /// Sessions that ended before the newest end written minus the retention are expired.
    retention: Retention,
}

impl<K, V> std::fmt::Debug for SessionStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("family", &self.family)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl<K, V> SessionStore<K, V> {
    pub(super) fn new(
        db: StateDb,
        family: String,
        keys: Box<dyn Serde<K>>,
        values: Box<dyn Serde<V>>,
        retention_ms: i64,
    ) -> Result<Self> {
        let segments = Segments {
            segment_ms: segment_ms_for(retention_ms),
            suffix: 16,
        };
        let newest = segments.newest(&db, &family, time_of)?;
        Ok(Self {
            db,
            family,
            keys,
            values,
            segments,
            retention: Retention::new(retention_ms, newest.unwrap_or(i64::MIN)),
        })
    }

    fn composite(&self, key: &K, session: Session) -> Result<Vec<u8>> {
        let mut suffix = time_bytes(session.end).to_vec();
        suffix.extend_from_slice(&time_bytes(session.start));
        let key = self.keys.serialize(key)?;
        Ok(self.segments.compose(session.end, &key, &suffix))
    }

    /// Writes `key`'s session. A session that ended before the retention is dropped
    /// (returns false).
    pub fn put(
        &self,
        overlay: &mut WriteOverlay,
        key: &K,
        session: Session,
        value: &V,
    ) -> Result<bool> {
        self.retention.observe(session.end);
        if session.end < self.retention.cutoff() {
            return Ok(false);
        }
        overlay.put(
            &self.family,
            self.composite(key, session)?,
            self.values.serialize(value)?,
        );
        Ok(true)
    }

    /// Removes `key`'s session (after it was merged into a larger one).
    pub fn remove(&self, overlay: &mut WriteOverlay, key: &K, session: Session) -> Result<()> {
        overlay.delete(&self.family, self.composite(key, session)?);
        Ok(())
    }

    /// `key`'s live sessions that end at or after `earliest_end` and start at or before
    /// `latest_start` (Kafka's `findSessions`): the ones a record at time t merges with, for
    /// `earliest_end = t - gap` and `latest_start = t + gap`. Ordered by end, then start.
    pub fn find_sessions<'a>(
        &'a self,
        overlay: &'a WriteOverlay,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<StoreIter<'a, (Session, V)>> {
        let key = self.keys.serialize(key)?;
        let from = earliest_end.max(self.retention.cutoff());
        // No session ends after the newest end written.
        let to = self.retention.observed().max(from);
        let mut low = time_bytes(from).to_vec();
        low.extend_from_slice(&time_bytes(i64::MIN));
        let high = [time_bytes(i64::MAX), time_bytes(i64::MAX)].concat();
        let found = self.segments.scan_key(
            &self.db,
            &self.family,
            overlay,
            key,
            (from, to),
            (low, high),
        );
        Ok(Box::new(found.filter_map(move |item| {
            let e = match item {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
            let end = time_of(&e.suffix)?;
            let start = time_of(e.suffix.get(8..)?)?;
            (end >= from && start <= latest_start)
                .then(|| Ok((Session { start, end }, self.values.deserialize(&e.value)?)))
        })))
    }

    /// Deletes (in the overlay) every session that ended before the retention; returns how
    /// many.
    pub fn expire(&self, overlay: &mut WriteOverlay) -> Result<usize> {
        let cutoff = self.retention.cutoff();
        self.segments
            .expire(&self.db, &self.family, overlay, cutoff, time_of)
    }
}
