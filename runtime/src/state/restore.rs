//! Restoring a store from its changelog (docs/architecture.md §3.1): the changelog topic holds every
//! committed write of the store (key = the store's key bytes, value = its value bytes, null
//! value = delete). Restore reads it with read_committed from the store's checkpoint (or
//! from the start for a fresh instance) up to the log end it saw when it began, and applies
//! it in batches, each with the checkpoint of what it applied, reporting progress through
//! tracing and a callback.
//!
//! A transaction still open below that end (an instance that died mid-commit, a zombie)
//! holds back read_committed readers, and committed writes may lie beyond it. So restore
//! waits for it to end (committed, aborted, or timed out by the broker) rather than stop
//! there: stopping would leave the store behind writes that are already committed (the
//! runtime's fault-injection harness found exactly that).

use std::time::{Duration, Instant};

use sluice_log::TopicPartition;
use sluice_log::cluster::{Cluster, ClusterConsumer, ConsumerSpec, OffsetAt};

use super::{StateDb, StoreName};
use crate::error::{Error, Result};

/// How far a restore has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProgress {
    /// The store being restored.
    pub store: StoreName,
    /// The offset restored up to (exclusive).
    pub position: i64,
    /// The changelog's end when the restore began.
    pub end: i64,
    /// Records applied so far.
    pub applied: u64,
}

/// Records per applied batch.
const BATCH: usize = 10_000;

/// Replays `changelog` (its partition `name.partition`) into `name`'s column family from the
/// store's checkpoint to the changelog's end; returns the records applied. `progress` is
/// called after every applied batch.
pub fn restore<C: Cluster>(
    db: &StateDb,
    name: &StoreName,
    cluster: &C,
    changelog: &str,
    mut progress: impl FnMut(&RestoreProgress),
) -> Result<u64> {
    restore_with(db, name, cluster, changelog, BATCH, OPEN_TXN_WAIT, |p| {
        progress(p);
        Ok(())
    })
}

/// How long [`restore`] waits for a transaction open in the changelog to end.
const OPEN_TXN_WAIT: Duration = Duration::from_secs(120);

/// [`restore`] with `batch` records per applied batch, at most `open_txn_wait` spent
/// waiting for an open transaction in the changelog to end (then `RestoreStalled`), and a
/// callback that can stop the restore with an error (what is applied stays applied, with
/// its checkpoint).
pub fn restore_with<C: Cluster>(
    db: &StateDb,
    name: &StoreName,
    cluster: &C,
    changelog: &str,
    batch: usize,
    open_txn_wait: Duration,
    mut progress: impl FnMut(&RestoreProgress) -> Result<()>,
) -> Result<u64> {
    let family = name.column_family();
    db.ensure_family(&family)?;
    let tp = TopicPartition::new(changelog, name.partition);
    let start = db.checkpoint(name)?.unwrap_or(0);
    let end = cluster
        .list_offset(&tp, OffsetAt::Latest)
        .map_err(Error::cluster)?;
    let mut report = RestoreProgress {
        store: name.clone(),
        position: start,
        end,
        applied: 0,
    };
    if start >= end {
        return Ok(0);
    }
    tracing::info!(store = %family, changelog, from = start, to = end, "restoring from the changelog");
    let spec =
        ConsumerSpec::read_committed(format!("{family}-restore")).with_max_poll_records(batch);
    let mut consumer = cluster.consumer(&spec).map_err(Error::cluster)?;
    consumer
        .assign(&[(tp.clone(), start)])
        .map_err(Error::cluster)?;
    let mut stalled_since: Option<Instant> = None;
    loop {
        let records = consumer
            .poll(Duration::from_millis(50))
            .map_err(Error::cluster)?;
        let mut overlay = db.overlay();
        for record in &records {
            let key = record.key.as_deref().unwrap_or_default().to_vec();
            match &record.value {
                Some(value) => overlay.put(&family, key, value.to_vec()),
                None => overlay.delete(&family, key),
            }
        }
        // Markers and aborted records move the position without being returned.
        let position = consumer.position(&tp).map_err(Error::cluster)?;
        if !records.is_empty() || position != report.position {
            report.applied += records.len() as u64;
            report.position = position;
            db.apply(overlay, &[(name.clone(), position)])?;
            progress(&report)?;
            tracing::debug!(store = %family, position, end, applied = report.applied, "restore progress");
        }
        if position >= end {
            break;
        }
        if records.is_empty() {
            // An open transaction below the end holds read_committed back: wait for it.
            let waited = stalled_since.get_or_insert_with(Instant::now).elapsed();
            if waited >= open_txn_wait {
                return Err(Error::RestoreStalled {
                    store: family,
                    changelog: changelog.to_string(),
                    partition: name.partition,
                    position,
                    end,
                });
            }
            tracing::debug!(store = %family, position, end, "restore waits for an open transaction in the changelog");
        } else {
            stalled_since = None;
        }
    }
    tracing::info!(store = %family, applied = report.applied, "restore done");
    Ok(report.applied)
}
