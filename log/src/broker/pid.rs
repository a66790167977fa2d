//! Producer id allocation: ids are handed out from blocks whose end is persisted (fsynced)
//! before any id of the block is used, so an id is never handed out twice, even across
//! crashes. Ids of a block that was not used up before a restart are skipped, as Kafka does.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::util::write_atomically;

const BLOCK: i64 = 1000;

/// Allocates producer ids for one data directory.
#[derive(Debug)]
pub(crate) struct ProducerIdAllocator {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIdAllocator {
    /// Reads the persisted high-water mark from `meta/producer-ids`.
    pub(crate) fn open(meta_dir: &Path) -> Result<Self> {
        let path = meta_dir.join("producer-ids");
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|_| Error::CorruptMetadata {
                    path: path.clone(),
                    reason: format!("expected a producer id, found {text:?}"),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        Ok(Self {
            path,
            next,
            block_end: next,
        })
    }

    /// The next unused id.
    pub(crate) fn allocate(&mut self) -> Result<i64> {
        if self.next >= self.block_end {
            let end = self.next + BLOCK;
            write_atomically(&self.path, end.to_string().as_bytes())
                .map_err(|e| Error::io("persisting producer id block to", &self.path, e))?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }

    /// Whether `id` may have been handed out by this broker (now or before a restart).
    pub(crate) fn is_known(&self, id: i64) -> bool {
        id >= 0 && id < self.block_end.max(self.next)
    }
}
