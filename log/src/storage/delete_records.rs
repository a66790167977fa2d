//! DeleteRecords (Kafka's `deleteRecords`): moves a partition's log start offset forward, so
//! that records below it are gone for every reader, without waiting for retention to drop
//! their segment. The new start is written (atomically, fsynced) to `log-start-offset` in the
//! partition's directory before it takes effect, so it survives a crash; segments wholly
//! below it are deleted by the next retention pass.

use std::path::Path;

use super::partition::Partition;
use crate::error::{Error, Result};
use crate::util::write_atomically;

/// The file holding a log start offset moved by DeleteRecords.
pub(super) const LOG_START_FILE: &str = "log-start-offset";

/// The log start offset DeleteRecords left in `dir`, if any.
pub(super) fn read_log_start(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

impl Partition {
    /// Makes `before` the log start offset (records below it can no longer be read) and
    /// returns the new log start. An offset below the current start changes nothing; one
    /// above the log end is `OffsetOutOfRange`.
    pub fn delete_records_before(&self, before: i64) -> Result<i64> {
        self.check_alive()?;
        let mut state = self.state.lock();
        let log_end = state.log_end();
        if before < 0 || before > log_end {
            return Err(Error::OffsetOutOfRange {
                topic: self.topic.clone(),
                partition: self.id,
                offset: before,
                log_start: state.log_start,
                log_end,
            });
        }
        if before <= state.log_start {
            return Ok(state.log_start);
        }
        write_atomically(
            &self.dir.join(LOG_START_FILE),
            before.to_string().as_bytes(),
        )
        .map_err(|e| self.io("writing the log start offset in", e))?;
        state.log_start = before;
        tracing::info!(topic = %self.topic, partition = self.id, log_start = before, "records deleted below the new log start");
        Ok(before)
    }
}
