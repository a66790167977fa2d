//! [`TopologyTestDriver`] (docs/architecture.md §3.3): runs a topology synchronously, without a broker,
//! on a real RocksDB in a temporary directory. Each piped record is processed to the end
//! (through repartition topics too) and committed before `pipe_input` returns, as in Kafka
//! Streams' driver; every sub-topology runs as the task of partition 0.
//!
//! ```
//! use sluice_runtime::processor::{Processor, ProcessorContext, ProcessResult, Record};
//! use sluice_runtime::serde::{BigEndianSerde, StringSerde};
//! use sluice_runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
//! use sluice_runtime::topology::{StoreSpec, TopologyBuilder};
//!
//! #[derive(Debug)]
//! struct Count;
//! impl Processor<String, String, String, u64> for Count {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, u64>,
//!                r: Record<String, String>) -> ProcessResult {
//!         let mut counts = ctx.kv_store::<String, u64>("counts")?;
//!         let n = counts.get(&r.key)?.unwrap_or(0) + 1;
//!         counts.put(&r.key, &n)?;
//!         ctx.forward(r.with_value(n))?;
//!         Ok(())
//!     }
//! }
//!
//! let mut b = TopologyBuilder::new();
//! b.add_source("in", &["words"], StringSerde, StringSerde)?;
//! b.add_processor("count", &["in"], || Count)?;
//! b.add_state_store(StoreSpec::key_value::<String, u64>("counts", StringSerde, BigEndianSerde), &["count"])?;
//! b.add_sink::<String, u64>("out", "counts", &["count"], StringSerde, BigEndianSerde)?;
//! let mut driver = TopologyTestDriver::new(b.build()?)?;
//! let words = TestInputTopic::new("words", StringSerde, StringSerde);
//! let counts = TestOutputTopic::<String, u64>::new("counts", StringSerde, BigEndianSerde);
//! driver.pipe_input(&words, "a".to_string(), "a".to_string(), 1)?;
//! driver.pipe_input(&words, "a".to_string(), "a".to_string(), 2)?;
//! let out: Vec<(String, u64)> =
//!     driver.read_output(&counts)?.into_iter().map(|r| (r.key, r.value)).collect();
//! assert_eq!(out, vec![("a".to_string(), 1), ("a".to_string(), 2)]);
//! assert_eq!(driver.kv_store::<String, u64>("counts")?.get(&"a".to_string())?, Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_log::{ConsumerRecord, ProducerRecord};

use crate::config::DeserializationHandler;
use crate::error::{Error, Result};
use crate::processor::{KvStore, Record, SessionStoreHandle, WindowStoreHandle};
use crate::serde::Serde;
use crate::state::{KeyValueStore, SessionStore, StateDb, StoreName, WindowStore};
use crate::task::core::Clock;
use crate::task::{Task, TaskId};
use crate::topology::Topology;

/// An input topic of the driver, with the serdes to encode what is piped in.
#[derive(Debug, Clone)]
pub struct TestInputTopic<K, V> {
    name: String,
    keys: Arc<dyn Serde<K>>,
    values: Arc<dyn Serde<V>>,
}

impl<K, V> TestInputTopic<K, V> {
    /// The topic `name` with its serdes.
    pub fn new(name: &str, keys: impl Serde<K> + 'static, values: impl Serde<V> + 'static) -> Self {
        Self {
            name: name.to_string(),
            keys: Arc::new(keys),
            values: Arc::new(values),
        }
    }
}

/// An output topic of the driver, with the serdes to decode what was written.
#[derive(Debug, Clone)]
pub struct TestOutputTopic<K, V> {
    name: String,
    keys: Arc<dyn Serde<K>>,
    values: Arc<dyn Serde<V>>,
}

impl<K, V> TestOutputTopic<K, V> {
    /// The topic `name` with its serdes.
    pub fn new(name: &str, keys: impl Serde<K> + 'static, values: impl Serde<V> + 'static) -> Self {
        Self {
            name: name.to_string(),
            keys: Arc::new(keys),
            values: Arc::new(values),
        }
    }
}

/// Runs a topology record by record, without a broker.
pub struct TopologyTestDriver {
    topology: Topology,
    db: StateDb,
    tasks: Vec<Task>,
    outputs: HashMap<String, VecDeque<ProducerRecord>>,
    next_offsets: HashMap<String, i64>,
    handler: DeserializationHandler,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyTestDriver")
            .field("db", &self.db)
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl TopologyTestDriver {
    /// A driver with its wall clock at 0 and the deserialization handler `Fail`.
    pub fn new(topology: Topology) -> Result<Self> {
        Self::with_handler(topology, DeserializationHandler::Fail)
    }

    /// A driver with the given deserialization-error handler.
    pub fn with_handler(topology: Topology, handler: DeserializationHandler) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| {
            Error::IllegalState(format!(
                "cannot create the test driver's state directory: {e}"
            ))
        })?;
        let db = StateDb::open(dir.path())?;
        let app: Arc<str> = Arc::from("test-driver");
        let mut tasks = Vec::new();
        for (i, sub) in topology.sub_topologies().iter().enumerate() {
            let id = TaskId {
                sub_topology: i,
                partition: 0,
            };
            let mut task = Task::open(
                sub,
                id,
                app.clone(),
                &db,
                Clock::Manual(0),
                Arc::new(HashMap::new()),
            )?;
            task.core.init()?;
            tasks.push(task);
        }
        let mut driver = Self {
            topology,
            db,
            tasks,
            outputs: HashMap::new(),
            next_offsets: HashMap::new(),
            handler,
            _dir: dir,
        };
        driver.route_and_commit()?;
        Ok(driver)
    }

    /// Pipes one record into `topic` and processes it (and all it causes) to the end.
    pub fn pipe_input<K, V>(
        &mut self,
        topic: &TestInputTopic<K, V>,
        key: K,
        value: V,
        timestamp: i64,
    ) -> Result<()> {
        let key = topic.keys.serialize(&key)?;
        let value = topic.values.serialize_nullable(&value)?;
        self.pipe_raw(
            &topic.name,
            Some(key.into()),
            value.map(Into::into),
            timestamp,
        )
    }

    /// Pipes raw bytes (a null key or value as `None`), e.g. to test bad records.
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
    ) -> Result<()> {
        self.feed(topic, key, value, timestamp, Vec::new())?;
        self.route_and_commit()
    }

    fn feed(
        &mut self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Vec<sluice_log::batch::Header>,
    ) -> Result<()> {
        let globals: Vec<String> = self
            .topology
            .global_stores()
            .into_iter()
            .filter(|(_, t)| t == topic)
            .map(|(store, _)| store)
            .collect();
        if !globals.is_empty() {
            // A global store's topic updates the store at once (a null value deletes).
            let Some(key) = key else {
                return Ok(());
            };
            let mut overlay = self.db.overlay();
            for store in globals {
                let family = StoreName::global(store).column_family();
                match &value {
                    Some(v) => overlay.put(&family, key.to_vec(), v.to_vec()),
                    None => overlay.delete(&family, key.to_vec()),
                }
            }
            return self.db.apply(overlay, &[]);
        }
        let Some(sub) = self.topology.reader_of(topic) else {
            return Err(Error::IllegalState(format!(
                "no source of the topology reads topic `{topic}`"
            )));
        };
        let offset = self.next_offsets.entry(topic.to_string()).or_insert(0);
        let record = ConsumerRecord {
            topic: Arc::from(topic),
            partition: 0,
            offset: *offset,
            timestamp,
            key,
            value,
            headers,
        };
        *offset += 1;
        let task = &mut self.tasks[sub];
        task.enqueue(record);
        while task.process_next(&self.handler)? {}
        Ok(())
    }

    /// Moves what tasks produced to the output topics, or into the task reading it (a
    /// repartition topic), until nothing moves; then commits every task's writes.
    fn route_and_commit(&mut self) -> Result<()> {
        loop {
            let produced: Vec<ProducerRecord> =
                self.tasks.iter_mut().flat_map(Task::take_output).collect();
            if produced.is_empty() {
                break;
            }
            for record in produced {
                if self.topology.reader_of(&record.topic).is_some() {
                    let timestamp = record.timestamp.unwrap_or(0);
                    self.feed(
                        &record.topic,
                        record.key,
                        record.value,
                        timestamp,
                        record.headers,
                    )?;
                } else {
                    self.outputs
                        .entry(record.topic.clone())
                        .or_default()
                        .push_back(record);
                }
            }
        }
        for task in &mut self.tasks {
            let overlay = task.take_overlay();
            self.db.apply(overlay, &[])?;
        }
        Ok(())
    }

    /// Takes every record written to `topic` so far, decoded.
    pub fn read_output<K, V>(
        &mut self,
        topic: &TestOutputTopic<K, V>,
    ) -> Result<Vec<Record<K, V>>> {
        let records = self.outputs.remove(&topic.name).unwrap_or_default();
        records
            .into_iter()
            .map(|r| {
                Ok(Record {
                    key: topic
                        .keys
                        .deserialize(r.key.as_deref().unwrap_or_default())?,
                    value: topic.values.deserialize_nullable(r.value.as_deref())?,
                    timestamp: r.timestamp.unwrap_or(0),
                    headers: r.headers,
                })
            })
            .collect()
    }

    /// Takes every raw record written to `topic` so far (e.g. a dead-letter topic).
    pub fn read_raw_output(&mut self, topic: &str) -> Vec<ProducerRecord> {
        self.outputs
            .remove(topic)
            .map(Vec::from)
            .unwrap_or_default()
    }

    fn task_with_store(&mut self, name: &str) -> Result<&mut Task> {
        let sub = self
            .topology
            .sub_topologies()
            .iter()
            .position(|s| s.stores.contains(name))
            .ok_or_else(|| Error::Store(name.to_string(), "no such store in the topology"))?;
        Ok(&mut self.tasks[sub])
    }

    /// The key-value store `name`.
    pub fn kv_store<K: 'static, V: 'static>(&mut self, name: &str) -> Result<KvStore<'_, K, V>> {
        let (store, overlay) = self
            .task_with_store(name)?
            .core
            .store_by_name::<KeyValueStore<K, V>>(name)?;
        Ok(KvStore::new(store, overlay))
    }

    /// The window store `name`.
    pub fn window_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<WindowStoreHandle<'_, K, V>> {
        let (store, overlay) = self
            .task_with_store(name)?
            .core
            .store_by_name::<WindowStore<K, V>>(name)?;
        Ok(WindowStoreHandle::new(store, overlay))
    }

    /// The session store `name`.
    pub fn session_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<SessionStoreHandle<'_, K, V>> {
        let (store, overlay) = self
            .task_with_store(name)?
            .core
            .store_by_name::<SessionStore<K, V>>(name)?;
        Ok(SessionStoreHandle::new(store, overlay))
    }

    /// Moves the wall clock forward by `by`, firing the wall-clock punctuations due.
    pub fn advance_wall_clock(&mut self, by: Duration) -> Result<()> {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        for task in &mut self.tasks {
            if let Clock::Manual(now) = task.core.clock {
                task.core.clock = Clock::Manual(now.saturating_add(by));
            }
            task.core.punctuate_wall_clock()?;
        }
        self.route_and_commit()
    }

    /// Records processors dropped so far (see `ProcessorContext::record_dropped`).
    pub fn dropped_records(&self) -> u64 {
        self.tasks.iter().map(|t| t.core.dropped).sum()
    }

    /// The wall-clock time in ms.
    pub fn wall_clock_ms(&self) -> i64 {
        self.tasks.first().map_or(0, |t| t.core.wall_clock_ms())
    }
}
