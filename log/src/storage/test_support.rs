//! Helpers for the storage module's unit tests: a one-record batch, and a partition under
//! the `commit` fsync policy in a temporary directory.

#![allow(clippy::unwrap_used)] // test helpers fail loudly on what they did not expect

use std::sync::Arc;

use bytes::Bytes;

use super::Partition;
use crate::batch::BatchBuilder;
use crate::topic::{FsyncPolicy, TopicConfig};

/// A batch of one record holding `value`.
pub(crate) fn batch(value: &[u8]) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.append(1_000, None, Some(value), &[]);
    builder.build().unwrap()
}

/// Partition `t-0` under `dir`, fsync policy `commit`, segments of `segment_bytes`.
pub(crate) fn commit_partition(dir: &std::path::Path, segment_bytes: u64) -> Arc<Partition> {
    let config = TopicConfig::default()
        .with_fsync(FsyncPolicy::Commit)
        .with_segment_bytes(segment_bytes);
    Arc::new(Partition::open(&dir.join("t-0"), "t", 0, config, Default::default()).unwrap())
}
