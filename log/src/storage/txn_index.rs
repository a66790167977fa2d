//! The `.txnindex` of a segment: the transactions aborted by markers in that segment, as
//! (producer id i64, first offset i64, last offset i64) big-endian entries. An entry is
//! appended when the abort marker is written and synced with its segment; a torn last entry
//! is ignored, and recovery rewrites the files of every segment it re-reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::txn::AbortedTxn;

const ENTRY: usize = 24;

/// The index file of the segment at `base`.
pub(crate) fn path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.txnindex", super::segment::file_stem(base)))
}

fn encode(entry: &AbortedTxn, out: &mut Vec<u8>) {
    out.extend_from_slice(&entry.producer_id.to_be_bytes());
    out.extend_from_slice(&entry.first_offset.to_be_bytes());
    out.extend_from_slice(&entry.last_offset.to_be_bytes());
}

/// Appends one aborted transaction to the segment's index.
pub(crate) fn append(dir: &Path, base: i64, entry: &AbortedTxn) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(ENTRY);
    encode(entry, &mut buf);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(dir, base))?
        .write_all(&buf)
}

/// Replaces the segment's index with `entries` (removing it when there are none).
pub(crate) fn rewrite(dir: &Path, base: i64, entries: &[AbortedTxn]) -> std::io::Result<()> {
    let file = path(dir, base);
    if entries.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut buf = Vec::with_capacity(entries.len() * ENTRY);
    for entry in entries {
        encode(entry, &mut buf);
    }
    std::fs::write(file, buf)
}

/// Reads the segment's index; a missing file is empty and a torn last entry is dropped.
pub(crate) fn load(dir: &Path, base: i64) -> Vec<AbortedTxn> {
    let Ok(bytes) = std::fs::read(path(dir, base)) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(ENTRY)
        .map(|c| {
            let field = |i: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&c[i * 8..i * 8 + 8]);
                i64::from_be_bytes(a)
            };
            AbortedTxn {
                producer_id: field(0),
                first_offset: field(1),
                last_offset: field(2),
            }
        })
        .collect()
}

/// fsyncs the segment's index if it exists.
pub(crate) fn sync(dir: &Path, base: i64) -> std::io::Result<()> {
    match std::fs::File::open(path(dir, base)) {
        Ok(file) => file.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
