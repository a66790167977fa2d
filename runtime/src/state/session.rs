//! [`SessionStore`]: values per (key, session `[start, end]`) with retention, over one
//! column family. Entries are laid out by session end, then start, then the serialized key,
//! so sessions that may still merge with a new record (those ending at or after a time) are
//! one contiguous scan, and retention drops the sessions that ended longest ago.

use std::ops::Bound;

use super::retention::{Retention, time_bytes, time_of};
use super::{StateDb, WriteOverlay};
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
        let retention = Retention::open(&db, &family, retention_ms)?;
        Ok(Self {
            db,
            family,
            keys,
            values,
            retention,
        })
    }

    fn composite(&self, key: &K, session: Session) -> Result<Vec<u8>> {
        let mut out = time_bytes(session.end).to_vec();
        out.extend_from_slice(&time_bytes(session.start));
        out.extend_from_slice(&self.keys.serialize(key)?);
        Ok(out)
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
    pub fn find_sessions(
        &self,
        overlay: &WriteOverlay,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Session, V)>> {
        let key = self.keys.serialize(key)?;
        let low = time_bytes(earliest_end.max(self.retention.cutoff()));
        let merged = self.db.merged_scan(
            &self.family,
            overlay,
            Bound::Included(&low[..]),
            Bound::Unbounded,
        )?;
        merged
            .into_iter()
            .filter_map(|(k, v)| {
                let end = time_of(&k)?;
                let start = time_of(k.get(8..)?)?;
                (start <= latest_start && k.get(16..) == Some(&key[..]))
                    .then_some((Session { start, end }, v))
            })
            .map(|(s, v)| Ok((s, self.values.deserialize(&v)?)))
            .collect()
    }

    /// Deletes (in the overlay) every session that ended before the retention; returns how
    /// many.
    pub fn expire(&self, overlay: &mut WriteOverlay) -> Result<usize> {
        self.retention.expire(&self.db, &self.family, overlay)
    }
}
