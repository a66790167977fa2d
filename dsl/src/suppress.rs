//! `Table::suppress`: holds back a table's updates and emits only the latest per key, when
//! a deadline in stream time is reached. [`Suppressed::until_window_closes`] emits each
//! window's final result once (stream time at its end plus grace); it needs a windowed
//! table and a strict buffer. [`Suppressed::until_time_limit`] emits a key's latest value
//! once stream time is `limit` past its first held update (rate limiting). The buffer lives
//! in stores with changelogs, so held updates survive a crash and are emitted exactly once.
//!
//! [`BufferConfig`] bounds the buffer by records and bytes: when full it either emits the
//! oldest held updates early (`until_time_limit` only) or fails the task, as Kafka Streams'
//! `shutDownWhenFull` does.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::{Serde, UnitSerde};
use sluice_runtime::topology::StoreSpec;

use crate::change::{Change, ChangeSerde};
use crate::windows::millis;
use crate::{Data, Table, Windowed};

/// What to do when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    EmitEarly,
    ShutDown,
}

/// The bounds of a suppression buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    when_full: WhenFull,
}

impl BufferConfig {
    /// No bound (the buffer grows with the number of held keys).
    pub fn unbounded() -> Self {
        Self {
            max_records: None,
            max_bytes: None,
            when_full: WhenFull::ShutDown,
        }
    }
    /// At most `n` held keys (and emit early when full, unless `shut_down_when_full`).
    pub fn max_records(n: u64) -> Self {
        Self {
            max_records: Some(n),
            max_bytes: None,
            when_full: WhenFull::EmitEarly,
        }
    }
    /// At most `n` bytes of held keys and values (and emit early when full, unless
    /// `shut_down_when_full`).
    pub fn max_bytes(n: u64) -> Self {
        Self {
            max_records: None,
            max_bytes: Some(n),
            when_full: WhenFull::EmitEarly,
        }
    }
    /// Also bound the bytes.
    pub fn with_max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }
    /// Also bound the records.
    pub fn with_max_records(mut self, n: u64) -> Self {
        self.max_records = Some(n);
        self
    }
    /// When full, emit the held updates with the nearest deadlines early.
    pub fn emit_early_when_full(mut self) -> Self {
        self.when_full = WhenFull::EmitEarly;
        self
    }
    /// When full, fail the task (the app stops with an error) rather than emit early.
    pub fn shut_down_when_full(mut self) -> Self {
        self.when_full = WhenFull::ShutDown;
        self
    }
}

/// A key's deadline: from the key, the update's timestamp and the table's window grace.
type Deadline<K> = Arc<dyn Fn(&K, i64, Option<i64>) -> Option<i64> + Send + Sync>;

/// How a table's updates are held back.
#[derive(Clone)]
pub struct Suppressed<K> {
    deadline: Deadline<K>,
    buffer: BufferConfig,
    final_results: bool,
}

impl<K> fmt::Debug for Suppressed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suppressed")
            .field("buffer", &self.buffer)
            .field("final_results", &self.final_results)
            .finish_non_exhaustive()
    }
}

impl<K> Suppressed<Windowed<K>> {
    /// Only each window's final result, once stream time reaches its end plus the grace
    /// of the windows. `buffer` must be unbounded or `shut_down_when_full`.
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Self {
            deadline: Arc::new(|k: &Windowed<K>, _, grace| Some(k.end.saturating_add(grace?))),
            buffer,
            final_results: true,
        }
    }
}

impl<K> Suppressed<K> {
    /// A key's latest value once stream time is `limit` past its first held update.
    pub fn until_time_limit(limit: Duration, buffer: BufferConfig) -> Self {
        let limit = millis(limit);
        Self {
            deadline: Arc::new(move |_, timestamp, _| Some(timestamp.saturating_add(limit))),
            buffer,
            final_results: false,
        }
    }
}

/// A held update: the change since the last emit, its deadline and latest timestamp.
#[derive(Debug, Clone)]
struct Held<V> {
    change: Change<V>,
    deadline: i64,
    timestamp: i64,
}

/// `Held` as deadline and timestamp (8 bytes big-endian each), then the change.
struct HeldSerde<V>(ChangeSerde<V>);

impl<V> fmt::Debug for HeldSerde<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeldSerde<{:?}>", self.0)
    }
}

impl<V> Serde<Held<V>> for HeldSerde<V> {
    fn serialize(&self, held: &Held<V>) -> sluice_runtime::Result<Vec<u8>> {
        let mut out = held.deadline.to_be_bytes().to_vec();
        out.extend(held.timestamp.to_be_bytes());
        out.extend(self.0.serialize(&held.change)?);
        Ok(out)
    }
    fn deserialize(&self, bytes: &[u8]) -> sluice_runtime::Result<Held<V>> {
        let bad = || sluice_runtime::Error::Serde {
            type_name: "suppressed update",
            reason: format!("{} bytes is too short", bytes.len()),
        };
        let (deadline, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
        let (timestamp, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        Ok(Held {
            deadline: i64::from_be_bytes(*deadline),
            timestamp: i64::from_be_bytes(*timestamp),
            change: self.0.deserialize(rest)?,
        })
    }
}

/// The stores of one suppression: held updates by key, keys by deadline, and the size.
#[derive(Debug, Clone)]
struct Stores {
    held: String,
    deadlines: String,
    size: String,
}

struct Suppress<K, V> {
    stores: Stores,
    deadline: Deadline<K>,
    grace: Option<i64>,
    buffer: BufferConfig,
    keys: Arc<dyn Serde<K>>,
    values: Arc<dyn Serde<V>>,
}

impl<K: Data, V: Data> Suppress<K, V> {
    /// The bytes a held update counts for (only computed when bytes are bounded).
    fn weight(&self, key: &K, held: &Held<V>) -> sluice_runtime::Result<u64> {
        if self.buffer.max_bytes.is_none() {
            return Ok(0);
        }
        let change = ChangeSerde(self.values.clone()).serialize(&held.change)?;
        Ok((self.keys.serialize(key)?.len() + change.len() + 16) as u64)
    }

    /// Forwards `key`'s held update and forgets it; returns its weight.
    fn release(
        &self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        key: K,
    ) -> sluice_runtime::Result<(u64, u64)> {
        let Some(held) = ctx.kv_store::<K, Held<V>>(&self.stores.held)?.get(&key)? else {
            return Ok((0, 0));
        };
        let weight = self.weight(&key, &held)?;
        ctx.kv_store::<K, Held<V>>(&self.stores.held)?
            .delete(&key)?;
        ctx.window_store::<K, ()>(&self.stores.deadlines)?
            .delete(&key, held.deadline)?;
        if held.change.new.is_some() || held.change.old.is_some() {
            ctx.forward(Record::new(key, held.change, held.timestamp))?;
        }
        Ok((1, weight))
    }
}

impl<K: Data, V: Data> Processor<K, Change<V>, K, Change<V>> for Suppress<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, Change<V>>,
    ) -> ProcessResult {
        let now = ctx.stream_time().max(r.timestamp);
        let (mut count, mut bytes) = ctx
            .kv_store::<(), (u64, u64)>(&self.stores.size)?
            .get(&())?
            .unwrap_or((0, 0));
        let previous = ctx.kv_store::<K, Held<V>>(&self.stores.held)?.get(&r.key)?;
        let Some(deadline) = previous
            .as_ref()
            .map(|p| p.deadline)
            .or_else(|| (self.deadline)(&r.key, r.timestamp, self.grace))
        else {
            return Err("until_window_closes suppresses a table that is not windowed".into());
        };
        let held = Held {
            change: Change {
                new: r.value.new,
                old: match &previous {
                    Some(p) => p.change.old.clone(),
                    None => r.value.old,
                },
            },
            deadline,
            timestamp: r.timestamp,
        };
        if let Some(p) = &previous {
            count -= 1;
            bytes = bytes.saturating_sub(self.weight(&r.key, p)?);
        }
        count += 1;
        bytes += self.weight(&r.key, &held)?;
        ctx.kv_store::<K, Held<V>>(&self.stores.held)?
            .put(&r.key, &held)?;
        if previous.is_none() {
            ctx.window_store::<K, ()>(&self.stores.deadlines)?
                .put(&r.key, deadline, &())?;
        }
        let due = ctx
            .window_store::<K, ()>(&self.stores.deadlines)?
            .fetch_all(i64::MIN, now)?
            .collect::<sluice_runtime::Result<Vec<_>>>()?;
        for (key, _, ()) in due {
            let (n, b) = self.release(ctx, key)?;
            count -= n;
            bytes = bytes.saturating_sub(b);
        }
        let full = |count: u64, bytes: u64| {
            self.buffer.max_records.is_some_and(|m| count > m)
                || self.buffer.max_bytes.is_some_and(|m| bytes > m)
        };
        if full(count, bytes) {
            if self.buffer.when_full == WhenFull::ShutDown {
                return Err(format!(
                    "the suppression buffer `{}` is full ({count} records, {bytes} bytes; \
                     limits {:?} records, {:?} bytes) and is set to shut down when full",
                    self.stores.held, self.buffer.max_records, self.buffer.max_bytes
                )
                .into());
            }
            let oldest = ctx
                .window_store::<K, ()>(&self.stores.deadlines)?
                .fetch_all(i64::MIN, i64::MAX)?
                .collect::<sluice_runtime::Result<Vec<_>>>()?;
            for (key, _, ()) in oldest {
                if !full(count, bytes) {
                    break;
                }
                let (n, b) = self.release(ctx, key)?;
                count -= n;
                bytes = bytes.saturating_sub(b);
            }
        }
        ctx.kv_store::<(), (u64, u64)>(&self.stores.size)?
            .put(&(), &(count, bytes))?;
        Ok(())
    }
}

impl<K: Data, V: Data> Table<K, V> {
    /// The table's updates held back as `suppressed` says (see [`Suppressed`]); the held
    /// updates are kept in stores named after the operator (`named` sets it).
    pub fn suppress(&self, suppressed: Suppressed<K>) -> Table<K, V> {
        let name = self.changes.next_node_name("suppress");
        if suppressed.final_results {
            if self.window_grace.is_none() {
                self.changes.fail(format!(
                    "`{name}`: until_window_closes needs a windowed table, and `{}` is not",
                    self.describe()
                ));
            }
            if suppressed.buffer.when_full == WhenFull::EmitEarly {
                self.changes.fail(format!(
                    "`{name}`: until_window_closes emits final results only, so its buffer \
                     must be unbounded or shut_down_when_full, not emit early"
                ));
            }
        }
        let stores = Stores {
            held: format!("{name}-buffer"),
            deadlines: format!("{name}-deadlines"),
            size: format!("{name}-size"),
        };
        let (keys, values) = (self.changes.keys.clone(), self.values.clone());
        let (s, k, v) = (stores.clone(), keys.clone(), values.clone());
        let (deadline, grace, buffer) = (suppressed.deadline, self.window_grace, suppressed.buffer);
        self.changes.add_as::<Suppress<K, V>, K, Change<V>>(
            &name,
            &[&self.changes.node],
            move || Suppress {
                stores: s.clone(),
                deadline: deadline.clone(),
                grace,
                buffer,
                keys: k.clone(),
                values: v.clone(),
            },
        );
        let held = HeldSerde(ChangeSerde(values.clone()));
        let forever = Duration::from_millis(i64::MAX as u64);
        for spec in [
            StoreSpec::key_value::<K, Held<V>>(&stores.held, keys.clone(), held),
            StoreSpec::time_ordered_window::<K, ()>(
                &stores.deadlines,
                keys.clone(),
                UnitSerde,
                forever,
            ),
            StoreSpec::key_value::<(), (u64, u64)>(&stores.size, UnitSerde, <(u64, u64)>::serde()),
        ] {
            self.changes.add_store(spec, &name);
        }
        Table {
            changes: self
                .changes
                .derive(name, keys, self.changes.values.clone(), false),
            store: Some(stores.held),
            getter: None,
            values,
            window_grace: self.window_grace,
        }
    }
}
