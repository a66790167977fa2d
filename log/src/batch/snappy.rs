//! Snappy as Kafka clients write it. The Java client wraps raw snappy blocks in xerial
//! snappy-java's stream framing (`SnappyOutputStream`):
//!
//! ```text
//! magic "\x82SNAPPY\x00" | version i32 BE (1) | compatible version i32 BE (1) |
//! ( block length i32 BE | raw snappy block )*
//! ```
//!
//! librdkafka writes the same framing and, like xerial's `SnappyInputStream`, reads a body
//! without the magic as one raw snappy block. sluice writes the framing (32 KiB blocks, as
//! `SnappyOutputStream` does by default) and reads both.

use snap::raw::{Decoder, Encoder, decompress_len};

use super::BatchError;

/// The xerial stream magic.
const MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version and compatible version.
const HEADER_LEN: usize = 16;
/// Uncompressed bytes per block (xerial's default block size).
const BLOCK: usize = 32 * 1024;

fn error(reason: impl ToString) -> BatchError {
    BatchError::Compression {
        codec: "snappy",
        reason: reason.to_string(),
    }
}

/// Compresses `raw` into xerial-framed snappy.
pub(super) fn compress(raw: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(HEADER_LEN + raw.len() / 2 + 64);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = Encoder::new();
    for chunk in raw.chunks(BLOCK) {
        let block = encoder.compress_vec(chunk).map_err(error)?;
        let len = i32::try_from(block.len()).map_err(error)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Decompresses a framed or a raw snappy body, refusing one that expands past `limit` bytes
/// before allocating for it (every snappy block states its uncompressed length up front).
pub(super) fn decompress(compressed: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut decoder = Decoder::new();
    if !compressed.starts_with(&MAGIC) {
        let len = decompress_len(compressed).map_err(error)?;
        if len > limit {
            return Err(error(format!("records expand past {limit} bytes")));
        }
        return decoder.decompress_vec(compressed).map_err(error);
    }
    let Some(mut rest) = compressed.get(HEADER_LEN..) else {
        return Err(error(format!(
            "xerial snappy header of {} bytes (needs {HEADER_LEN})",
            compressed.len()
        )));
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(error(format!(
                "a truncated block length ({} bytes) at byte {}",
                rest.len(),
                compressed.len() - rest.len()
            )));
        };
        let len = i32::from_be_bytes(*len);
        let block = usize::try_from(len)
            .ok()
            .and_then(|len| tail.get(..len))
            .ok_or_else(|| {
                error(format!(
                    "block of {len} bytes at byte {} but {} bytes remain",
                    compressed.len() - rest.len(),
                    tail.len()
                ))
            })?;
        let expanded = decompress_len(block).map_err(error)?;
        if out.len().saturating_add(expanded) > limit {
            return Err(error(format!("records expand past {limit} bytes")));
        }
        let start = out.len();
        out.resize(start + expanded, 0);
        let written = decoder
            .decompress(block, &mut out[start..])
            .map_err(error)?;
        out.truncate(start + written);
        rest = &tail[block.len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_and_raw_bodies_both_decode() {
        let raw: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let framed = compress(&raw).unwrap_or_default();
        assert!(framed.starts_with(&MAGIC));
        assert_eq!(decompress(&framed, 1 << 20).ok(), Some(raw.clone()));
        let unframed = Encoder::new().compress_vec(&raw).unwrap_or_default();
        assert_eq!(decompress(&unframed, 1 << 20).ok(), Some(raw.clone()));
        assert!(decompress(&framed, 1000).is_err(), "the limit holds");
        assert!(decompress(&unframed, 1000).is_err(), "the limit holds");
        assert_eq!(
            decompress(&compress(&[]).unwrap_or_default(), 10).ok(),
            Some(vec![])
        );
    }

    #[test]
    fn damaged_frames_are_errors() {
        let framed = compress(b"hello hello hello hello").unwrap_or_default();
        for cut in 0..framed.len() {
            let _ = decompress(&framed[..cut], 1 << 20);
        }
        assert!(decompress(&framed[..framed.len() - 1], 1 << 20).is_err());
        assert!(decompress(&framed[..10], 1 << 20).is_err());
        let mut negative = framed.clone();
        negative[16..20].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decompress(&negative, 1 << 20).is_err());
        assert!(decompress(b"\xff\xff\xff\xff\xff\xff", 1 << 20).is_err());
    }
}
