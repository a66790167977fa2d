//! [`Change`]: what a table forwards downstream for each update of a key — its new value
//! and the value it replaces (`None` for "absent": a new key, or a delete). Tables carry
//! changes rather than plain values so that deletes travel (a filter that stops passing a
//! key deletes it downstream) and so that re-grouping a table can subtract the old value
//! from its old group before adding the new one (Kafka Streams' `Change<V>`).
//!
//! Also here: [`ListSerde`], the serde of the value lists that stream-stream joins buffer.

use std::fmt;
use std::sync::Arc;

use sluice_runtime::Error;
use sluice_runtime::serde::Serde;

use crate::Data;

/// One update of a table's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value now (`None`: the key was deleted).
    pub new: Option<V>,
    /// The value before (`None`: the key was absent).
    pub old: Option<V>,
}

impl<V: Data> Data for Change<V> {
    fn serde() -> Arc<dyn Serde<Self>> {
        Arc::new(ChangeSerde(V::serde()))
    }
}

/// Appends `value` length-prefixed (u32 big-endian), or a `u32::MAX` marker for `None`.
fn put_part(out: &mut Vec<u8>, value: Option<Vec<u8>>) -> sluice_runtime::Result<()> {
    match value {
        None => out.extend(u32::MAX.to_be_bytes()),
        Some(bytes) => {
            let len = u32::try_from(bytes.len())
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| serde_error("a value longer than 4 GiB".into()))?;
            out.extend(len.to_be_bytes());
            out.extend(bytes);
        }
    }
    Ok(())
}

/// Reads what `put_part` wrote from the front of `bytes`.
fn take_part<'a>(bytes: &mut &'a [u8]) -> sluice_runtime::Result<Option<&'a [u8]>> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| serde_error("truncated length".into()))?;
    let len = u32::from_be_bytes(*len);
    if len == u32::MAX {
        *bytes = rest;
        return Ok(None);
    }
    let len = len as usize;
    if rest.len() < len {
        return Err(serde_error(format!(
            "a part of {len} bytes with {} left",
            rest.len()
        )));
    }
    let (part, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(Some(part))
}

fn serde_error(reason: String) -> Error {
    Error::Serde {
        type_name: "sluice_dsl::Change",
        reason,
    }
}

/// A [`Change`] as the new and the old value, each length-prefixed with `V`'s serde (used
/// by the repartition topic of a table's `group_by`).
pub(crate) struct ChangeSerde<V>(pub Arc<dyn Serde<V>>);

impl<V> fmt::Debug for ChangeSerde<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChangeSerde<{:?}>", self.0)
    }
}

impl<V> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, change: &Change<V>) -> sluice_runtime::Result<Vec<u8>> {
        let mut out = Vec::new();
        for part in [&change.new, &change.old] {
            put_part(
                &mut out,
                part.as_ref().map(|v| self.0.serialize(v)).transpose()?,
            )?;
        }
        Ok(out)
    }
    fn deserialize(&self, mut bytes: &[u8]) -> sluice_runtime::Result<Change<V>> {
        let new = take_part(&mut bytes)?;
        let old = take_part(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(serde_error(format!("{} trailing bytes", bytes.len())));
        }
        Ok(Change {
            new: new.map(|b| self.0.deserialize(b)).transpose()?,
            old: old.map(|b| self.0.deserialize(b)).transpose()?,
        })
    }
}

/// A list of values, each length-prefixed with `V`'s serde.
pub(crate) struct ListSerde<V>(pub Arc<dyn Serde<V>>);

impl<V> fmt::Debug for ListSerde<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListSerde<{:?}>", self.0)
    }
}

impl<V> Serde<Vec<V>> for ListSerde<V> {
    fn serialize(&self, values: &Vec<V>) -> sluice_runtime::Result<Vec<u8>> {
        let mut out = Vec::new();
        for v in values {
            put_part(&mut out, Some(self.0.serialize(v)?))?;
        }
        Ok(out)
    }
    fn deserialize(&self, mut bytes: &[u8]) -> sluice_runtime::Result<Vec<V>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let part = take_part(&mut bytes)?
                .ok_or_else(|| serde_error("a missing value in a list".into()))?;
            out.push(self.0.deserialize(part)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn changes_and_lists_round_trip(new in proptest::option::of(".{0,8}"), old in proptest::option::of(".{0,8}"), list in proptest::collection::vec(".{0,8}", 0..5)) {
            let serde = Change::<String>::serde();
            let change = Change { new, old };
            prop_assert_eq!(serde.deserialize(&serde.serialize(&change)?)?, change);
            let lists = ListSerde(String::serde());
            prop_assert_eq!(lists.deserialize(&lists.serialize(&list)?)?, list);
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        let serde = Change::<String>::serde();
        assert!(serde.deserialize(&[0, 0, 0, 5, b'a']).is_err());
        assert!(serde.deserialize(&[0, 0]).is_err());
    }
}
