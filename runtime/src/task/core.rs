//! The inside of a task: its nodes (type-erased processors, sources and sinks), their child
//! links, the task's typed stores and write overlay, the output it produced, the record
//! being processed, stream time and punctuation schedules. [`ProcessorContext`] is a typed
//! window onto it; forwarding runs children depth first, as Kafka Streams does.
//!
//! [`ProcessorContext`]: crate::processor::ProcessorContext

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_log::ProducerRecord;
use sluice_log::batch::Header;

use super::node::NodeLogic;
use crate::error::{Error, Result};
use crate::processor::{PunctuationType, Record, RecordMetadata};
use crate::state::WriteOverlay;
use crate::topology::TaskShape;

/// A key or value on its way between nodes.
pub(crate) type AnyValue = Box<dyn Any + Send>;

/// A record between nodes, its key and value erased.
pub(crate) struct ErasedRecord {
    pub key: AnyValue,
    pub value: AnyValue,
    pub timestamp: i64,
    pub headers: Vec<Header>,
}

/// Where a task's wall clock comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    /// The system clock.
    System,
    /// Time set by the test driver.
    Manual(i64),
}

#[derive(Debug, Clone)]
struct Schedule {
    node: usize,
    kind: PunctuationType,
    interval_ms: i64,
    next: Option<i64>,
}

/// Everything a task's nodes share while they run.
pub(crate) struct TaskCore {
    pub application_id: Arc<str>,
    pub partition: i32,
    pub shape: Arc<TaskShape>,
    nodes: Vec<Option<Box<dyn NodeLogic>>>,
    stores: HashMap<String, Box<dyn Any + Send>>,
    pub overlay: WriteOverlay,
    pub output: Vec<ProducerRecord>,
    pub current: Option<RecordMetadata>,
    pub stream_time: i64,
    pub clock: Clock,
    schedules: Vec<Schedule>,
    /// The node running now (the innermost, when forwarding): named when it panics.
    pub running: Option<usize>,
    /// Partition counts of the topics the sinks write.
    pub sink_partitions: Arc<HashMap<String, i32>>,
    /// Records processors dropped (late for their windows, say) since last taken.
    pub dropped: u64,
}

impl TaskCore {
    pub fn new(
        application_id: Arc<str>,
        partition: i32,
        shape: Arc<TaskShape>,
        nodes: Vec<Box<dyn NodeLogic>>,
        stores: HashMap<String, Box<dyn Any + Send>>,
        clock: Clock,
        sink_partitions: Arc<HashMap<String, i32>>,
    ) -> Self {
        Self {
            application_id,
            partition,
            shape,
            nodes: nodes.into_iter().map(Some).collect(),
            stores,
            overlay: WriteOverlay::default(),
            output: Vec::new(),
            current: None,
            stream_time: i64::MIN,
            clock,
            schedules: Vec::new(),
            running: None,
            sink_partitions,
            dropped: 0,
        }
    }

    pub fn node_name(&self, node: usize) -> &str {
        self.shape
            .nodes
            .get(node)
            .map_or("(unknown)", |n| n.name.as_str())
    }

    pub fn children(&self, node: usize) -> Vec<usize> {
        self.shape
            .nodes
            .get(node)
            .map(|n| n.children.clone())
            .unwrap_or_default()
    }

    pub fn child_named(&self, node: usize, child: &str) -> Result<usize> {
        self.children(node)
            .into_iter()
            .find(|&c| self.node_name(c) == child)
            .ok_or_else(|| Error::UnknownChild {
                processor: self.node_name(node).to_string(),
                child: child.to_string(),
            })
    }

    pub fn wall_clock_ms(&self) -> i64 {
        match self.clock {
            Clock::System => sluice_log::now_ms(),
            Clock::Manual(now) => now,
        }
    }

    /// Sends a typed record to `targets`, cloning for all but the last.
    pub fn forward<K, V>(&mut self, targets: &[usize], record: Record<K, V>) -> Result<()>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let Some((&last, rest)) = targets.split_last() else {
            return Ok(());
        };
        for &target in rest {
            self.run(target, erase(record.clone()))?;
        }
        self.run(last, erase(record))
    }

    /// Runs node `target` on `record`.
    pub fn run(&mut self, target: usize, record: ErasedRecord) -> Result<()> {
        let mut node = self.take(target)?;
        let caller = self.running.replace(target);
        let result = node.process(self, target, record);
        self.nodes[target] = Some(node);
        if result.is_ok() {
            self.running = caller;
        }
        result
    }

    /// Hands consumed bytes to source node `source`.
    pub fn deliver(
        &mut self,
        source: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Vec<Header>,
    ) -> Result<()> {
        let mut node = self.take(source)?;
        self.running = Some(source);
        let result = node.deliver(self, source, key, value, timestamp, headers);
        self.nodes[source] = Some(node);
        if result.is_ok() {
            self.running = None;
        }
        result
    }

    fn take(&mut self, target: usize) -> Result<Box<dyn NodeLogic>> {
        let name = self.node_name(target).to_string();
        self.nodes
            .get_mut(target)
            .and_then(Option::take)
            .ok_or(Error::Reentrant(name))
    }

    /// Calls `init` on every node, in topology order.
    pub fn init(&mut self) -> Result<()> {
        for target in 0..self.nodes.len() {
            let mut node = self.take(target)?;
            self.running = Some(target);
            let result = node.init(self, target);
            self.nodes[target] = Some(node);
            result?;
        }
        self.running = None;
        Ok(())
    }

    /// Calls `close` on every node.
    pub fn close(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            node.close();
        }
    }

    /// A store connected to `node`, as `S`, with the overlay it writes to.
    pub fn store<S: 'static>(
        &mut self,
        node: usize,
        name: &str,
    ) -> Result<(&S, &mut WriteOverlay)> {
        let connected = self
            .shape
            .nodes
            .get(node)
            .is_some_and(|n| n.stores.iter().any(|s| s == name));
        if !connected {
            return Err(Error::StoreNotConnected {
                store: name.to_string(),
                processor: self.node_name(node).to_string(),
            });
        }
        let store = self
            .stores
            .get(name)
            .and_then(|s| s.downcast_ref::<S>())
            .ok_or_else(|| Error::StoreType {
                store: name.to_string(),
                requested: std::any::type_name::<S>(),
            })?;
        Ok((store, &mut self.overlay))
    }

    /// A store of the task by name (the test driver's view), with the overlay.
    pub fn store_by_name<S: 'static>(&mut self, name: &str) -> Result<(&S, &mut WriteOverlay)> {
        let store = self
            .stores
            .get(name)
            .and_then(|s| s.downcast_ref::<S>())
            .ok_or_else(|| Error::StoreType {
                store: name.to_string(),
                requested: std::any::type_name::<S>(),
            })?;
        Ok((store, &mut self.overlay))
    }

    pub fn schedule(
        &mut self,
        node: usize,
        interval: Duration,
        kind: PunctuationType,
    ) -> Result<()> {
        let interval_ms = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let next = match kind {
            PunctuationType::StreamTime if self.stream_time == i64::MIN => None,
            PunctuationType::StreamTime => Some(self.stream_time.saturating_add(interval_ms)),
            PunctuationType::WallClockTime => {
                Some(self.wall_clock_ms().saturating_add(interval_ms))
            }
        };
        self.schedules.push(Schedule {
            node,
            kind,
            interval_ms,
            next,
        });
        Ok(())
    }

    /// Moves stream time to `timestamp` if later, and fires stream-time punctuations due.
    pub fn advance_stream_time(&mut self, timestamp: i64) -> Result<()> {
        if timestamp <= self.stream_time {
            return Ok(());
        }
        self.stream_time = timestamp;
        self.punctuate(PunctuationType::StreamTime, timestamp)
    }

    /// Fires wall-clock punctuations due at `now`.
    pub fn punctuate_wall_clock(&mut self) -> Result<()> {
        let now = self.wall_clock_ms();
        self.punctuate(PunctuationType::WallClockTime, now)
    }

    fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        let mut i = 0;
        while i < self.schedules.len() {
            let s = &mut self.schedules[i];
            i += 1;
            if s.kind != kind {
                continue;
            }
            let due = match s.next {
                None => {
                    s.next = Some(now.saturating_add(s.interval_ms));
                    false
                }
                Some(next) => next <= now,
            };
            if !due {
                continue;
            }
            s.next = Some(now.saturating_add(s.interval_ms));
            let target = s.node;
            let saved = self.current.take();
            let mut node = self.take(target)?;
            self.running = Some(target);
            let result = node.punctuate(self, target, kind, now);
            self.nodes[target] = Some(node);
            self.current = saved;
            result?;
            self.running = None;
        }
        Ok(())
    }
}

fn erase<K: Send + 'static, V: Send + 'static>(record: Record<K, V>) -> ErasedRecord {
    ErasedRecord {
        key: Box::new(record.key),
        value: Box::new(record.value),
        timestamp: record.timestamp,
        headers: record.headers,
    }
}
