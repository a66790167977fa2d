//! The process's open-file budget: every partition keeps its segment files open, so a topic
//! with more partitions than the soft `RLIMIT_NOFILE` allows would fail halfway through its
//! creation with "Too many open files", after creating thousands of directories. Creating
//! partitions therefore first checks the limit against the files they would keep open beyond
//! those already open, and refuses up front, before anything is created on disk.
//!
//! Without unsafe code (the workspace forbids it) the limit is read from `/proc/self/limits`
//! and the open descriptors are counted in `/proc/self/fd` (Linux). Where `/proc/self/limits`
//! is missing or says `unlimited`, there is no check.

use std::path::Path;

use crate::error::{Error, Result};

/// Open file handles a new, empty partition keeps: `Partition::open` creates one segment and
/// keeps its `.log` file open (its offset and time indexes live in memory; the recovery
/// point, producer snapshots and aborted-transaction index are written and closed). A
/// partition keeps one handle per segment, so it needs more as it grows.
pub(crate) const FILES_PER_NEW_PARTITION: u64 = 1;

/// Descriptors left free after the new partitions: for connections, segment rolls and the
/// files written and closed while the broker runs.
pub(crate) const RESERVED_FILES: u64 = 64;

/// The soft limit in the text of `/proc/self/limits` (its `Max open files` line); `None`
/// when the line is missing or the limit is `unlimited`.
pub(crate) fn parse_soft_limit(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

/// The process's soft open-file limit, where it can be read.
fn soft_limit() -> Option<u64> {
    parse_soft_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// Descriptors the process has open (0 where `/proc/self/fd` cannot be listed). The listing
/// holds one of its own, which is not counted.
fn open_files() -> u64 {
    std::fs::read_dir(Path::new("/proc/self/fd"))
        .map_or(0, |entries| entries.count() as u64)
        .saturating_sub(1)
}

/// Refuses to add `new` partitions to `topic` (making it `requested` partitions in all) when
/// the files they keep open, on top of those open now and [`RESERVED_FILES`], would pass
/// the soft open-file limit.
pub(crate) fn check(topic: &str, requested: i32, new: i32) -> Result<()> {
    let Some(limit) = soft_limit() else {
        return Ok(());
    };
    let needed = u64::try_from(new)
        .unwrap_or(0)
        .saturating_mul(FILES_PER_NEW_PARTITION);
    let open = open_files();
    if open.saturating_add(needed).saturating_add(RESERVED_FILES) <= limit {
        return Ok(());
    }
    tracing::info!(
        topic,
        requested,
        new,
        open,
        limit,
        "refusing partitions past the open-file limit"
    );
    Err(Error::OpenFileLimit {
        topic: topic.to_string(),
        requested,
        needed,
        open,
        reserved: RESERVED_FILES,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_limit_of_proc_self_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127540               127540               processes \n\
                      Max open files            1024                 524288               files     \n\
                      Max locked memory         8388608              8388608              bytes     \n";
        assert_eq!(parse_soft_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_soft_limit(unlimited), None);
        assert_eq!(parse_soft_limit("Max processes 10 10 processes\n"), None);
    }

    #[test]
    fn partitions_past_the_limit_are_refused() {
        let Some(limit) = soft_limit().filter(|&l| l < i32::MAX as u64) else {
            return;
        };
        let past = limit as i32;
        assert!(matches!(
            check("huge", past, past),
            Err(Error::OpenFileLimit { .. })
        ));
    }
}
