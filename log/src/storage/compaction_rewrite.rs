//! One segment's part of a compaction pass (see `compaction.rs`): reading its batches,
//! judging each (kept as it is, rebuilt with fewer records, left as an empty batch, or
//! dropped) and writing the survivors to `<base>.cleaned`. Rebuilt batches keep their base
//! offset, last offset delta, producer fields, attributes and partition leader epoch, and
//! every record its offset delta, so the CRC is recomputed over the same header values.

use std::os::unix::fs::FileExt;

use bytes::{Bytes, BytesMut};

use super::compaction::{Cleanable, OffsetMap, Pass, Plan};
use super::partition::Partition;
use super::segment::Segment;
use crate::batch::{BatchBuilder, BatchError, BatchHeader, HEADER_LEN, Record, RecordBatch};
use crate::error::{Error, Result};
use crate::txn::ControlType;

/// What becomes of one stored batch.
enum Verdict {
    Keep,
    Replace(Bytes),
    Drop,
}

impl Partition {
    /// The header and bytes of the batch of `seg` at byte `pos`.
    pub(super) fn batch_at(&self, seg: &Cleanable, pos: u64) -> Result<(BatchHeader, Bytes)> {
        let io = |e| Error::io("compacting a segment in", &self.dir, e);
        let mut head = [0u8; HEADER_LEN];
        seg.file.read_exact_at(&mut head, pos).map_err(io)?;
        let header = BatchHeader::parse(&head).map_err(|e| self.invalid(seg.base, e))?;
        let total = header.total_len() as u64;
        if pos + total > seg.size {
            let short = BatchError::Truncated {
                needed: total as usize,
                available: (seg.size - pos) as usize,
            };
            return Err(self.invalid(header.base_offset, short));
        }
        let mut buf = BytesMut::zeroed(total as usize);
        seg.file.read_exact_at(&mut buf, pos).map_err(io)?;
        Ok((header, buf.freeze()))
    }

    /// Calls `each` with the position of every batch of `seg`, the batch (CRC checked) and
    /// whether it is the last one.
    pub(super) fn for_each_batch(
        &self,
        seg: &Cleanable,
        mut each: impl FnMut(u64, RecordBatch, bool) -> Result<()>,
    ) -> Result<()> {
        let mut pos = 0u64;
        while pos + HEADER_LEN as u64 <= seg.size {
            let (header, bytes) = self.batch_at(seg, pos)?;
            let batch =
                RecordBatch::parse(bytes).map_err(|e| self.invalid(header.base_offset, e))?;
            let at = pos;
            pos += header.total_len() as u64;
            each(at, batch, pos == seg.size)?;
        }
        Ok(())
    }

    /// Writes the cleaned version of `seg` to `<base>.cleaned` and fsyncs it; `None` (and
    /// no file) when nothing in it changes. The file is created at the first change, with
    /// the untouched batches before it copied then, so unchanged segments cost no writes.
    pub(super) fn clean_segment(
        &self,
        plan: &Plan,
        seg: &Cleanable,
        map: &OffsetMap,
        now_ms: i64,
        pass: &mut Pass,
    ) -> Result<Option<Segment>> {
        let cleaned_path = Segment::cleaned_path(&self.dir, seg.base);
        let cleaned_path = &cleaned_path;
        let io = |action| move |e| Error::io(action, cleaned_path, e);
        let mut out: Option<Segment> = None;
        // Positions of the untouched batches before the first change.
        let mut untouched: Vec<u64> = Vec::new();
        let result = self.for_each_batch(seg, |pos, batch, last_in_segment| {
            let verdict = self.judge(plan, map, &batch, last_in_segment, now_ms, pass)?;
            let bytes = match verdict {
                Verdict::Keep if out.is_none() => {
                    untouched.push(pos);
                    return Ok(());
                }
                Verdict::Keep => batch.as_bytes().clone(),
                Verdict::Replace(bytes) => bytes,
                Verdict::Drop => Bytes::new(),
            };
            let out = match &mut out {
                Some(out) => out,
                None => out.insert(self.start_cleaned(seg, &untouched)?),
            };
            if bytes.is_empty() {
                return Ok(());
            }
            let header =
                BatchHeader::parse(&bytes).map_err(|e| self.invalid(batch.base_offset(), e))?;
            out.append(&bytes, &header).map_err(io("writing"))
        });
        let Some(out) = out else {
            return result.map(|()| None);
        };
        if let Err(e) = result {
            let _ = std::fs::remove_file(out.log_path());
            return Err(e);
        }
        if out.next_offset != seg.next {
            // The last batch always stays, so this cannot happen; refuse to install.
            tracing::error!(topic = %self.topic, partition = self.id, base = seg.base,
                end = out.next_offset, expected = seg.next, "cleaned segment does not end where the original did; skipping it");
            std::fs::remove_file(out.log_path()).map_err(io("removing"))?;
            return Ok(None);
        }
        out.file().sync_data().map_err(io("fsyncing"))?;
        Ok(Some(out))
    }

    /// Creates `<base>.cleaned` holding copies of the batches of `seg` at `positions`.
    fn start_cleaned(&self, seg: &Cleanable, positions: &[u64]) -> Result<Segment> {
        let path = Segment::cleaned_path(&self.dir, seg.base);
        let mut out =
            Segment::create_cleaned(&self.dir, seg.base, self.config.index_interval_bytes)
                .map_err(|e| Error::io("creating", &path, e))?;
        let copied = positions.iter().try_for_each(|&pos| {
            let (header, bytes) = self.batch_at(seg, pos)?;
            out.append(&bytes, &header)
                .map_err(|e| Error::io("writing", &path, e))
        });
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(out)
    }

    /// Decides what becomes of one batch and counts the records it loses.
    fn judge(
        &self,
        plan: &Plan,
        map: &OffsetMap,
        batch: &RecordBatch,
        last_in_segment: bool,
        now_ms: i64,
        pass: &mut Pass,
    ) -> Result<Verdict> {
        let header = *batch.header();
        let invalid = |e| self.invalid(header.base_offset, e);
        if header.is_control() {
            if !self.marker_is_spent(plan, batch)? {
                return Ok(Verdict::Keep);
            }
            pass.stats.records_removed += header.record_count.max(0) as u64;
            return match last_in_segment {
                true => Ok(Verdict::Replace(
                    empty_batch(&header, false).map_err(invalid)?,
                )),
                false => Ok(Verdict::Drop),
            };
        }
        let aborted = plan.is_aborted(&header);
        let mut kept: Vec<Record> = Vec::new();
        let mut total = 0usize;
        if !aborted {
            // Expired once `max timestamp + delete retention < now`.
            let expiry = header
                .max_timestamp
                .saturating_add(self.config.delete_retention_ms)
                .saturating_add(1);
            let expired = expiry <= now_ms;
            for record in batch.records().map_err(invalid)? {
                let record = record.map_err(invalid)?;
                total += 1;
                let keep = match &record.key {
                    None => true,
                    Some(key) => {
                        let newest = map.newest.get(&key[..]).is_none_or(|&o| o == record.offset);
                        if newest && record.value.is_none() && !expired {
                            pass.next_expiry = pass.next_expiry.min(expiry);
                        }
                        newest && !(record.value.is_none() && expired)
                    }
                };
                if keep {
                    kept.push(record);
                }
            }
        } else {
            total = header.record_count.max(0) as usize;
        }
        pass.stats.records_removed += (total - kept.len()) as u64;
        if !aborted && kept.len() == total && total > 0 {
            return Ok(Verdict::Keep);
        }
        if !kept.is_empty() {
            return Ok(Verdict::Replace(rebuild(&header, &kept).map_err(invalid)?));
        }
        let producer_last = !aborted
            && header.has_producer_id()
            && map.producer_last.get(&header.producer_id) == Some(&header.last_offset());
        Ok(
            match (producer_last || last_in_segment, total == 0 && !aborted) {
                (false, _) => Verdict::Drop,
                (true, true) => Verdict::Keep, // already an empty batch
                (true, false) => {
                    Verdict::Replace(empty_batch(&header, producer_last).map_err(invalid)?)
                }
            },
        )
    }

    /// Whether a control batch is an abort marker whose transaction's data is all in the
    /// log (and is being removed by this pass), so the marker can go too.
    fn marker_is_spent(&self, plan: &Plan, batch: &RecordBatch) -> Result<bool> {
        let header = batch.header();
        let kind =
            crate::txn::control_type(batch).map_err(|e| self.invalid(header.base_offset, e))?;
        if kind != ControlType::Abort {
            return Ok(false);
        }
        let txn = plan
            .aborted
            .get(&header.producer_id)
            .and_then(|txns| txns.iter().find(|a| a.last_offset == header.base_offset));
        // No entry: the transaction wrote nothing here (or it was cleaned already).
        Ok(txn.is_none_or(|a| a.first_offset >= plan.log_start))
    }
}

/// `header`'s batch rebuilt with only `kept`: same base offset, last offset delta, producer
/// fields, attributes and partition leader epoch; each record at its original delta.
fn rebuild(header: &BatchHeader, kept: &[Record]) -> Result<Bytes, BatchError> {
    let mut builder = BatchBuilder::new()
        .with_compression(header.compression()?)
        .with_producer(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )
        .with_transactional(header.is_transactional())
        .with_timestamp_type(header.timestamp_type())
        .with_base_offset(header.base_offset)
        .with_last_offset_delta(header.last_offset_delta);
    for r in kept {
        builder.append_at(
            r.offset_delta,
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
    }
    Ok(with_leader_epoch(builder.build()?, header))
}

/// An empty batch covering `header`'s offsets: with its producer fields and transactional
/// bit when `keep_producer` (a producer's last batch), otherwise a plain one that no replay
/// or reader attributes to anyone.
fn empty_batch(header: &BatchHeader, keep_producer: bool) -> Result<Bytes, BatchError> {
    let mut builder = BatchBuilder::new()
        .with_base_offset(header.base_offset)
        .with_last_offset_delta(header.last_offset_delta)
        .with_max_timestamp(header.max_timestamp);
    if keep_producer {
        builder = builder
            .with_producer(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
            )
            .with_transactional(header.is_transactional());
    }
    Ok(with_leader_epoch(builder.build()?, header))
}

/// Puts back the partition leader epoch (outside the CRC) the builder does not set.
fn with_leader_epoch(bytes: Bytes, header: &BatchHeader) -> Bytes {
    let mut bytes = BytesMut::from(&bytes[..]);
    bytes[12..16].copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
    bytes.freeze()
}
