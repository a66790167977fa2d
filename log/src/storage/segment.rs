//! One segment: a `.log` file of record batches plus its sparse `.index` and `.timeindex`.
//!
//! What a crash does here: every batch is handed to the OS with one positioned write
//! (`pwrite`) before the append returns, so a process crash keeps it; only fsynced bytes
//! survive power loss. A torn or corrupt tail is found by [`Segment::recover`], which checks
//! every batch's length, offsets and CRC-32C and truncates the file at the first bad one.
//! Sealed segments are never appended to again; their index files are written when they are
//! sealed and checked (and rebuilt if they do not fit the log) when they are opened.
//! Compaction replaces a sealed segment whole: it writes `<base>.cleaned`, fsyncs it and
//! renames it over `<base>.log` ([`Segment::create_cleaned`], [`Segment::install_cleaned`]).
//! A compacted segment has gaps between its batches' offsets; only segments below the
//! recovery point (fsynced, hence trusted) may have them.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::index::{OffsetIndex, TimeIndex};
use crate::batch::{self, BatchHeader, HEADER_LEN};

/// The file name of a segment (or snapshot) for `offset`: 20 zero-padded digits.
pub(crate) fn file_stem(offset: i64) -> String {
    format!("{offset:020}")
}

/// An open segment. Fields change only under the partition's lock; readers take the shared
/// file handle and a byte limit and read without the lock.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    /// One past the last offset stored here.
    pub(crate) next_offset: i64,
    /// Bytes of valid batches in the `.log` file.
    pub(crate) size: u64,
    /// Largest record timestamp here, or -1 when empty.
    pub(crate) max_timestamp: i64,
    /// Wall-clock ms when the segment was created or opened, for `segment_ms`.
    pub(crate) created_ms: i64,
    file: Arc<File>,
    log_path: PathBuf,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    index_interval: u64,
}

/// How a recovery scan ended.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) segment: Segment,
    /// Bytes cut from the end of the file, with the reason, if any.
    pub(crate) truncated: Option<(u64, String)>,
}

impl Segment {
    fn paths(dir: &Path, base: i64) -> [PathBuf; 3] {
        let stem = file_stem(base);
        [
            dir.join(format!("{stem}.log")),
            dir.join(format!("{stem}.index")),
            dir.join(format!("{stem}.timeindex")),
        ]
    }

    fn empty(file: File, log_path: PathBuf, base: i64, index_interval: u64) -> Self {
        Self {
            base_offset: base,
            next_offset: base,
            size: 0,
            max_timestamp: -1,
            created_ms: crate::util::now_ms(),
            file: Arc::new(file),
            log_path,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            index_interval,
        }
    }

    /// Creates a new empty segment starting at `base`.
    pub(crate) fn create(dir: &Path, base: i64, index_interval: u64) -> io::Result<Self> {
        let [log, _, _] = Self::paths(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log)?;
        Ok(Self::empty(file, log, base, index_interval))
    }

    /// Opens a segment, checking every batch from the start: length, offsets, CRC. The file
    /// is truncated at the first torn or corrupt batch and the indexes are rebuilt.
    /// `allow_gaps` accepts a batch starting past where the previous one ended (a compacted
    /// segment; pass it only for segments below the recovery point); otherwise each batch must
    /// start exactly there. `visit` sees each valid batch's header.
    pub(crate) fn recover(
        dir: &Path,
        base: i64,
        index_interval: u64,
        allow_gaps: bool,
        mut visit: impl FnMut(&BatchHeader),
    ) -> io::Result<Recovered> {
        let [log, _, _] = Self::paths(dir, base);
        let file = OpenOptions::new().read(true).write(true).open(&log)?;
        let file_len = file.metadata()?.len();
        let mut seg = Self::empty(file, log, base, index_interval);
        let file = Arc::clone(&seg.file);
        let mut reader = BufReader::with_capacity(1 << 20, &*file);
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut bad: Option<String> = None;
        while seg.size < file_len {
            let remaining = file_len - seg.size;
            if remaining < HEADER_LEN as u64 {
                bad = Some(format!(
                    "{remaining} trailing bytes, less than a batch header"
                ));
                break;
            }
            buf.resize(HEADER_LEN, 0);
            reader.read_exact(&mut buf)?;
            let header = match BatchHeader::parse(&buf) {
                Ok(h) => h,
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            };
            let total = header.total_len() as u64;
            if total > remaining {
                bad = Some(format!(
                    "batch of {total} bytes but only {remaining} left (torn write)"
                ));
                break;
            }
            // Outside compacted segments offsets are contiguous, so a batch must start exactly
            // where the previous one ended: this also catches a damaged `baseOffset`, which the
            // CRC does not cover. Compaction leaves gaps; offsets still rise.
            let follows = if allow_gaps {
                header.base_offset >= seg.next_offset
            } else {
                header.base_offset == seg.next_offset
            };
            if !follows || header.last_offset_delta < 0 {
                bad = Some(format!(
                    "batch offsets {}..={} do not follow {}",
                    header.base_offset,
                    header.last_offset(),
                    seg.next_offset
                ));
                break;
            }
            buf.resize(total as usize, 0);
            reader.read_exact(&mut buf[HEADER_LEN..])?;
            let crc = batch::compute_crc(&buf);
            if crc != header.crc {
                bad = Some(format!(
                    "crc mismatch at offset {}: stored {:#010x}, computed {crc:#010x}",
                    header.base_offset, header.crc
                ));
                break;
            }
            seg.track(&header);
            visit(&header);
        }
        drop(reader);
        let truncated = match bad {
            Some(reason) => {
                seg.file.set_len(seg.size)?;
                Some((file_len - seg.size, reason))
            }
            None => None,
        };
        Ok(Recovered {
            segment: seg,
            truncated,
        })
    }

    /// Opens a sealed segment known to be valid (below the recovery point). Loads its index
    /// files when they fit the log; otherwise scans the log to rebuild them.
    pub(crate) fn open_sealed(
        dir: &Path,
        base: i64,
        next_offset: i64,
        index_interval: u64,
    ) -> io::Result<Recovered> {
        let [log, index, timeindex] = Self::paths(dir, base);
        let file = OpenOptions::new().read(true).write(true).open(&log)?;
        let size = file.metadata()?.len();
        let offsets = std::fs::read(&index)
            .ok()
            .and_then(|b| OffsetIndex::decode(&b, size.max(1)));
        let times = std::fs::read(&timeindex)
            .ok()
            .and_then(|b| TimeIndex::decode(&b));
        match (offsets, times) {
            (Some(offset_index), Some(time_index))
                if size > 0
                    && time_index.max_timestamp().is_some()
                    && Self::index_points_at_batches(
                        &file,
                        base,
                        next_offset,
                        &offset_index,
                        size,
                    ) =>
            {
                let mut seg = Self::empty(file, log, base, index_interval);
                seg.size = size;
                seg.next_offset = next_offset;
                seg.max_timestamp = time_index.max_timestamp().unwrap_or(-1);
                seg.offset_index = offset_index;
                seg.time_index = time_index;
                Ok(Recovered {
                    segment: seg,
                    truncated: None,
                })
            }
            _ => {
                tracing::info!(segment = %log.display(), "index files missing or stale; rebuilding");
                drop(file);
                Self::recover(dir, base, index_interval, true, |_| {})
            }
        }
    }

    /// Whether the index's newest entry points at the start of the batch it names (a stale
    /// index from another version of the file would not), and the batches from there on end
    /// exactly at the end of the file (no stray bytes after the last batch) with rising
    /// offsets (a trusted segment may have been compacted) ending just before `next_offset`.
    fn index_points_at_batches(
        file: &File,
        base: i64,
        next_offset: i64,
        index: &OffsetIndex,
        size: u64,
    ) -> bool {
        let Some((relative, position)) = index.last() else {
            return false;
        };
        let mut buf = [0u8; HEADER_LEN];
        let mut pos = u64::from(position);
        let mut expected = base + i64::from(relative);
        while pos < size {
            let Ok(header) = file
                .read_exact_at(&mut buf, pos)
                .map_err(|_| ())
                .and_then(|()| BatchHeader::parse(&buf).map_err(|_| ()))
            else {
                return false;
            };
            let first = pos == u64::from(position);
            let fits = if first {
                header.base_offset == expected
            } else {
                header.base_offset >= expected
            };
            if !fits || header.last_offset_delta < 0 || pos + header.total_len() as u64 > size {
                return false;
            }
            expected = header.next_offset();
            pos += header.total_len() as u64;
        }
        pos == size && expected == next_offset
    }

    /// Updates offsets, timestamps and the sparse indexes for a batch just placed at the end.
    fn track(&mut self, header: &BatchHeader) {
        let relative = (header.base_offset - self.base_offset) as u32;
        let position = self.size as u32;
        let total = header.total_len() as u64;
        if self.size == 0 || self.bytes_since_index >= self.index_interval {
            self.offset_index.push(relative, position);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += total;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.time_index.push(
                header.max_timestamp,
                (header.last_offset() - self.base_offset) as u32,
            );
        }
        self.size += total;
        self.next_offset = header.next_offset();
    }

    /// Appends a batch whose base offset has been assigned.
    /// Appends a batch whose base offset has been assigned. On a failed write, whatever part
    /// of it reached the file is cut off again, so no stray bytes follow the valid batches.
    pub(crate) fn append(&mut self, batch: &[u8], header: &BatchHeader) -> io::Result<()> {
        if let Err(e) = self.file.write_all_at(batch, self.size) {
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.track(header);
        Ok(())
    }

    /// The file compaction writes the new version of the segment at `base` into.
    pub(crate) fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
        dir.join(format!("{}.cleaned", file_stem(base)))
    }

    /// Creates (truncating) `<base>.cleaned`, an empty segment that compaction fills with
    /// [`append`](Self::append) and then installs with [`install_cleaned`](Self::install_cleaned).
    pub(crate) fn create_cleaned(dir: &Path, base: i64, index_interval: u64) -> io::Result<Self> {
        let path = Self::cleaned_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(Self::empty(file, path, base, index_interval))
    }

    /// Removes the index files of the segment at `base`, so that a crash between here and
    /// the rename of a cleaned file can never pair the new log with stale indexes (open
    /// rebuilds missing ones).
    pub(crate) fn remove_index_files(dir: &Path, base: i64) -> io::Result<()> {
        let [_, index, timeindex] = Self::paths(dir, base);
        for path in [index, timeindex] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Renames this cleaned segment's file (already fsynced) over `<base>.log`: an atomic
    /// replacement. The caller fsyncs the directory. Readers of the old file keep reading the
    /// old inode.
    pub(crate) fn install_cleaned(&mut self) -> io::Result<()> {
        let dir = self
            .log_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf();
        let [log, _, _] = Self::paths(&dir, self.base_offset);
        std::fs::rename(&self.log_path, &log)?;
        self.log_path = log;
        Ok(())
    }

    /// Whether a batch of `len` bytes would push the segment past `segment_bytes`, or the
    /// relative offsets past what a u32 holds.
    pub(crate) fn is_full_for(&self, len: u64, last_offset: i64, segment_bytes: u64) -> bool {
        self.size > 0
            && (self.size + len > segment_bytes
                || last_offset - self.base_offset > i64::from(u32::MAX))
    }

    /// The shared file handle, for reads and fsync outside the partition lock.
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Byte position from which to look for `offset`.
    pub(crate) fn position_hint(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        u64::from(self.offset_index.lookup(relative))
    }

    /// Offset from which to look for the first record at or after `timestamp`.
    pub(crate) fn time_hint(&self, timestamp: i64) -> i64 {
        match self.time_index.last_before(timestamp) {
            Some(relative) => self.base_offset + i64::from(relative) + 1,
            None => self.base_offset,
        }
    }

    /// Writes the index files beside the log (on seal and on close).
    pub(crate) fn write_indexes(&self) -> io::Result<()> {
        let [_, index, timeindex] = Self::paths(
            self.log_path.parent().unwrap_or_else(|| Path::new(".")),
            self.base_offset,
        );
        std::fs::write(index, self.offset_index.encode())?;
        std::fs::write(timeindex, self.time_index.encode())
    }

    /// Removes the segment's files. Readers holding the file handle can still finish.
    pub(crate) fn delete_files(&self) -> io::Result<()> {
        let dir = self.log_path.parent().unwrap_or_else(|| Path::new("."));
        Self::remove_files(dir, self.base_offset)
    }

    /// Removes the files of the segment at `base` in `dir`, whichever exist.
    pub(crate) fn remove_files(dir: &Path, base: i64) -> io::Result<()> {
        let [log, index, timeindex] = Self::paths(dir, base);
        for path in [log, index, timeindex, super::txn_index::path(dir, base)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The `.log` path, for error messages.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// A segment's file and the byte range a reader may look at, taken under the partition lock
/// and used without it.
#[derive(Debug, Clone)]
pub(crate) struct ReadView {
    pub(crate) file: Arc<File>,
    pub(crate) start: u64,
    pub(crate) limit: u64,
}

impl ReadView {
    /// Reads the header of the batch at `pos`.
    fn header_at(&self, pos: u64) -> io::Result<BatchHeader> {
        let mut buf = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut buf, pos)?;
        BatchHeader::parse(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Position and header of the first batch whose `keep` is true, scanning from `start`.
    pub(crate) fn find(
        &self,
        mut keep: impl FnMut(&BatchHeader) -> bool,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut pos = self.start;
        while pos + HEADER_LEN as u64 <= self.limit {
            let header = self.header_at(pos)?;
            if keep(&header) {
                return Ok(Some((pos, header)));
            }
            pos += header.total_len() as u64;
        }
        Ok(None)
    }

    /// Reads whole batches from the first one holding `offset`: as many as fit in `max_bytes`,
    /// but always at least one.
    pub(crate) fn read_from(&self, offset: i64, max_bytes: usize) -> io::Result<Bytes> {
        let Some((pos, first)) = self.find(|h| h.last_offset() >= offset)? else {
            return Ok(Bytes::new());
        };
        let want = (max_bytes as u64)
            .max(first.total_len() as u64)
            .min(self.limit - pos);
        let mut buf = BytesMut::zeroed(want as usize);
        self.file.read_exact_at(&mut buf, pos)?;
        let mut whole = 0usize;
        while whole + HEADER_LEN <= buf.len() {
            let total = BatchHeader::parse(&buf[whole..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
                .total_len();
            if whole + total > buf.len() {
                break;
            }
            whole += total;
        }
        buf.truncate(whole);
        Ok(buf.freeze())
    }
}
