//! [`Data`]: a type that can be a key or a value in the DSL, with the serde used when an
//! operator is not given one (serdes are chosen by type). Strings are UTF-8, byte vectors
//! raw, fixed-width integers big-endian (so their bytes sort like the numbers), `()` empty;
//! `Option<T>` is `T`'s bytes or a null value (a tombstone); other standard types use
//! serde + bincode. Your own types: [`bincode_data!`] or
//! [`json_data!`], or implement the trait.
//!
//! ```
//! use sluice_dsl::{bincode_data, Data};
//! #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Order { id: u64, cents: i64 }
//! bincode_data!(Order);
//! let serde = Order::serde();
//! let bytes = serde.serialize(&Order { id: 1, cents: 250 }).unwrap();
//! assert_eq!(serde.deserialize(&bytes).unwrap(), Order { id: 1, cents: 250 });
//! ```

use std::sync::Arc;

use sluice_runtime::serde::{
    BigEndianSerde, BincodeSerde, BytesSerde, OptionSerde, Serde, StringSerde, UnitSerde,
};

/// A key or value type of the DSL, with its default serde.
pub trait Data: Clone + Send + Sync + 'static {
    /// The serde used unless an operator is given another.
    fn serde() -> Arc<dyn Serde<Self>>;
}

macro_rules! data_with {
    ($serde:expr => $($t:ty),*) => {$(
        impl Data for $t {
            fn serde() -> Arc<dyn Serde<Self>> {
                Arc::new($serde)
            }
        }
    )*};
}

data_with!(StringSerde => String);
data_with!(UnitSerde => ());
data_with!(BytesSerde => Vec<u8>, bytes::Bytes);
data_with!(BigEndianSerde => i16, i32, i64, u16, u32, u64);

macro_rules! data_bincode {
    ($($t:ty),*) => {$(
        impl Data for $t {
            fn serde() -> Arc<dyn Serde<Self>> {
                Arc::new(BincodeSerde::<$t>::default())
            }
        }
    )*};
}

data_bincode!(bool, u8, i8, f32, f64, char);

/// `None` is a null value in a topic (a tombstone), `Some(v)` is `v`'s bytes: see
/// [`OptionSerde`].
impl<T: Data> Data for Option<T> {
    fn serde() -> Arc<dyn Serde<Self>> {
        Arc::new(OptionSerde(T::serde()))
    }
}

impl<A, B> Data for (A, B)
where
    A: Data + serde::Serialize + serde::de::DeserializeOwned,
    B: Data + serde::Serialize + serde::de::DeserializeOwned,
{
    fn serde() -> Arc<dyn Serde<Self>> {
        Arc::new(BincodeSerde::<(A, B)>::default())
    }
}

/// Makes serde types [`Data`] with serde + bincode 2 as their serde.
#[macro_export]
macro_rules! bincode_data {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::Data for $t {
            fn serde() -> ::std::sync::Arc<dyn $crate::runtime::serde::Serde<Self>> {
                ::std::sync::Arc::new($crate::runtime::serde::BincodeSerde::<$t>::default())
            }
        }
    )*};
}

/// Makes serde types [`Data`] with JSON as their serde.
#[macro_export]
macro_rules! json_data {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::Data for $t {
            fn serde() -> ::std::sync::Arc<dyn $crate::runtime::serde::Serde<Self>> {
                ::std::sync::Arc::new($crate::runtime::serde::JsonSerde::<$t>::default())
            }
        }
    )*};
}
