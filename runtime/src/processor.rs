//! The Processor API (docs/architecture.md §3): [`Processor`] is what a user writes (init / process /
//! punctuate / close, each with a default but `process`), [`Record`] is what flows along the
//! topology's edges, and [`ProcessorContext`] is the processor's view of its task: forward to
//! all or one named child, the current record's topic, partition, offset, timestamp and
//! headers, stream time, punctuation schedules and typed state stores.
//!
//! ```
//! use sluice_runtime::processor::{Processor, ProcessorContext, ProcessResult, Record};
//!
//! /// Splits lines into words, keyed by the word.
//! #[derive(Debug)]
//! struct SplitWords;
//!
//! impl Processor<(), String, String, String> for SplitWords {
//!     fn process(
//!         &mut self,
//!         ctx: &mut ProcessorContext<'_, String, String>,
//!         record: Record<(), String>,
//!     ) -> ProcessResult {
//!         for word in record.value.split_whitespace() {
//!             let word = word.to_lowercase();
//!             ctx.forward(Record::new(word.clone(), word, record.timestamp))?;
//!         }
//!         Ok(())
//!     }
//! }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

pub use sluice_log::batch::Header;

use crate::error::{Error, Result};
use crate::state::{KeyValueStore, Session, SessionStore, StoreIter, WindowStore};
use crate::task::core::TaskCore;

/// What a processor hook returns: any error aborts the transaction and fails the task.
pub type ProcessResult = std::result::Result<(), BoxError>;

/// A processor's error: anything that is an error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A keyed record with its event time (ms) and headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in ms since the epoch.
    pub timestamp: i64,
    /// Headers, passed through to sinks.
    pub headers: Vec<Header>,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Self {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }

    /// The same record with another key and value (timestamp and headers kept).
    pub fn with_key_value<K2, V2>(self, key: K2, value: V2) -> Record<K2, V2> {
        Record {
            key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<bytes::Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }
}

/// Where the record being processed came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The source topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// Which clock a punctuation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// The task's stream time (the largest record timestamp it has seen): fires as records
    /// move it, never on its own.
    StreamTime,
    /// The wall clock: fires as real (or, in the test driver, simulated) time passes.
    WallClockTime,
}

/// A user processor with input `KIn, VIn` and output `KOut, VOut`. Only `process` is
/// required. Errors returned (or panics) abort the transaction and fail the task.
pub trait Processor<KIn, VIn, KOut = KIn, VOut = VIn>: Send {
    /// Called once before the first record, after the task's stores are restored; the
    /// place to schedule punctuations.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> ProcessResult {
        Ok(())
    }

    /// Processes one record.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> ProcessResult;

    /// A punctuation scheduled with [`ProcessorContext::schedule`] is due; `timestamp` is
    /// the stream time or the wall-clock time that triggered it.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, KOut, VOut>,
        _kind: PunctuationType,
        _timestamp: i64,
    ) -> ProcessResult {
        Ok(())
    }

    /// Called when the task closes (shutdown or revocation), after its last commit.
    fn close(&mut self) {}
}

/// A processor's view of its task, typed by what it forwards.
pub struct ProcessorContext<'a, KOut, VOut> {
    pub(crate) core: &'a mut TaskCore,
    pub(crate) node: usize,
    pub(crate) _out: PhantomData<fn(KOut, VOut)>,
}

impl<KOut, VOut> std::fmt::Debug for ProcessorContext<'_, KOut, VOut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("node", &self.core.node_name(self.node))
            .field("partition", &self.core.partition)
            .finish_non_exhaustive()
    }
}

impl<KOut, VOut> ProcessorContext<'_, KOut, VOut>
where
    KOut: Clone + Send + 'static,
    VOut: Clone + Send + 'static,
{
    /// Sends `record` to every child, each in turn, depth first.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<()> {
        let children = self.core.children(self.node);
        self.core.forward(&children, record)
    }

    /// Sends `record` to the child named `child` only.
    pub fn forward_to(&mut self, child: &str, record: Record<KOut, VOut>) -> Result<()> {
        let target = self.core.child_named(self.node, child)?;
        self.core.forward(&[target], record)
    }
}

impl<KOut, VOut> ProcessorContext<'_, KOut, VOut> {
    /// Where the current record came from; `None` inside a punctuation.
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.core.current.as_ref()
    }

    /// The task's partition.
    pub fn partition(&self) -> i32 {
        self.core.partition
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.core.application_id
    }

    /// The task's stream time: the largest record timestamp it has processed (`i64::MIN`
    /// before the first).
    pub fn stream_time(&self) -> i64 {
        self.core.stream_time
    }

    /// The wall-clock time in ms as the task sees it (simulated in the test driver).
    pub fn wall_clock_time(&self) -> i64 {
        self.core.wall_clock_ms()
    }

    /// Counts the current record as dropped (late for every window it belongs to, say):
    /// the count shows in `AppMetrics::records_dropped` and the test driver's
    /// `dropped_records`; `reason` goes to the debug log.
    pub fn record_dropped(&mut self, reason: &str) {
        self.core.dropped += 1;
        tracing::debug!(processor = %self.core.node_name(self.node), ?self.core.current, reason, "record dropped");
    }

    /// Schedules [`Processor::punctuate`] every `interval` of `kind` time. Stream-time
    /// punctuations fire when records move stream time past the next multiple of the
    /// interval; wall-clock ones when the clock does.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> Result<()> {
        self.core.schedule(self.node, interval, kind)
    }

    /// The key-value store `name` (connected to this processor) as `K -> V`.
    pub fn kv_store<K: 'static, V: 'static>(&mut self, name: &str) -> Result<KvStore<'_, K, V>> {
        let (store, overlay) = self.core.store::<KeyValueStore<K, V>>(self.node, name)?;
        Ok(KvStore { store, overlay })
    }

    /// The window store `name` (connected to this processor).
    pub fn window_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<WindowStoreHandle<'_, K, V>> {
        let (store, overlay) = self.core.store::<WindowStore<K, V>>(self.node, name)?;
        Ok(WindowStoreHandle { store, overlay })
    }

    /// The session store `name` (connected to this processor).
    pub fn session_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<SessionStoreHandle<'_, K, V>> {
        let (store, overlay) = self.core.store::<SessionStore<K, V>>(self.node, name)?;
        Ok(SessionStoreHandle { store, overlay })
    }

    /// The stores connected to this processor, in a view that does not depend on what the
    /// processor forwards: for helpers that processors of different output types share
    /// (the DSL's value getters read a lazy table's ancestor store this way,
    /// docs/architecture.md §4).
    pub fn stores(&mut self) -> StoreAccess<'_> {
        StoreAccess {
            core: self.core,
            node: self.node,
        }
    }
}

/// The key-value stores connected to a processor, from [`ProcessorContext::stores`].
pub struct StoreAccess<'a> {
    core: &'a mut TaskCore,
    node: usize,
}

impl std::fmt::Debug for StoreAccess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAccess")
            .field("node", &self.core.node_name(self.node))
            .finish_non_exhaustive()
    }
}

impl StoreAccess<'_> {
    /// The key-value store `name` (connected to the processor) as `K -> V`.
    pub fn kv_store<K: 'static, V: 'static>(&mut self, name: &str) -> Result<KvStore<'_, K, V>> {
        let (store, overlay) = self.core.store::<KeyValueStore<K, V>>(self.node, name)?;
        Ok(KvStore { store, overlay })
    }
}

/// A key-value store as a processor sees it: reads see the task's uncommitted writes.
#[derive(Debug)]
pub struct KvStore<'a, K, V> {
    store: &'a KeyValueStore<K, V>,
    overlay: &'a mut crate::state::WriteOverlay,
}

impl<'a, K, V> KvStore<'a, K, V> {
    pub(crate) fn new(
        store: &'a KeyValueStore<K, V>,
        overlay: &'a mut crate::state::WriteOverlay,
    ) -> Self {
        Self { store, overlay }
    }
    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.store.get(self.overlay, key)
    }
    /// Sets `key = value`.
    pub fn put(&mut self, key: &K, value: &V) -> Result<()> {
        self.store.put(self.overlay, key, value)
    }
    /// Deletes `key`.
    pub fn delete(&mut self, key: &K) -> Result<()> {
        self.store.delete(self.overlay, key)
    }
    /// Entries with `from <= key <= to` in serialized-key order, streamed from RocksDB
    /// (the iterator borrows the store: it ends before the next write).
    pub fn range(&self, from: &K, to: &K) -> Result<StoreIter<'_, (K, V)>> {
        self.store.range(self.overlay, from, to)
    }
    /// Entries whose serialized key starts with `prefix`, streamed.
    pub fn prefix_scan(&self, prefix: &[u8]) -> Result<StoreIter<'_, (K, V)>> {
        self.store.prefix_scan(self.overlay, prefix)
    }
    /// Every entry in serialized-key order, streamed: memory stays flat however many there
    /// are.
    pub fn all(&self) -> Result<StoreIter<'_, (K, V)>> {
        self.store.all(self.overlay)
    }
}

/// A window store as a processor sees it.
#[derive(Debug)]
pub struct WindowStoreHandle<'a, K, V> {
    store: &'a WindowStore<K, V>,
    overlay: &'a mut crate::state::WriteOverlay,
}

impl<'a, K, V> WindowStoreHandle<'a, K, V> {
    pub(crate) fn new(
        store: &'a WindowStore<K, V>,
        overlay: &'a mut crate::state::WriteOverlay,
    ) -> Self {
        Self { store, overlay }
    }
    /// Stores `value` for `key` in the window starting at `start`; false when the window is
    /// already past retention (dropped).
    pub fn put(&mut self, key: &K, start: i64, value: &V) -> Result<bool> {
        self.store.put(self.overlay, key, start, value)
    }
    /// Deletes `key`'s window starting at `start`.
    pub fn delete(&mut self, key: &K, start: i64) -> Result<()> {
        self.store.delete(self.overlay, key, start)
    }
    /// `key`'s windows starting in `[from, to]`, oldest first, streamed.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<StoreIter<'_, (i64, V)>> {
        self.store.fetch(self.overlay, key, from, to)
    }
    /// Windows starting in `[from, to]` of keys in `[key_from, key_to]` (serialized order),
    /// streamed, in the order [`WindowStore::fetch_range`] gives.
    pub fn fetch_range(
        &self,
        key_from: &K,
        key_to: &K,
        from: i64,
        to: i64,
    ) -> Result<StoreIter<'_, (K, i64, V)>> {
        self.store
            .fetch_range(self.overlay, key_from, key_to, from, to)
    }
    /// Every window starting in `[from, to]`, streamed, in the order
    /// [`WindowStore::fetch_all`] gives.
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<StoreIter<'_, (K, i64, V)>> {
        self.store.fetch_all(self.overlay, from, to)
    }
    /// Deletes every window older than the retention; returns how many.
    pub fn expire(&mut self) -> Result<usize> {
        self.store.expire(self.overlay)
    }
}

/// A session store as a processor sees it.
#[derive(Debug)]
pub struct SessionStoreHandle<'a, K, V> {
    store: &'a SessionStore<K, V>,
    overlay: &'a mut crate::state::WriteOverlay,
}

impl<'a, K, V> SessionStoreHandle<'a, K, V> {
    pub(crate) fn new(
        store: &'a SessionStore<K, V>,
        overlay: &'a mut crate::state::WriteOverlay,
    ) -> Self {
        Self { store, overlay }
    }
    /// Writes `key`'s session; false when it ended before the retention (dropped).
    pub fn put(&mut self, key: &K, session: Session, value: &V) -> Result<bool> {
        self.store.put(self.overlay, key, session, value)
    }
    /// Removes `key`'s session.
    pub fn remove(&mut self, key: &K, session: Session) -> Result<()> {
        self.store.remove(self.overlay, key, session)
    }
    /// `key`'s sessions ending at or after `earliest_end` and starting at or before
    /// `latest_start`, by end then start, streamed.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<StoreIter<'_, (Session, V)>> {
        self.store
            .find_sessions(self.overlay, key, earliest_end, latest_start)
    }
    /// Deletes every session that ended before the retention; returns how many.
    pub fn expire(&mut self) -> Result<usize> {
        self.store.expire(self.overlay)
    }
}

/// A record failed in a processor: which one, and where the record came from.
pub(crate) fn processor_failed(core: &TaskCore, node: usize, reason: String) -> Error {
    let (topic, partition, offset) = match &core.current {
        Some(m) => (m.topic.to_string(), m.partition, m.offset),
        None => ("(punctuation)".to_string(), core.partition, -1),
    };
    Error::ProcessorFailed {
        processor: core.node_name(node).to_string(),
        topic,
        partition,
        offset,
        reason,
    }
}
