//! Crash images of a data directory, for tests of delivery guarantees (sluice's own and its
//! users'): what a process crash (kill -9) leaves is every byte written, since each
//! acknowledged batch is in the OS before the ack; what a power loss leaves is only what was
//! fsynced. [`copy`] takes the first from a live broker's directory, [`power_loss`] the second.
//!
//! ```
//! use sluice_log::{Broker, BrokerConfig, TopicConfig, FsyncPolicy, crash_image};
//! # let dir = tempfile::tempdir().unwrap();
//! # let image = tempfile::tempdir().unwrap();
//! let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
//! broker.create_topic("t", TopicConfig::default().with_fsync(FsyncPolicy::Never)).unwrap();
//! crash_image::power_loss(&broker, image.path()).unwrap();
//! let reopened = Broker::open(image.path(), BrokerConfig::default()).unwrap();
//! assert!(reopened.topic_metadata("t").is_ok());
//! ```

use std::path::Path;

use crate::batch::BatchHeader;
use crate::broker::Broker;
use crate::error::{Error, Result};

/// Copies a data directory as a process crash leaves it (the lock file excepted).
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("creating", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io("listing", from, e))? {
        let entry = entry.map_err(|e| Error::io("listing", from, e))?;
        let target = to.join(entry.file_name());
        let is_dir = entry
            .file_type()
            .map_err(|e| Error::io("inspecting", entry.path(), e))?
            .is_dir();
        if is_dir {
            copy(&entry.path(), &target)?;
        } else if entry.file_name() != "lock" {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| Error::io("copying", entry.path(), e))?;
        }
    }
    Ok(())
}

/// Cuts a partition directory back to the batches below `offset` and removes the segments
/// after the cut, as a power loss that kept only the first `offset` offsets would.
pub fn cut_partition(dir: &Path, offset: i64) -> Result<()> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("listing", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut cut = false;
    for log in logs {
        if cut {
            std::fs::remove_file(&log).map_err(|e| Error::io("removing", &log, e))?;
            continue;
        }
        let bytes = std::fs::read(&log).map_err(|e| Error::io("reading", &log, e))?;
        let mut pos = 0usize;
        while let Ok(h) = BatchHeader::parse(&bytes[pos..]) {
            if h.base_offset >= offset || pos + h.total_len() > bytes.len() {
                break;
            }
            pos += h.total_len();
        }
        if pos < bytes.len() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .and_then(|f| f.set_len(pos as u64))
                .map_err(|e| Error::io("cutting", &log, e))?;
            cut = true;
        }
    }
    Ok(())
}

/// Copies a live broker's data directory to `to` as a power loss would leave it: every
/// partition (internal ones included) keeps only what is below its durable offset.
pub fn power_loss(broker: &Broker, to: &Path) -> Result<()> {
    let durable: Vec<(String, i32, i64)> = broker
        .metadata()
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .into_iter()
                .map(move |p| (t.name.clone(), p.partition, p.durable_offset))
        })
        .collect();
    copy(broker.data_dir(), to)?;
    for (topic, partition, offset) in durable {
        cut_partition(&to.join(format!("{topic}-{partition}")), offset)?;
    }
    Ok(())
}
