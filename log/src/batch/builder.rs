//! [`BatchBuilder`]: writes a v2 batch record by record into one buffer, so an uncompressed
//! batch is never copied after its records are appended. The producer, the tests and the CLI
//! all build batches here.

use bytes::Bytes;

use super::{
    ATTRIBUTES_OFFSET, BatchError, CONTROL_BIT, CRC_OFFSET, Compression, HEADER_LEN, Header,
    LOG_OVERHEAD, MAGIC, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, TRANSACTIONAL_BIT,
    compute_crc,
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
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
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
            base_timestamp: 0,
            max_timestamp: -1,
            count: 0,
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

    /// Appends a record with the given timestamp (ms), key, value and headers.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        let offset_delta = self.count;
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
    }

    /// Finishes the batch: compresses the records if asked, fills the header (base offset 0,
    /// which the log overwrites) and computes the CRC.
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
        let batch_length = (buf.len() - LOG_OVERHEAD) as i32;
        buf[0..8].copy_from_slice(&0i64.to_be_bytes());
        buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
        buf[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        buf[16] = MAGIC as u8;
        buf[ATTRIBUTES_OFFSET..23].copy_from_slice(&attributes.to_be_bytes());
        buf[23..27].copy_from_slice(&(self.count - 1).max(0).to_be_bytes());
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
