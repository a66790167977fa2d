//! One record inside a v2 batch, and the iterator that decodes them from a batch's body.
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value | headerCount varint |
//! (headerKeyLength varint | headerKey | headerValueLength varint | headerValue)*
//! ```
//! A length of -1 means null. Keys and values are slices of the batch's shared bytes: decoding a
//! record copies nothing.

use bytes::Bytes;

use super::{BatchError, BatchHeader, TimestampType};
use crate::varint;

/// A record header: a string key and optional bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// Its value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// A decoded record with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset: the batch's base offset plus the record's delta.
    pub offset: i64,
    /// Position within the batch.
    pub offset_delta: i32,
    /// Absolute timestamp (ms since the epoch).
    pub timestamp: i64,
    /// The key; `None` is Kafka's null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers, in order.
    pub headers: Vec<Header>,
}

/// Iterates the records of a batch body (already decompressed). Stops after the header's
/// record count, or at the first malformed record, which it yields as an error.
#[derive(Debug)]
pub struct RecordIter {
    body: Bytes,
    pos: usize,
    index: usize,
    remaining: usize,
    header: BatchHeader,
    failed: bool,
}

impl RecordIter {
    pub(super) fn new(body: Bytes, header: BatchHeader) -> Self {
        Self {
            body,
            pos: 0,
            index: 0,
            remaining: header.record_count.max(0) as usize,
            header,
            failed: false,
        }
    }

    fn bad(&self, reason: impl Into<String>) -> BatchError {
        BatchError::BadRecord {
            index: self.index,
            reason: reason.into(),
        }
    }

    fn nullable_bytes(
        &self,
        pos: &mut usize,
        end: usize,
        field: &'static str,
    ) -> Result<Option<Bytes>, BatchError> {
        let len = varint::get_i32(&self.body[..end], pos, field)?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                Err(self.bad(format!("{field} {len} is negative")))
            };
        }
        let len = len as usize;
        if *pos + len > end {
            return Err(self.bad(format!("{field} {len} runs past the record's end")));
        }
        let out = self.body.slice(*pos..*pos + len);
        *pos += len;
        Ok(Some(out))
    }

    fn decode_one(&mut self) -> Result<Record, BatchError> {
        let mut pos = self.pos;
        let body_len = varint::get_i32(&self.body, &mut pos, "record length")?;
        if body_len < 0 {
            return Err(self.bad(format!("record length {body_len} is negative")));
        }
        let end = pos + body_len as usize;
        if end > self.body.len() {
            return Err(self.bad(format!(
                "record length {body_len} runs past the batch ({} bytes left)",
                self.body.len() - pos
            )));
        }
        let bytes = &self.body[..end];
        if pos >= end {
            return Err(self.bad("record has no attributes byte"));
        }
        pos += 1; // attributes: unused in v2
        let timestamp_delta = varint::get_i64(bytes, &mut pos, "timestamp delta")?;
        let offset_delta = varint::get_i32(bytes, &mut pos, "offset delta")?;
        let key = self.nullable_bytes(&mut pos, end, "key length")?;
        let value = self.nullable_bytes(&mut pos, end, "value length")?;
        let header_count = varint::get_i32(bytes, &mut pos, "header count")?;
        if header_count < 0 {
            return Err(self.bad(format!("header count {header_count} is negative")));
        }
        let mut headers = Vec::with_capacity((header_count as usize).min(16));
        for _ in 0..header_count {
            let name = self
                .nullable_bytes(&mut pos, end, "header key length")?
                .ok_or_else(|| self.bad("header key is null"))?;
            let key = String::from_utf8(name.to_vec())
                .map_err(|_| self.bad("header key is not UTF-8"))?;
            let value = self.nullable_bytes(&mut pos, end, "header value length")?;
            headers.push(Header { key, value });
        }
        if pos != end {
            return Err(self.bad(format!("{} unread bytes after the headers", end - pos)));
        }
        self.pos = end;
        let timestamp = match self.header.timestamp_type() {
            TimestampType::CreateTime => self.header.base_timestamp.wrapping_add(timestamp_delta),
            TimestampType::LogAppendTime => self.header.max_timestamp,
        };
        Ok(Record {
            offset: self.header.base_offset + i64::from(offset_delta),
            offset_delta,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.pos < self.body.len() {
                self.failed = true;
                return Some(Err(BatchError::Inconsistent(format!(
                    "{} bytes after the last of {} records",
                    self.body.len() - self.pos,
                    self.header.record_count
                ))));
            }
            return None;
        }
        self.remaining -= 1;
        let result = self.decode_one();
        self.index += 1;
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Checks the framing of every record in a (decompressed) batch body without building any
/// record: lengths inside bounds, offset deltas 0, 1, 2, ... in order, the count the header
/// announces, nothing left over. Returns the largest record timestamp. This is the log's
/// per-batch check on produce, so it allocates nothing and touches no reference counts.
pub(crate) fn validate_body(body: &[u8], header: &BatchHeader) -> Result<i64, BatchError> {
    let bad = |index: usize, reason: String| BatchError::BadRecord { index, reason };
    let mut pos = 0usize;
    let mut max_delta = i64::MIN;
    let count = header.record_count.max(0) as usize;
    for index in 0..count {
        let len = varint::get_i32(body, &mut pos, "record length")?;
        let end = pos
            .checked_add(
                usize::try_from(len)
                    .map_err(|_| bad(index, format!("record length {len} is negative")))?,
            )
            .filter(|&end| end <= body.len())
            .ok_or_else(|| bad(index, format!("record length {len} runs past the batch")))?;
        let record = &body[..end];
        pos += 1; // attributes
        let timestamp_delta = varint::get_i64(record, &mut pos, "timestamp delta")?;
        let offset_delta = varint::get_i32(record, &mut pos, "offset delta")?;
        if offset_delta as usize != index {
            return Err(BatchError::Inconsistent(format!(
                "record {index} has offset delta {offset_delta}"
            )));
        }
        skip_field(record, &mut pos, index, "key length", true)?;
        skip_field(record, &mut pos, index, "value length", true)?;
        let headers = varint::get_i32(record, &mut pos, "header count")?;
        if headers < 0 {
            return Err(bad(index, format!("header count {headers} is negative")));
        }
        for _ in 0..headers {
            skip_field(record, &mut pos, index, "header key length", false)?;
            skip_field(record, &mut pos, index, "header value length", true)?;
        }
        if pos != end {
            return Err(bad(
                index,
                format!("record length {len} does not match its fields"),
            ));
        }
        max_delta = max_delta.max(timestamp_delta);
    }
    if pos != body.len() {
        return Err(BatchError::Inconsistent(format!(
            "{} bytes after the last of {count} records",
            body.len() - pos
        )));
    }
    Ok(header.base_timestamp.wrapping_add(max_delta))
}

/// Skips a length-prefixed field of record `index`; -1 (null) is allowed when `nullable`.
fn skip_field(
    record: &[u8],
    pos: &mut usize,
    index: usize,
    field: &'static str,
    nullable: bool,
) -> Result<(), BatchError> {
    let len = varint::get_i32(record, pos, field)?;
    if len == -1 && nullable {
        return Ok(());
    }
    let bad = |reason: String| BatchError::BadRecord { index, reason };
    let len = usize::try_from(len).map_err(|_| bad(format!("{field} {len} is negative")))?;
    if *pos + len > record.len() {
        return Err(bad(format!("{field} {len} runs past the record's end")));
    }
    *pos += len;
    Ok(())
}
