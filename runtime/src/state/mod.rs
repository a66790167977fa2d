//! RocksDB state (docs/architecture.md §3, §3.1): one database per app instance's state directory, one
//! column family per (store, task), and a column family of checkpoints. Writes go to a
//! per-task [`WriteOverlay`] first; the task reads through it (it sees its own writes) while
//! RocksDB is untouched. After the transaction commits, [`StateDb::apply`] writes every
//! overlay and the new checkpoints in one `WriteBatch` (WAL on, no fsync): a crash before it
//! leaves RocksDB at the previous checkpoint, from which the changelog is replayed. Scans
//! stream: a RocksDB iterator merged with the overlay ([`StoreIter`]); the stores collect
//! nothing (only expiry gathers the keys it deletes).

mod changelog;
mod kv;
mod overlay;
mod restore;
mod retention;
mod scan;
mod segments;
mod session;
mod window;

pub use changelog::{changelog_records, changelog_topic, ensure_changelog_topic};
pub use kv::KeyValueStore;
pub use overlay::WriteOverlay;
pub use restore::{RestoreProgress, restore, restore_with};
pub use scan::StoreIter;
pub use session::{Session, SessionStore};
pub use window::{WindowLayout, WindowStore};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{DBWithThreadMode, MultiThreaded, Options, WriteBatch};

use crate::error::{Error, Result};
use crate::serde::Serde;

type Db = DBWithThreadMode<MultiThreaded>;

const CHECKPOINTS: &str = "__checkpoints";

/// Most bytes of write-ahead log kept before memtables are flushed.
const WAL_LIMIT: u64 = 128 << 20;

/// The partition number of a global store's `StoreName`.
pub const GLOBAL_PARTITION: i32 = -1;

/// A store of one task: the store's name and the task's partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreName {
    /// The store's name in the topology.
    pub store: String,
    /// The task's partition.
    pub partition: i32,
}

impl StoreName {
    /// The store `store` of the task for `partition`.
    pub fn new(store: impl Into<String>, partition: i32) -> Self {
        Self {
            store: store.into(),
            partition,
        }
    }

    /// The one column family of global store `store`, shared by the instance's tasks.
    pub fn global(store: impl Into<String>) -> Self {
        Self::new(store, GLOBAL_PARTITION)
    }

    /// Where the global store `store` has read partition `partition` of its topic up to
    /// (a checkpoint name; no column family of its own).
    pub fn global_position(store: &str, partition: i32) -> Self {
        Self::new(format!("{store}@global-topic"), partition)
    }

    /// Its column family's name.
    pub fn column_family(&self) -> String {
        format!("{}#{}", self.store, self.partition)
    }
}

/// The state database of one app instance.
#[derive(Clone)]
pub struct StateDb {
    db: Arc<Db>,
    path: PathBuf,
    /// Bytes of the write batches `apply` has written (`WriteBatch::size_in_bytes`: keys,
    /// values, deletes and checkpoints), shared by every clone of this handle.
    written: Arc<AtomicU64>,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StateDb {
    /// Opens (or creates) the database in `dir` with every column family it already has.
    pub fn open(dir: &Path) -> Result<Self> {
        let rocks = |action, source| Error::Rocks {
            action,
            store: dir.display().to_string(),
            source,
        };
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Bound the WAL: RocksDB replays all of it when it opens after a crash, so a WAL
        // that spans gigabytes of writes (memtables of quiet column families pin it) would
        // make every restart slow. Past this size the oldest memtables are flushed.
        options.set_max_total_wal_size(WAL_LIMIT);
        options.increase_parallelism(2);
        let mut families = Db::list_cf(&options, dir).unwrap_or_default();
        if !families.iter().any(|f| f == CHECKPOINTS) {
            families.push(CHECKPOINTS.to_string());
        }
        let db = Db::open_cf(&options, dir, &families).map_err(|e| rocks("opening", e))?;
        Ok(Self {
            db: Arc::new(db),
            path: dir.to_path_buf(),
            written: Arc::default(),
        })
    }

    /// The database's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An empty overlay for a task's next transaction.
    pub fn overlay(&self) -> WriteOverlay {
        WriteOverlay::default()
    }

    pub(crate) fn ensure_family(&self, name: &str) -> Result<()> {
        if self.db.cf_handle(name).is_none()
            && let Err(source) = self.db.create_cf(name, &Options::default())
            && self.db.cf_handle(name).is_none()
        {
            // (Another thread creating it at the same moment is not an error.)
            return Err(Error::Rocks {
                action: "creating a column family",
                store: name.to_string(),
                source,
            });
        }
        Ok(())
    }

    /// A typed key-value store over the column family of `name` (created if new).
    pub fn kv_store<K, V>(
        &self,
        name: &StoreName,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> Result<KeyValueStore<K, V>> {
        let family = name.column_family();
        self.ensure_family(&family)?;
        Ok(KeyValueStore::new(
            self.clone(),
            family,
            Box::new(keys),
            Box::new(values),
        ))
    }

    /// A typed window store over the column family of `name` (created if new), keeping
    /// windows for `retention_ms` behind the newest window start written, laid out key first.
    pub fn window_store<K, V>(
        &self,
        name: &StoreName,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention_ms: i64,
    ) -> Result<WindowStore<K, V>> {
        self.window_store_with(name, keys, values, retention_ms, WindowLayout::KeyFirst)
    }

    /// [`StateDb::window_store`] with the layout given.
    pub fn window_store_with<K, V>(
        &self,
        name: &StoreName,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention_ms: i64,
        layout: WindowLayout,
    ) -> Result<WindowStore<K, V>> {
        let family = name.column_family();
        self.ensure_family(&family)?;
        WindowStore::new(
            self.clone(),
            family,
            Box::new(keys),
            Box::new(values),
            retention_ms,
            layout,
        )
    }

    /// A typed session store over the column family of `name` (created if new), keeping
    /// sessions for `retention_ms` after the newest session end written.
    pub fn session_store<K, V>(
        &self,
        name: &StoreName,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        retention_ms: i64,
    ) -> Result<SessionStore<K, V>> {
        let family = name.column_family();
        self.ensure_family(&family)?;
        SessionStore::new(
            self.clone(),
            family,
            Box::new(keys),
            Box::new(values),
            retention_ms,
        )
    }

    /// The largest committed key of `family`.
    pub(crate) fn last_key_raw(&self, family: &str) -> Result<Option<Vec<u8>>> {
        let cf = self
            .db
            .cf_handle(family)
            .ok_or_else(|| Error::Store(family.to_string(), "no such column family"))?;
        match self.db.iterator_cf(&cf, rocksdb::IteratorMode::End).next() {
            Some(item) => item
                .map(|(k, _)| Some(k.to_vec()))
                .map_err(|source| Error::Rocks {
                    action: "scanning",
                    store: family.to_string(),
                    source,
                }),
            None => Ok(None),
        }
    }

    pub(crate) fn get_raw(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self
            .db
            .cf_handle(family)
            .ok_or_else(|| Error::Store(family.to_string(), "no such column family"))?;
        self.db.get_cf(&cf, key).map_err(|source| Error::Rocks {
            action: "reading",
            store: family.to_string(),
            source,
        })
    }

    /// Applies a committed transaction's overlay and the tasks' new checkpoints (the
    /// changelog offsets the commit produced) atomically, in one `WriteBatch`.
    pub fn apply(&self, overlay: WriteOverlay, checkpoints: &[(StoreName, i64)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (family, writes) in overlay.into_families() {
            let cf = self
                .db
                .cf_handle(&family)
                .ok_or_else(|| Error::Store(family.clone(), "no such column family"))?;
            for (key, value) in writes {
                match value {
                    Some(value) => batch.put_cf(&cf, key, value),
                    None => batch.delete_cf(&cf, key),
                }
            }
        }
        let cf = self
            .db
            .cf_handle(CHECKPOINTS)
            .ok_or_else(|| Error::Store(CHECKPOINTS.into(), "no such column family"))?;
        for (name, offset) in checkpoints {
            batch.put_cf(&cf, name.column_family(), offset.to_be_bytes());
        }
        let size = batch.size_in_bytes() as u64;
        self.db.write(batch).map_err(|source| Error::Rocks {
            action: "applying a committed transaction",
            store: self.path.display().to_string(),
            source,
        })?;
        self.written.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// The counter of bytes `apply` has written to RocksDB through this handle and its
    /// clones (the size of each committed transaction's write batch).
    pub(crate) fn bytes_written(&self) -> Arc<AtomicU64> {
        self.written.clone()
    }

    /// Flushes every column family's memtable to its files (a clean shutdown does this, so
    /// the next open replays no write-ahead log).
    pub fn flush(&self) -> Result<()> {
        let rocks = |source| Error::Rocks {
            action: "flushing",
            store: self.path.display().to_string(),
            source,
        };
        let families = Db::list_cf(&Options::default(), &self.path).map_err(rocks)?;
        for family in families {
            if let Some(cf) = self.db.cf_handle(&family) {
                self.db.flush_cf(&cf).map_err(rocks)?;
            }
        }
        Ok(())
    }

    /// The changelog offset `name`'s state was last applied up to, if any.
    pub fn checkpoint(&self, name: &StoreName) -> Result<Option<i64>> {
        let raw = self.get_raw(CHECKPOINTS, name.column_family().as_bytes())?;
        Ok(raw
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(i64::from_be_bytes))
    }
}
