//! Kafka's variable-length integers: zig-zag encoded, 7 bits a byte, as protobuf's `sint32` and
//! `sint64`. The arithmetic comes from the `integer-encoding` crate; this module adds bounds
//! checks that name what was being read, so a truncated record gives a clear error.

use integer_encoding::VarInt;

use crate::batch::BatchError;

/// Appends `value` as a zig-zag varint (Kafka's `writeVarint`).
pub(crate) fn put_i32(buf: &mut Vec<u8>, value: i32) {
    let mut scratch = [0u8; 5];
    let n = value.encode_var(&mut scratch);
    buf.extend_from_slice(&scratch[..n]);
}

/// Appends `value` as a zig-zag varlong (Kafka's `writeVarlong`).
pub(crate) fn put_i64(buf: &mut Vec<u8>, value: i64) {
    let mut scratch = [0u8; 10];
    let n = value.encode_var(&mut scratch);
    buf.extend_from_slice(&scratch[..n]);
}

/// The number of bytes `value` takes as a zig-zag varint.
pub(crate) fn len_i32(value: i32) -> usize {
    value.required_space()
}

/// The number of bytes `value` takes as a zig-zag varlong.
pub(crate) fn len_i64(value: i64) -> usize {
    value.required_space()
}

/// Reads an unsigned LEB128 value of at most `max_bytes` bytes at `*pos`. Kafka's lengths and
/// deltas are nearly always one byte, so that case is tried first; this runs for every field
/// of every produced record, which is why it is written out here rather than called through
/// `integer-encoding` (whose decoder does not inline across the crate boundary).
#[inline(always)]
fn get_raw(
    buf: &[u8],
    pos: &mut usize,
    max_bytes: usize,
    field: &'static str,
) -> Result<u64, BatchError> {
    let mut at = *pos;
    let first = *buf.get(at).ok_or(BatchError::BadVarint { field })?;
    if first < 0x80 {
        *pos = at + 1;
        return Ok(u64::from(first));
    }
    let mut value = u64::from(first & 0x7f);
    let mut shift = 7;
    for _ in 1..max_bytes {
        at += 1;
        let byte = *buf.get(at).ok_or(BatchError::BadVarint { field })?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            *pos = at + 1;
            return Ok(value);
        }
        shift += 7;
    }
    Err(BatchError::BadVarint { field })
}

/// Reads a zig-zag varint at `*pos`, advancing it. `field` names the field for the error.
#[inline]
pub(crate) fn get_i32(buf: &[u8], pos: &mut usize, field: &'static str) -> Result<i32, BatchError> {
    let raw = get_raw(buf, pos, 5, field)?;
    let raw = u32::try_from(raw).map_err(|_| BatchError::BadVarint { field })?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag varlong at `*pos`, advancing it. `field` names the field for the error.
#[inline]
pub(crate) fn get_i64(buf: &[u8], pos: &mut usize, field: &'static str) -> Result<i64, BatchError> {
    let raw = get_raw(buf, pos, 10, field)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka_zigzag_encoding() {
        // From Kafka's ByteUtilsTest: 0 -> 00, -1 -> 01, 1 -> 02, 63 -> 7e, -64 -> 7f, 64 -> 80 01.
        for (value, bytes) in [
            (0, vec![0x00]),
            (-1, vec![0x01]),
            (1, vec![0x02]),
            (63, vec![0x7e]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
            (i32::MAX, vec![0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
        ] {
            let mut buf = Vec::new();
            put_i32(&mut buf, value);
            assert_eq!(buf, bytes, "encoding {value}");
            assert_eq!(len_i32(value), bytes.len());
            let mut pos = 0;
            assert_eq!(get_i32(&buf, &mut pos, "test").ok(), Some(value));
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn decoding_agrees_with_integer_encoding() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = Vec::new();
            put_i64(&mut buf, value);
            let mut pos = 0;
            assert_eq!(get_i64(&buf, &mut pos, "test").ok(), Some(value));
            assert_eq!(pos, buf.len());
        }
        // Six bytes is too long for an i32.
        let mut pos = 0;
        assert!(get_i32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &mut pos, "test").is_err());
    }

    #[test]
    fn truncated_varint_is_an_error() {
        let mut pos = 0;
        assert!(get_i32(&[0x80], &mut pos, "key length").is_err());
        assert!(get_i64(&[], &mut pos, "timestamp delta").is_err());
    }
}
