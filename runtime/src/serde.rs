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
}

impl<T> Serde<T> for std::sync::Arc<dyn Serde<T>> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>> {
        (**self).serialize(value)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T> {
        (**self).deserialize(bytes)
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
}
