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

/// Reads a zig-zag varint at `*pos`, advancing it. `field` names the field for the error.
pub(crate) fn get_i32(buf: &[u8], pos: &mut usize, field: &'static str) -> Result<i32, BatchError> {
    let rest = buf.get(*pos..).unwrap_or(&[]);
    match i32::decode_var(rest) {
        Some((value, n)) if n <= 5 => {
            *pos += n;
            Ok(value)
        }
        _ => Err(BatchError::BadVarint { field }),
    }
}

/// Reads a zig-zag varlong at `*pos`, advancing it. `field` names the field for the error.
pub(crate) fn get_i64(buf: &[u8], pos: &mut usize, field: &'static str) -> Result<i64, BatchError> {
    let rest = buf.get(*pos..).unwrap_or(&[]);
    match i64::decode_var(rest) {
        Some((value, n)) if n <= 10 => {
            *pos += n;
            Ok(value)
        }
        _ => Err(BatchError::BadVarint { field }),
    }
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
    fn truncated_varint_is_an_error() {
        let mut pos = 0;
        assert!(get_i32(&[0x80], &mut pos, "key length").is_err());
        assert!(get_i64(&[], &mut pos, "timestamp delta").is_err());
    }
}
