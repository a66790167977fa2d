//! Compression codecs of the batch attributes (bits 0-2), all five of Kafka's: none, gzip
//! (via `flate2`), snappy (via `snap`, in the xerial framing Kafka's clients use; see
//! `snappy.rs`), lz4 (the LZ4 frame format Kafka uses, via `lz4_flex`) and zstd (via the
//! `zstd` crate, zstd's own C library). Decompression stops at [`MAX_DECOMPRESSED`] bytes.

use std::io::{Read, Write};

use super::BatchError;

/// A batch's compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Records stored as they are.
    #[default]
    None,
    /// gzip (Kafka's id 1).
    Gzip,
    /// snappy, xerial-framed as Kafka's clients write it (Kafka's id 2).
    Snappy,
    /// The LZ4 frame format (Kafka's id 3).
    Lz4,
    /// Zstandard (Kafka's id 4).
    Zstd,
}

impl Compression {
    /// The codec for an attributes id.
    pub fn from_id(id: i16) -> Result<Self, BatchError> {
        match id {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// The id in the attributes.
    pub fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// Parses `none`, `gzip`, `snappy`, `lz4` or `zstd` (as the CLI and configs spell them).
    pub fn from_name(name: &str) -> Result<Self, BatchError> {
        match name {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "snappy" => Ok(Self::Snappy),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            _ => Err(BatchError::Compression {
                codec: "unknown",
                reason: format!(
                    "unknown codec name `{name}` (expected none, gzip, snappy, lz4 or zstd)"
                ),
            }),
        }
    }

    fn error(self, reason: impl ToString) -> BatchError {
        BatchError::Compression {
            codec: self.name(),
            reason: reason.to_string(),
        }
    }

    /// Compresses a batch body.
    pub(crate) fn compress(self, raw: &[u8]) -> Result<Vec<u8>, BatchError> {
        match self {
            Self::None => Ok(raw.to_vec()),
            Self::Lz4 => {
                let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(raw.len() / 2));
                enc.write_all(raw).map_err(|e| self.error(e))?;
                enc.finish().map_err(|e| self.error(e))
            }
            Self::Zstd => zstd::bulk::compress(raw, 3).map_err(|e| self.error(e)),
            Self::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(raw.len() / 2),
                    flate2::Compression::default(),
                );
                enc.write_all(raw).map_err(|e| self.error(e))?;
                enc.finish().map_err(|e| self.error(e))
            }
            Self::Snappy => super::snappy::compress(raw),
        }
    }

    /// Decompresses a batch body, refusing one that expands past [`MAX_DECOMPRESSED`]
    /// (a decompression bomb must not exhaust the broker's memory).
    pub(crate) fn decompress(self, compressed: &[u8]) -> Result<Vec<u8>, BatchError> {
        let mut out = Vec::with_capacity(compressed.len().saturating_mul(3).min(MAX_DECOMPRESSED));
        let limit = MAX_DECOMPRESSED as u64 + 1;
        match self {
            Self::None => out.extend_from_slice(compressed),
            Self::Lz4 => {
                lz4_flex::frame::FrameDecoder::new(compressed)
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(|e| self.error(e))?;
            }
            Self::Zstd => {
                zstd::stream::read::Decoder::new(compressed)
                    .and_then(|d| d.take(limit).read_to_end(&mut out))
                    .map_err(|e| self.error(e))?;
            }
            Self::Gzip => {
                // Several gzip members one after the other read as one stream, as Java's
                // `GZIPInputStream` reads them.
                flate2::read::MultiGzDecoder::new(compressed)
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(|e| self.error(e))?;
            }
            Self::Snappy => out = super::snappy::decompress(compressed, MAX_DECOMPRESSED)?,
        }
        if out.len() > MAX_DECOMPRESSED {
            return Err(self.error(format!("records expand past {MAX_DECOMPRESSED} bytes")));
        }
        Ok(out)
    }
}

/// The most bytes a compressed batch may expand to (64 MiB; the broker's largest batch is
/// far smaller, so only a decompression bomb reaches it).
pub const MAX_DECOMPRESSED: usize = 64 << 20;
