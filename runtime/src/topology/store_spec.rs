//! [`StoreSpec`]: a state store as a topology declares it (name, kind, serdes, retention),
//! able to open the typed store of any task over the instance's RocksDB.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::serde::Serde;
use crate::state::{StateDb, StoreName, WindowLayout};

/// The kind of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Key -> value.
    KeyValue,
    /// (key, window start) -> value, kept for `retention`.
    Window {
        /// How long windows are kept behind the newest.
        retention: Duration,
    },
    /// (key, session) -> value, kept for `retention`.
    Session {
        /// How long sessions are kept after the newest end.
        retention: Duration,
    },
}

type Opener = Arc<dyn Fn(&StateDb, &StoreName) -> Result<Box<dyn Any + Send>> + Send + Sync>;

/// A declared store. Processors reach it through `ProcessorContext::kv_store` (or
/// `window_store`, `session_store`) with the same key and value types.
#[derive(Clone)]
pub struct StoreSpec {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) open: Opener,
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Opens one kind of typed store for a task: (db, store, keys, values, retention ms).
type KindOpener<K, V> = fn(
    &StateDb,
    &StoreName,
    Arc<dyn Serde<K>>,
    Arc<dyn Serde<V>>,
    i64,
) -> Result<Box<dyn Any + Send>>;

/// Opens a window store, time first if `TIME_ORDERED`, else key first.
fn open_window<K: Send + 'static, V: Send + 'static, const TIME_ORDERED: bool>(
    db: &StateDb,
    store: &StoreName,
    keys: Arc<dyn Serde<K>>,
    values: Arc<dyn Serde<V>>,
    retention_ms: i64,
) -> Result<Box<dyn Any + Send>> {
    let layout = if TIME_ORDERED {
        WindowLayout::TimeOrdered
    } else {
        WindowLayout::KeyFirst
    };
    let opened = db.window_store_with(store, keys, values, retention_ms, layout)?;
    Ok(Box::new(opened))
}

impl StoreSpec {
    fn build<K: Send + 'static, V: Send + 'static>(
        name: &str,
        kind: StoreKind,
        keys: Arc<dyn Serde<K>>,
        values: Arc<dyn Serde<V>>,
        open: KindOpener<K, V>,
    ) -> Self {
        let retention = match kind {
            StoreKind::KeyValue => 0,
            StoreKind::Window { retention } | StoreKind::Session { retention } => millis(retention),
        };
        Self {
            name: name.to_string(),
            kind,
            open: Arc::new(move |db, store| {
                open(db, store, keys.clone(), values.clone(), retention)
            }),
        }
    }

    /// A key-value store.
    pub fn key_value<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> Self {
        Self::build(
            name,
            StoreKind::KeyValue,
            Arc::new(keys),
            Arc::new(values),
            |db, store, keys, values, _| {
                Ok(Box::new(db.kv_store(store, keys, values)?) as Box<dyn Any + Send>)
            },
        )
    }

    /// A window store keeping windows for `retention` behind the newest start written, laid
    /// out key first: fast fetches of one key's windows (`WindowLayout::KeyFirst`).
    pub fn window<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention: Duration,
    ) -> Self {
        Self::window_laid_out(name, keys, values, retention, open_window::<K, V, false>)
    }

    /// A window store laid out time first: fast scans of a time range over all keys, in
    /// time order (`WindowLayout::TimeOrdered`), for buffers emptied by time.
    pub fn time_ordered_window<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention: Duration,
    ) -> Self {
        Self::window_laid_out(name, keys, values, retention, open_window::<K, V, true>)
    }

    fn window_laid_out<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention: Duration,
        open: KindOpener<K, V>,
    ) -> Self {
        let kind = StoreKind::Window { retention };
        Self::build(name, kind, Arc::new(keys), Arc::new(values), open)
    }

    /// A session store keeping sessions for `retention` after the newest end written.
    pub fn session<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention: Duration,
    ) -> Self {
        Self::build(
            name,
            StoreKind::Session { retention },
            Arc::new(keys),
            Arc::new(values),
            |db, store, keys, values, ms| {
                Ok(Box::new(db.session_store(store, keys, values, ms)?) as Box<dyn Any + Send>)
            },
        )
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store's kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }
}
