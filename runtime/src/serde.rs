//! Serdes: how keys and values become bytes in topics and state stores. [`Serde`] is the
//! trait; the implementations cover serde + bincode 2 (the default for Rust types), JSON,
//! UTF-8 strings, raw bytes and big-endian integers (whose bytes sort like the numbers, so
//! range scans over them follow numeric order for non-negative values).

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;

use crate::error::{Error, Result};

/// Turns values of `T` into bytes and back.
pub trait Serde<T>: Send + Sync + fmt::Debug {
    /// Encodes a value.
    fn serialize(&self, value: &T) -> Result<Vec<u8>>;
    /// Decodes a value; bad input is an error naming the type, never a panic.
    fn deserialize(&self, bytes: &[u8]) -> Result<T>;
    /// Encodes a record value for a topic, where `None` is a null value (Kafka's tombstone).
    /// Only [`OptionSerde`] ever writes a null; every other serde writes its bytes.
    fn serialize_nullable(&self, value: &T) -> Result<Option<Vec<u8>>> {
        self.serialize(value).map(Some)
    }
    /// Decodes a record value read from a topic, where `None` is a null value. A serde that
    /// has no null decodes it as empty bytes (so `()` and `""` read back from a null).
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<T> {
        self.deserialize(bytes.unwrap_or_default())
    }
}

impl<T> Serde<T> for std::sync::Arc<dyn Serde<T>> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>> {
        (**self).serialize(value)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T> {
        (**self).deserialize(bytes)
    }
    fn serialize_nullable(&self, value: &T) -> Result<Option<Vec<u8>>> {
        (**self).serialize_nullable(value)
    }
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<T> {
        (**self).deserialize_nullable(bytes)
    }
}

/// `Option<T>` over the serde of `T`. In a topic, `None` is a null value (a tombstone, as a
/// table's delete is written in Kafka) and `Some(v)` is exactly `v`'s bytes, so a reader
/// that does not expect deletes reads the same bytes. In a state store (no nulls there) a
/// one-byte tag comes first: 0 for `None`, 1 for `Some`.
pub struct OptionSerde<T>(pub std::sync::Arc<dyn Serde<T>>);

impl<T> fmt::Debug for OptionSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OptionSerde<{:?}>", self.0)
    }
}

impl<T> Serde<Option<T>> for OptionSerde<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Vec<u8>> {
        match value {
            None => Ok(vec![0]),
            Some(v) => {
                let mut out = vec![1];
                out.extend(self.0.serialize(v)?);
                Ok(out)
            }
        }
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Option<T>> {
        match bytes.split_first() {
            Some((0, [])) => Ok(None),
            Some((1, rest)) => self.0.deserialize(rest).map(Some),
            _ => Err(Error::Serde {
                type_name: type_name::<Option<T>>(),
                reason: format!("expected a tag byte 0 or 1, found {:?}", bytes.first()),
            }),
        }
    }
    fn serialize_nullable(&self, value: &Option<T>) -> Result<Option<Vec<u8>>> {
        value.as_ref().map(|v| self.0.serialize(v)).transpose()
    }
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<Option<T>> {
        bytes.map(|b| self.0.deserialize(b)).transpose()
    }
}

fn type_name<T>() -> &'static str {
    std::any::type_name::<T>()
}

/// serde + bincode 2 (standard config): compact, for any `Serialize + Deserialize` type.
pub struct BincodeSerde<T>(PhantomData<fn() -> T>);

impl<T> Default for BincodeSerde<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T> fmt::Debug for BincodeSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BincodeSerde<{}>", type_name::<T>())
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Serde<T> for BincodeSerde<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| {
            Error::Serde {
                type_name: type_name::<T>(),
                reason: e.to_string(),
            }
        })
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| Error::Serde {
            type_name: type_name::<T>(),
            reason: e.to_string(),
        })?;
        if read != bytes.len() {
            return Err(Error::Serde {
                type_name: type_name::<T>(),
                reason: format!("{} trailing bytes", bytes.len() - read),
            });
        }
        Ok(value)
    }
}

/// serde + JSON (serde_json): readable by other tools.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T> fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSerde<{}>", type_name::<T>())
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| Error::Serde {
            type_name: type_name::<T>(),
            reason: e.to_string(),
        })
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::Serde {
            type_name: type_name::<T>(),
            reason: e.to_string(),
        })
    }
}

/// UTF-8 strings, as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Vec<u8>> {
        Ok(value.as_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::Serde {
            type_name: "String",
            reason: e.to_string(),
        })
    }
}

/// Raw bytes, as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize(&self, value: &Bytes) -> Result<Vec<u8>> {
        Ok(value.to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Vec<u8>> {
        Ok(value.clone())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
}

/// Fixed-width big-endian integers (Kafka's `IntegerSerde`, `LongSerde`, ...).
#[derive(Debug, Default, Clone, Copy)]
pub struct BigEndianSerde;

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl Serde<$t> for BigEndianSerde {
            fn serialize(&self, value: &$t) -> Result<Vec<u8>> {
                Ok(value.to_be_bytes().to_vec())
            }
            fn deserialize(&self, bytes: &[u8]) -> Result<$t> {
                let array = <[u8; std::mem::size_of::<$t>()]>::try_from(bytes).map_err(|_| Error::Serde {
                    type_name: stringify!($t),
                    reason: format!("expected {} bytes, got {}", std::mem::size_of::<$t>(), bytes.len()),
                })?;
                Ok(<$t>::from_be_bytes(array))
            }
        }
    )*};
}

big_endian!(i16, i32, i64, u16, u32, u64);

/// The unit type, for topics without keys: no bytes at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &()) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn deserialize(&self, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u64,
        item: String,
        qty: i32,
    }

    proptest! {
        #[test]
        fn every_serde_round_trips(id in any::<u64>(), item in ".{0,20}", qty in any::<i32>(), raw in prop::collection::vec(any::<u8>(), 0..40)) {
            let order = Order { id, item: item.clone(), qty };
            let bin = BincodeSerde::<Order>::default();
            prop_assert_eq!(bin.deserialize(&bin.serialize(&order)?)?, order.clone());
            let json = JsonSerde::<Order>::default();
            prop_assert_eq!(json.deserialize(&json.serialize(&order)?)?, order);
            prop_assert_eq!(StringSerde.deserialize(&StringSerde.serialize(&item)?)?, item);
            let bytes = Bytes::from(raw);
            prop_assert_eq!(Serde::<Bytes>::deserialize(&BytesSerde, &Serde::<Bytes>::serialize(&BytesSerde, &bytes)?)?, bytes);
            prop_assert_eq!(Serde::<i32>::deserialize(&BigEndianSerde, &Serde::<i32>::serialize(&BigEndianSerde, &qty)?)?, qty);
            prop_assert_eq!(Serde::<u64>::deserialize(&BigEndianSerde, &Serde::<u64>::serialize(&BigEndianSerde, &id)?)?, id);
        }

        #[test]
        fn big_endian_bytes_sort_like_unsigned_numbers(a in any::<u64>(), b in any::<u64>()) {
            let (x, y) = (Serde::<u64>::serialize(&BigEndianSerde, &a)?, Serde::<u64>::serialize(&BigEndianSerde, &b)?);
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }
    }

    #[test]
    fn bad_input_is_an_error_naming_the_type() {
        let err = Serde::<i64>::deserialize(&BigEndianSerde, &[1, 2, 3])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("i64") && e.contains("expected 8 bytes")));
        assert!(StringSerde.deserialize(&[0xff, 0xfe]).is_err());
        assert!(BincodeSerde::<Order>::default().deserialize(&[1]).is_err());
        assert!(JsonSerde::<Order>::default().deserialize(b"{").is_err());
    }

    #[test]
    fn option_serde_writes_none_as_a_null_value_and_some_as_the_plain_bytes() {
        let serde = OptionSerde::<String>(std::sync::Arc::new(StringSerde));
        assert_eq!(serde.serialize_nullable(&None).ok(), Some(None));
        assert_eq!(
            serde.serialize_nullable(&Some("a".into())).ok(),
            Some(Some(b"a".to_vec()))
        );
        assert_eq!(serde.deserialize_nullable(None).ok(), Some(None));
        assert_eq!(
            serde.deserialize_nullable(Some(b"")).ok(),
            Some(Some(String::new()))
        );
        for value in [None, Some(String::new()), Some("x".into())] {
            let bytes = serde.serialize(&value).unwrap_or_default();
            assert_eq!(serde.deserialize(&bytes).ok(), Some(value));
        }
        assert!(serde.deserialize(&[]).is_err() && serde.deserialize(&[0, 1]).is_err());
        // A serde without nulls reads a null as empty bytes, as before.
        assert_eq!(
            StringSerde.deserialize_nullable(None).ok(),
            Some(String::new())
        );
    }
}
