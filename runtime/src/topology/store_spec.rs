//! [`StoreSpec`]: a state store as a topology declares it (name, kind, serdes, retention),
//! able to open the typed store of any task over the instance's RocksDB.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::serde::Serde;
use crate::state::{StateDb, StoreName};

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

impl StoreSpec {
    /// A key-value store.
    pub fn key_value<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> Self {
        let (keys, values): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) =
            (Arc::new(keys), Arc::new(values));
        Self {
            name: name.to_string(),
            kind: StoreKind::KeyValue,
            open: Arc::new(move |db, store| {
                Ok(Box::new(db.kv_store(
                    store,
                    keys.clone(),
                    values.clone(),
                )?))
            }),
        }
    }

    /// A window store keeping windows for `retention` behind the newest start written.
    pub fn window<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention: Duration,
    ) -> Self {
        let (keys, values): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) =
            (Arc::new(keys), Arc::new(values));
        Self {
            name: name.to_string(),
            kind: StoreKind::Window { retention },
            open: Arc::new(move |db, store| {
                Ok(Box::new(db.window_store(
                    store,
                    keys.clone(),
                    values.clone(),
                    millis(retention),
                )?))
            }),
        }
    }

    /// A session store keeping sessions for `retention` after the newest end written.
    pub fn session<K: Send + 'static, V: Send + 'static>(
        name: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention: Duration,
    ) -> Self {
        let (keys, values): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) =
            (Arc::new(keys), Arc::new(values));
        Self {
            name: name.to_string(),
            kind: StoreKind::Session { retention },
            open: Arc::new(move |db, store| {
                Ok(Box::new(db.session_store(
                    store,
                    keys.clone(),
                    values.clone(),
                    millis(retention),
                )?))
            }),
        }
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
