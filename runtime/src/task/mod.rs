//! Tasks (docs/architecture.md §3): one per sub-topology and partition number. A task owns fresh
//! instances of its sub-topology's nodes, its stores' column families, its write overlay
//! and a queue per input partition. It processes the queued record with the smallest
//! timestamp first (so stream time moves evenly across co-partitioned inputs), tracks the
//! next offset to commit per input partition, and hands its output and changelog records to
//! the thread that commits it.

pub(crate) mod core;
pub(crate) mod node;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use sluice_log::{ConsumerRecord, ProducerRecord, TopicPartition};

use self::core::{Clock, TaskCore};
use crate::config::DeserializationHandler;
use crate::error::{Error, Result};
use crate::processor::RecordMetadata;
use crate::state::{StateDb, StoreName, WriteOverlay, changelog_topic};
use crate::topology::SubTopology;

/// A task's id: its sub-topology and partition, shown as `sub_partition` as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology's number.
    pub sub_topology: usize,
    /// The partition number of its inputs.
    pub partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.sub_topology, self.partition)
    }
}

/// A running task.
pub(crate) struct Task {
    pub id: TaskId,
    pub core: TaskCore,
    queues: BTreeMap<TopicPartition, VecDeque<ConsumerRecord>>,
    /// The next offset to read per input partition, after what was processed.
    pub positions: BTreeMap<TopicPartition, i64>,
    /// The stores, with their changelog topics.
    pub changelogs: Vec<(StoreName, String)>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// Instantiates `sub`'s nodes and opens its stores for partition `id.partition`.
    pub fn open(
        sub: &SubTopology,
        id: TaskId,
        application_id: Arc<str>,
        db: &StateDb,
        clock: Clock,
        sink_partitions: Arc<HashMap<String, i32>>,
    ) -> Result<Self> {
        let nodes = sub.factories.iter().map(|f| f()).collect();
        let mut stores = HashMap::new();
        let mut changelogs = Vec::new();
        for spec in &sub.store_specs {
            let name = StoreName::new(spec.name(), id.partition);
            stores.insert(spec.name().to_string(), (spec.open)(db, &name)?);
            changelogs.push((name, changelog_topic(&application_id, spec.name())));
        }
        for spec in &sub.global_store_specs {
            let name = StoreName::global(spec.name());
            stores.insert(spec.name().to_string(), (spec.open)(db, &name)?);
        }
        let queues = sub
            .source_topics
            .iter()
            .map(|t| {
                (
                    TopicPartition::new(t.clone(), id.partition),
                    VecDeque::new(),
                )
            })
            .collect();
        let core = TaskCore::new(
            application_id,
            id.partition,
            sub.shape.clone(),
            nodes,
            stores,
            clock,
            sink_partitions,
        );
        Ok(Self {
            id,
            core,
            queues,
            positions: BTreeMap::new(),
            changelogs,
        })
    }

    /// The input partitions of the task.
    pub fn inputs(&self) -> impl Iterator<Item = &TopicPartition> {
        self.queues.keys()
    }

    /// Queues consumed records of one of the task's partitions.
    pub fn enqueue(&mut self, record: ConsumerRecord) {
        // A task has a queue per source topic: a scan beats building a key per record.
        let queue = self
            .queues
            .iter_mut()
            .find(|(tp, _)| tp.partition == record.partition && *tp.topic == *record.topic);
        if let Some((_, queue)) = queue {
            queue.push_back(record);
        }
    }

    /// Records queued and not yet processed.
    pub fn queued(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Records of `tp` queued and not yet processed.
    pub fn queued_of(&self, tp: &TopicPartition) -> usize {
        self.queues.get(tp).map_or(0, VecDeque::len)
    }

    /// Drops queued records (after an abort: they will be read again).
    pub fn clear_queues(&mut self) {
        for queue in self.queues.values_mut() {
            queue.clear();
        }
    }

    /// Processes the queued record with the smallest timestamp; false when none is queued.
    pub fn process_next(&mut self, on_bad_record: &DeserializationHandler) -> Result<bool> {
        let next = self
            .queues
            .iter_mut()
            .filter(|(_, q)| !q.is_empty())
            .min_by_key(|(_, q)| q.front().map_or(i64::MAX, |r| r.timestamp));
        let Some((tp, queue)) = next else {
            return Ok(false);
        };
        let Some(record) = queue.pop_front() else {
            return Ok(false);
        };
        match self.positions.get_mut(tp) {
            Some(position) => *position = record.offset + 1,
            None => {
                self.positions.insert(tp.clone(), record.offset + 1);
            }
        }
        self.process_record(record, on_bad_record)?;
        Ok(true)
    }

    fn process_record(
        &mut self,
        record: ConsumerRecord,
        on_bad_record: &DeserializationHandler,
    ) -> Result<()> {
        let Some(&source) = self.core.shape.sources.get(&*record.topic) else {
            return Ok(());
        };
        let timestamp = record.timestamp;
        self.core.current = Some(RecordMetadata {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
        });
        let result = self.core.deliver(
            source,
            record.key.as_deref(),
            record.value.as_deref(),
            record.timestamp,
            record.headers.clone(),
        );
        match result {
            Err(Error::Deserialization { reason, .. }) => {
                let error = Error::Deserialization {
                    topic: record.topic.to_string(),
                    partition: record.partition,
                    offset: record.offset,
                    reason,
                };
                self.on_bad_record(record, error, on_bad_record)?;
            }
            other => other?,
        }
        self.core.advance_stream_time(timestamp)?;
        self.core.current = None;
        Ok(())
    }

    fn on_bad_record(
        &mut self,
        record: ConsumerRecord,
        error: Error,
        handler: &DeserializationHandler,
    ) -> Result<()> {
        match handler {
            DeserializationHandler::Fail => Err(error),
            DeserializationHandler::LogAndSkip => {
                tracing::warn!(task = %self.id, %error, "skipping a record that does not deserialize");
                Ok(())
            }
            DeserializationHandler::DeadLetter { topic } => {
                tracing::warn!(task = %self.id, %error, dead_letter_topic = %topic, "record sent to the dead-letter topic");
                let mut out = ProducerRecord {
                    topic: topic.clone(),
                    partition: None,
                    key: record.key.clone(),
                    value: record.value.clone(),
                    timestamp: Some(record.timestamp),
                    headers: record.headers.clone(),
                };
                out = out
                    .with_header("sluice.error", error.to_string())
                    .with_header("sluice.topic", record.topic.to_string())
                    .with_header("sluice.partition", record.partition.to_string())
                    .with_header("sluice.offset", record.offset.to_string());
                self.core.output.push(out);
                Ok(())
            }
        }
    }

    /// Output records produced since the last call.
    pub fn take_output(&mut self) -> Vec<ProducerRecord> {
        std::mem::take(&mut self.core.output)
    }

    /// Takes the uncommitted writes (to apply after a commit, or to drop on abort).
    pub fn take_overlay(&mut self) -> WriteOverlay {
        std::mem::take(&mut self.core.overlay)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::processor::{ProcessResult, Processor, ProcessorContext, Record};
    use crate::serde::{BigEndianSerde, StringSerde};
    use crate::topology::TopologyBuilder;

    /// Remembers the timestamps it sees.
    struct Seen(Arc<Mutex<Vec<i64>>>);

    impl Processor<String, i64> for Seen {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, i64>,
            r: Record<String, i64>,
        ) -> ProcessResult {
            self.0.lock().map_err(|_| "poisoned")?.push(r.timestamp);
            let _ = ctx.stream_time();
            Ok(())
        }
    }

    fn record(topic: &str, offset: i64, timestamp: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from(topic),
            partition: 0,
            offset,
            timestamp,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: Some(bytes::Bytes::copy_from_slice(&timestamp.to_be_bytes())),
            headers: Vec::new(),
        }
    }

    #[test]
    fn co_partitioned_inputs_are_merged_by_timestamp_and_stream_time_only_grows() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        let mut b = TopologyBuilder::new();
        b.add_source::<String, i64>("s", &["left", "right"], StringSerde, BigEndianSerde)
            .expect("source");
        b.add_processor("seen", &["s"], move || Seen(shared.clone()))
            .expect("processor");
        let topology = b.build().expect("topology");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path()).expect("db");
        let id = TaskId {
            sub_topology: 0,
            partition: 0,
        };
        let mut task = Task::open(
            &topology.sub_topologies()[0],
            id,
            Arc::from("app"),
            &db,
            Clock::Manual(0),
            Arc::new(HashMap::new()),
        )
        .expect("task");
        task.core.init().expect("init");
        for (offset, ts) in [(0, 10), (1, 40), (2, 30)] {
            task.enqueue(record("left", offset, ts));
        }
        for (offset, ts) in [(0, 20), (1, 35)] {
            task.enqueue(record("right", offset, ts));
        }
        let mut stream_times = Vec::new();
        while task
            .process_next(&DeserializationHandler::Fail)
            .expect("process")
        {
            stream_times.push(task.core.stream_time);
        }
        // The smallest head first: left 10, right 20, right 35, left 40, then left 30 (out
        // of order within its partition, processed in offset order; stream time stays 40).
        assert_eq!(*seen.lock().expect("lock"), vec![10, 20, 35, 40, 30]);
        assert_eq!(stream_times, vec![10, 20, 35, 40, 40]);
        assert_eq!(task.positions[&TopicPartition::new("left", 0)], 3);
        assert_eq!(task.positions[&TopicPartition::new("right", 0)], 2);
    }
}
