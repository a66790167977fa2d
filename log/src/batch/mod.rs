//! Kafka's v2 record batch ("magic 2"), byte for byte: the unit the producer builds, the log
//! stores and the consumer reads, without re-encoding on the way (docs/architecture.md §2.1).
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 (=2) | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...
//! ```
//! All integers are big-endian; the CRC-32C covers everything from `attributes` to the end, so
//! the broker assigns offsets by overwriting the first 8 bytes without touching the CRC.
//!
//! [`BatchHeader`] reads and checks the fixed 61-byte header, [`RecordBatch`] is a checked batch
//! over shared bytes whose records can be iterated, and [`BatchBuilder`] writes new batches.

mod builder;
mod compression;
mod record;
mod snappy;

pub use builder::BatchBuilder;
pub use compression::{Compression, MAX_DECOMPRESSED};
pub use record::{Header, Record, RecordIter};

use bytes::Bytes;

/// Size of the fixed batch header; the first record starts here.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` ends: `baseOffset` and `batchLength` itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format sluice writes and reads.
pub const MAGIC: i8 = 2;
/// `producerId` of a batch from a producer without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch from a producer without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch from a producer without idempotence.
pub const NO_SEQUENCE: i32 = -1;

pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// What can be wrong with the bytes of a batch. The log wraps it with the topic, partition and
/// offset where it was found.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's `batchLength` promises.
    #[error("batch is truncated: needs {needed} bytes, has {available}")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// `batchLength` is too small to hold a header.
    #[error("batch length {0} is smaller than the {HEADER_LEN}-byte header")]
    BadLength(i32),
    /// The format version is not 2.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    BadMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The attributes name a codec sluice does not know.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    /// A codec Kafka knows that sluice does not implement (none today: all five are read
    /// and written).
    #[error("compression codec {0} is not supported")]
    UnsupportedCompression(&'static str),
    /// Compressed records failed to decompress, or to compress.
    #[error("{codec} (de)compression failed: {reason}")]
    Compression {
        /// The codec.
        codec: &'static str,
        /// What the codec said.
        reason: String,
    },
    /// A varint was cut short or too long.
    #[error("bad varint in record field `{field}`")]
    BadVarint {
        /// The field being read.
        field: &'static str,
    },
    /// A record's fields do not fit its length, or a length is negative where it must not be.
    #[error("malformed record {index}: {reason}")]
    BadRecord {
        /// Index of the record within the batch.
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// Header fields that contradict each other or the records.
    #[error("inconsistent batch: {0}")]
    Inconsistent(String),
}

/// Whether timestamps were set by the producer or by the log on append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Set by the producer (the default).
    #[default]
    CreateTime,
    /// Set by the log when it appended the batch.
    LogAppendTime,
}

/// The fixed 61-byte header of a v2 batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the partition when appended.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 once checked.
    pub magic: i8,
    /// CRC-32C of everything from `attributes` on.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Decodes the header at the start of `buf` without checking the CRC. Fails when `buf` is
    /// shorter than a header, the magic is not 2 or `batchLength` is below the header size.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let header = Self {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(header.batch_length));
        }
        if header.magic != MAGIC {
            return Err(BatchError::BadMagic(header.magic));
        }
        Ok(header)
    }

    /// Total bytes of the batch, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }
    /// Offset of the last record (`base + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    /// Offset after the batch: where the next batch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    /// The compression codec named by the attributes.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id(self.attributes & COMPRESSION_MASK)
    }
    /// Timestamp type bit.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    /// A control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    /// Written by an idempotent producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence of the last record, wrapping at `i32::MAX` to 0 as Kafka's do.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `sequence + increment`, wrapping from `i32::MAX` to 0 (Kafka's
/// `DefaultRecordBatch.incrementSequence`).
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Where `maxTimestamp` sits in a batch.
const MAX_TIMESTAMP_OFFSET: usize = 35;

/// Writes `max_timestamp` into a batch's header and recomputes its CRC.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    if batch.len() < HEADER_LEN {
        return;
    }
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Computes the CRC-32C a batch's header must carry: over everything from `attributes` on.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// A v2 record batch over shared bytes whose header, length and CRC have been checked.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl RecordBatch {
    /// Checks the batch at the start of `bytes` (length, magic, CRC, codec) and takes exactly
    /// its bytes; whatever follows is ignored. Use [`split_batches`] for a run of batches.
    pub fn parse(bytes: Bytes) -> Result<Self, BatchError> {
        let header = BatchHeader::parse(&bytes)?;
        let total = header.total_len();
        if bytes.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: bytes.len(),
            });
        }
        let bytes = bytes.slice(..total);
        let computed = compute_crc(&bytes);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        header.compression()?;
        if header.record_count < 0 {
            return Err(BatchError::Inconsistent(format!(
                "negative record count {}",
                header.record_count
            )));
        }
        Ok(Self { header, bytes })
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
    /// The batch's bytes, exactly as stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }
    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }
    /// Number of records the header announces.
    pub fn record_count(&self) -> i32 {
        self.header.record_count
    }
    /// Iterates the records, decompressing them first when the batch is compressed.
    pub fn records(&self) -> Result<RecordIter, BatchError> {
        let body = self.bytes.slice(HEADER_LEN..);
        let body = match self.header.compression()? {
            Compression::None => body,
            codec => Bytes::from(codec.decompress(&body)?),
        };
        Ok(RecordIter::new(body, self.header))
    }

    /// Decodes every record and checks that the records agree with the header: count, offset
    /// deltas 0..n in order, and no timestamp above `maxTimestamp` (for create-time batches).
    /// This is what the log runs on every produced batch.
    pub fn validate_records(&self) -> Result<(), BatchError> {
        match self.validate_records_max_timestamp()? {
            None => Ok(()),
            Some(max_ts) => Err(BatchError::Inconsistent(format!(
                "maxTimestamp {} but the records' largest is {max_ts}",
                self.header.max_timestamp
            ))),
        }
    }

    /// [`validate_records`](Self::validate_records), except that a create-time batch whose
    /// `maxTimestamp` is not its records' largest timestamp is accepted: the largest is
    /// returned, for the log to write into the header ([`set_max_timestamp`]), as Kafka's
    /// broker rewrites it (librdkafka sends `maxTimestamp` 0 for records stamped -1).
    pub fn validate_records_max_timestamp(&self) -> Result<Option<i64>, BatchError> {
        let header = &self.header;
        if header.record_count == 0 {
            return Err(BatchError::Inconsistent(
                "a batch must hold at least one record".into(),
            ));
        }
        if header.last_offset_delta != header.record_count - 1 {
            return Err(BatchError::Inconsistent(format!(
                "lastOffsetDelta {} but {} records",
                header.last_offset_delta, header.record_count
            )));
        }
        let body = &self.bytes[HEADER_LEN..];
        let max_ts = match header.compression()? {
            Compression::None => record::validate_body(body, header)?,
            codec => record::validate_body(&codec.decompress(body)?, header)?,
        };
        if header.timestamp_type() == TimestampType::CreateTime && max_ts != header.max_timestamp {
            return Ok(Some(max_ts));
        }
        Ok(None)
    }
}

/// Splits a buffer of consecutive batches (a fetch response, a segment read) into checked
/// batches. A partial batch at the end, as a `max_bytes` limit can leave, is dropped; a corrupt
/// batch is an error.
pub fn split_batches(mut bytes: Bytes) -> Result<Vec<RecordBatch>, BatchError> {
    let mut out = Vec::new();
    while bytes.len() >= LOG_OVERHEAD {
        let header = match BatchHeader::parse(&bytes) {
            Ok(h) => h,
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        };
        let total = header.total_len();
        if bytes.len() < total {
            break;
        }
        out.push(RecordBatch::parse(bytes.split_to(total))?);
    }
    Ok(out)
}

/// Overwrites a batch's `baseOffset` (not covered by the CRC).
pub(crate) fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}
