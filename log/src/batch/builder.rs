//! [`BatchBuilder`]: writes a v2 batch record by record into one buffer, so an uncompressed
//! batch is never copied after its records are appended. The producer, the tests and the CLI
//! all build batches here.

use bytes::Bytes;

use super::{
    ATTRIBUTES_OFFSET, BatchError, CONTROL_BIT, CRC_OFFSET, Compression, HEADER_LEN, Header,
    LOG_OVERHEAD, MAGIC, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT, TimestampType, compute_crc,
};
use crate::varint;

/// Builds one record batch. Configure with the `with_*` methods, [`append`](Self::append)
/// records, then [`build`](Self::build).
///
/// ```
/// use sluice_log::batch::{BatchBuilder, RecordBatch};
/// let mut b = BatchBuilder::new();
/// b.append(1_700_000_000_000, Some(b"k"), Some(b"v"), &[]);
/// let batch = RecordBatch::parse(b.build().unwrap()).unwrap();
/// assert_eq!(batch.record_count(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    timestamp_type: TimestampType,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    base_offset: i64,
    /// `lastOffsetDelta` to write instead of `count - 1` (compacted batches).
    last_offset_delta: Option<i32>,
    /// The next offset delta [`append`](Self::append) uses.
    next_delta: i32,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty, uncompressed, non-idempotent batch.
    pub fn new() -> Self {
        Self::with_capacity(1024)
    }

    /// An empty batch whose buffer has room for `bytes` before it grows.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_LEN));
        buf.resize(HEADER_LEN, 0);
        Self {
            buf,
            compression: Compression::None,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            timestamp_type: TimestampType::CreateTime,
            base_timestamp: 0,
            max_timestamp: -1,
            count: 0,
            base_offset: 0,
            last_offset_delta: None,
            next_delta: 0,
        }
    }

    /// Sets the compression codec applied by [`build`](Self::build).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Marks the batch as written by idempotent producer `producer_id` at `epoch`, its first
    /// record carrying `base_sequence`.
    pub fn with_producer(mut self, producer_id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the transactional attribute bit.
    pub fn with_transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Sets the control attribute bit (transaction markers).
    pub fn with_control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Sets the timestamp type bit. Under `LogAppendTime` readers give every record the
    /// batch's max timestamp.
    pub fn with_timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Sets the base offset written by [`build`](Self::build) (default 0, which the log
    /// overwrites on append). Used when the log rewrites a stored batch (compaction).
    pub fn with_base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets `lastOffsetDelta` instead of deriving it from the record count: a compacted batch
    /// keeps its original last offset although records before it were removed, and a batch
    /// may be left with no records at all. Covered by the CRC, so it must be set before
    /// [`build`](Self::build).
    pub fn with_last_offset_delta(mut self, last_offset_delta: i32) -> Self {
        self.last_offset_delta = Some(last_offset_delta);
        self
    }

    /// Raises the batch's `maxTimestamp` to at least `timestamp` (for a batch left without
    /// records, whose timestamps would otherwise be lost).
    pub fn with_max_timestamp(mut self, timestamp: i64) -> Self {
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self
    }

    /// Records appended so far.
    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the batch so far, uncompressed, header included.
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The first record's timestamp, from which the others are deltas.
    pub fn base_timestamp(&self) -> i64 {
        self.base_timestamp
    }

    /// Upper bound of the bytes one more record adds (varint widths at their largest deltas).
    pub fn estimate_record_size(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> usize {
        let headers: usize = headers
            .iter()
            .map(|h| 10 + h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        5 + 1
            + 10
            + 5
            + 5
            + key.map_or(0, <[u8]>::len)
            + 5
            + value.map_or(0, <[u8]>::len)
            + 5
            + headers
    }

    /// Appends a record with the given timestamp (ms), key, value and headers, at the offset
    /// delta after the previous record's.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        self.append_at(self.next_delta, timestamp, key, value, headers);
    }

    /// Appends a record at `offset_delta` from the base offset. Deltas must rise from record
    /// to record but may skip values, as in a compacted batch (v2 allows the gaps); set
    /// [`with_last_offset_delta`](Self::with_last_offset_delta) when the batch's last offset
    /// lies past its last record.
    pub fn append_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let field_len = |b: Option<&[u8]>| match b {
            Some(b) => varint::len_i32(b.len() as i32) + b.len(),
            None => 1,
        };
        let mut body_len = 1
            + varint::len_i64(timestamp_delta)
            + varint::len_i32(offset_delta)
            + field_len(key)
            + field_len(value)
            + varint::len_i32(headers.len() as i32);
        for h in headers {
            body_len += field_len(Some(h.key.as_bytes())) + field_len(h.value.as_deref());
        }
        let buf = &mut self.buf;
        buf.reserve(body_len + 5);
        varint::put_i32(buf, body_len as i32);
        buf.push(0);
        varint::put_i64(buf, timestamp_delta);
        varint::put_i32(buf, offset_delta);
        put_nullable(buf, key);
        put_nullable(buf, value);
        varint::put_i32(buf, headers.len() as i32);
        for h in headers {
            put_nullable(buf, Some(h.key.as_bytes()));
            put_nullable(buf, h.value.as_deref());
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.count += 1;
        self.next_delta = offset_delta.saturating_add(1);
    }

    /// Finishes the batch: compresses the records if asked, fills the header (base offset 0
    /// unless set, which the log overwrites on append) and computes the CRC.
    pub fn build(self) -> Result<Bytes, BatchError> {
        let mut buf = if self.compression == Compression::None {
            self.buf
        } else {
            let compressed = self.compression.compress(&self.buf[HEADER_LEN..])?;
            let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
            out.resize(HEADER_LEN, 0);
            out.extend_from_slice(&compressed);
            out
        };
        let mut attributes = self.compression.id();
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        let last_offset_delta = self
            .last_offset_delta
            .unwrap_or_else(|| (self.next_delta - 1).max(0));
        let batch_length = (buf.len() - LOG_OVERHEAD) as i32;
        buf[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
        buf[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        buf[16] = MAGIC as u8;
        buf[ATTRIBUTES_OFFSET..23].copy_from_slice(&attributes.to_be_bytes());
        buf[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
        buf[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        buf[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        buf[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        buf[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        buf[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        buf[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = compute_crc(&buf);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::from(buf))
    }
}

fn put_nullable(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            varint::put_i32(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
        None => varint::put_i32(buf, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RecordBatch;

    #[test]
    fn a_batch_with_offset_gaps_keeps_its_last_offset_and_a_valid_crc() {
        let mut b = BatchBuilder::new()
            .with_compression(Compression::Lz4)
            .with_producer(9, 2, 40)
            .with_base_offset(100)
            .with_last_offset_delta(7);
        b.append_at(2, 1_000, Some(b"a"), Some(b"1"), &[]);
        b.append_at(5, 1_005, Some(b"b"), None, &[]);
        let bytes = b.build().unwrap_or_default();
        let batch = RecordBatch::parse(bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((batch.base_offset(), batch.last_offset()), (100, 107));
        assert_eq!(batch.record_count(), 2);
        assert_eq!(batch.header().last_sequence(), 47);
        let offsets: Vec<(i64, i64)> = batch
            .records()
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|r| r.map(|r| (r.offset, r.timestamp)).unwrap_or((-1, -1)))
            .collect();
        assert_eq!(offsets, [(102, 1_000), (105, 1_005)]);

        let empty = BatchBuilder::new()
            .with_last_offset_delta(3)
            .with_max_timestamp(77)
            .build()
            .unwrap_or_default();
        let empty = RecordBatch::parse(empty).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((empty.record_count(), empty.last_offset()), (0, 3));
        assert_eq!(empty.header().max_timestamp, 77);
    }
}
