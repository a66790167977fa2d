//! Topologies (docs/architecture.md §3): named sources (reading topics with their serdes), processors
//! (user [`Processor`]s), sinks (writing topics, murmur2 by key unless given a partitioner)
//! and the state stores connected to processors. Typed at the edges: a child's input types
//! must be its parent's output types, checked when [`TopologyBuilder::build`] validates the
//! graph. It is split into sub-topologies at topics that one part writes and another reads
//! (repartition topics); [`Topology::describe`] prints it.
//!
//! ```
//! use sluice_runtime::processor::{Processor, ProcessorContext, ProcessResult, Record};
//! use sluice_runtime::serde::{BigEndianSerde, StringSerde, UnitSerde};
//! use sluice_runtime::topology::{StoreSpec, TopologyBuilder};
//!
//! #[derive(Debug)]
//! struct Split;
//! impl Processor<(), String, String, String> for Split {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>,
//!                r: Record<(), String>) -> ProcessResult {
//!         for w in r.value.split_whitespace() {
//!             ctx.forward(Record::new(w.to_string(), w.to_string(), r.timestamp))?;
//!         }
//!         Ok(())
//!     }
//! }
//! #[derive(Debug)]
//! struct Count;
//! impl Processor<String, String, String, u64> for Count {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, u64>,
//!                r: Record<String, String>) -> ProcessResult {
//!         let mut store = ctx.kv_store::<String, u64>("counts")?;
//!         let n = store.get(&r.key)?.unwrap_or(0) + 1;
//!         store.put(&r.key, &n)?;
//!         ctx.forward(r.with_value(n))?;
//!         Ok(())
//!     }
//! }
//!
//! let mut b = TopologyBuilder::new();
//! b.add_source("lines", &["text-input"], UnitSerde, StringSerde)?;
//! b.add_processor("split", &["lines"], || Split)?;
//! b.add_sink("to-repartition", "words-repartition", &["split"], StringSerde, StringSerde)?;
//! b.add_source("words", &["words-repartition"], StringSerde, StringSerde)?;
//! b.add_processor("count", &["words"], || Count)?;
//! b.add_state_store(StoreSpec::key_value::<String, u64>("counts", StringSerde, BigEndianSerde), &["count"])?;
//! b.add_sink::<String, u64>("out", "word-counts", &["count"], StringSerde, BigEndianSerde)?;
//! let topology = b.build()?;
//! assert_eq!(topology.sub_topologies().len(), 2);
//! println!("{}", topology.describe());
//! # Ok::<(), sluice_runtime::topology::TopologyError>(())
//! ```
//!
//! [`Processor`]: crate::processor::Processor

mod shape;
mod store_spec;
mod typed;

pub use shape::{NodeShape, TaskShape};
pub use store_spec::{StoreKind, StoreSpec};
pub use typed::TypeSig;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::processor::Processor;
use crate::serde::Serde;
use crate::task::node::{Partitioner, ProcessorNode, SinkNode, SourceNode};
use typed::Typed;

mod graph;
mod internal;

/// What is wrong with a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// A topology the DSL (or another builder on top) cannot make, and why.
    #[error("{0}")]
    Invalid(String),
    /// Two nodes (or two stores) with one name.
    #[error("the name `{0}` is used twice")]
    DuplicateName(String),
    /// A parent that does not exist.
    #[error("node `{node}` names an unknown parent `{parent}`")]
    UnknownParent {
        /// The node.
        node: String,
        /// The missing parent.
        parent: String,
    },
    /// A sink as a parent: sinks have no children.
    #[error("node `{node}` cannot have the sink `{parent}` as a parent")]
    SinkAsParent {
        /// The node.
        node: String,
        /// The sink.
        parent: String,
    },
    /// A processor or sink without parents, or a source without topics.
    #[error("node `{0}` is not connected: {1}")]
    Unconnected(String, &'static str),
    /// A store connected to no processor, or to something that is not a processor.
    #[error("state store `{0}` is not connected to a processor")]
    UnconnectedStore(String),
    /// A store connected to an unknown or non-processor node.
    #[error("state store `{store}` is connected to `{node}`, which is not a processor")]
    StoreOnNonProcessor {
        /// The store.
        store: String,
        /// The node.
        node: String,
    },
    /// The parent links loop.
    #[error("the topology has a cycle through `{0}`")]
    Cycle(String),
    /// A topic read by two sources.
    #[error("topic `{topic}` is read by both `{first}` and `{second}`")]
    TopicReadTwice {
        /// The topic.
        topic: String,
        /// One source.
        first: String,
        /// The other.
        second: String,
    },
    /// A child whose input types are not its parent's output types.
    #[error("node `{node}` takes {expected} but its parent `{parent}` forwards {found}")]
    TypeMismatch {
        /// The child.
        node: String,
        /// The parent.
        parent: String,
        /// The child's input.
        expected: String,
        /// The parent's output.
        found: String,
    },
    /// Sources that meet in one task read topics with different partition counts.
    #[error(
        "sub-topology {sub_topology} reads co-partitioned topics with different partition counts: {counts}"
    )]
    CoPartitioning {
        /// The sub-topology.
        sub_topology: usize,
        /// Each topic with its count.
        counts: String,
    },
}

/// A node's kind and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// Reads these topics.
    Source {
        /// Its topics.
        topics: Vec<String>,
    },
    /// Runs a processor.
    Processor,
    /// Writes this topic.
    Sink {
        /// Its topic.
        topic: String,
    },
}

#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    parents: Vec<String>,
    typed: Typed,
}

/// Builds and validates a topology.
#[derive(Debug, Default, Clone)]
pub struct TopologyBuilder {
    nodes: BTreeMap<String, Node>,
    order: Vec<String>,
    stores: BTreeMap<String, (StoreSpec, Vec<String>)>,
    /// Global stores: spec, the topic that fills them, the processors that read them.
    global_stores: BTreeMap<String, (StoreSpec, String, Vec<String>)>,
    /// Topics the topology owns, renamed per application (`internal.rs`).
    declared_internal: BTreeSet<String>,
    /// The owned topics as an application names them, once renamed (`internal.rs`).
    app_internal: BTreeSet<String>,
}

impl TopologyBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(
        &mut self,
        name: &str,
        kind: NodeKind,
        parents: &[&str],
        typed: Typed,
    ) -> Result<&mut Self, TopologyError> {
        if self.name_taken(name) {
            return Err(TopologyError::DuplicateName(name.to_string()));
        }
        let parents = parents.iter().map(|p| p.to_string()).collect();
        self.nodes.insert(
            name.to_string(),
            Node {
                kind,
                parents,
                typed,
            },
        );
        self.order.push(name.to_string());
        Ok(self)
    }

    /// A source reading `topics`, decoding keys and values with the serdes. A null key or
    /// value decodes from empty bytes.
    pub fn add_source<K, V>(
        &mut self,
        name: &str,
        topics: &[&str],
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> Result<&mut Self, TopologyError>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let topics = topics.iter().map(|t| t.to_string()).collect();
        let (keys, values): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) =
            (Arc::new(keys), Arc::new(values));
        let typed = Typed {
            factory: Arc::new(move || {
                Box::new(SourceNode {
                    keys: keys.clone(),
                    values: values.clone(),
                })
            }),
            input: None,
            output: Some(TypeSig::of::<K, V>()),
            retarget: None,
        };
        self.add(name, NodeKind::Source { topics }, &[], typed)
    }

    /// A processor fed by `parents`; `factory` makes one instance per task.
    pub fn add_processor<P, KIn, VIn, KOut, VOut>(
        &mut self,
        name: &str,
        parents: &[&str],
        factory: impl Fn() -> P + Send + Sync + 'static,
    ) -> Result<&mut Self, TopologyError>
    where
        P: Processor<KIn, VIn, KOut, VOut> + 'static,
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
    {
        let typed = Typed {
            factory: Arc::new(move || {
                Box::new(ProcessorNode {
                    processor: factory(),
                    _types: PhantomData::<fn(KIn, VIn, KOut, VOut)>,
                })
            }),
            input: Some(TypeSig::of::<KIn, VIn>()),
            output: Some(TypeSig::of::<KOut, VOut>()),
            retarget: None,
        };
        self.add(name, NodeKind::Processor, parents, typed)
    }

    /// A sink writing `topic`, fed by `parents`; the partition is murmur2 of the key bytes
    /// (Kafka's default partitioner).
    pub fn add_sink<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        topic: &str,
        parents: &[&str],
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> Result<&mut Self, TopologyError> {
        self.add_sink_inner(name, topic, parents, Arc::new(keys), Arc::new(values), None)
    }

    /// A sink whose partition `partitioner(key, value, partition count)` chooses.
    pub fn add_sink_with_partitioner<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        topic: &str,
        parents: &[&str],
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
        partitioner: impl Fn(&K, &V, i32) -> i32 + Send + Sync + 'static,
    ) -> Result<&mut Self, TopologyError> {
        let partitioner: Partitioner<K, V> = Arc::new(partitioner);
        self.add_sink_inner(
            name,
            topic,
            parents,
            Arc::new(keys),
            Arc::new(values),
            Some(partitioner),
        )
    }

    fn add_sink_inner<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        topic: &str,
        parents: &[&str],
        keys: Arc<dyn Serde<K>>,
        values: Arc<dyn Serde<V>>,
        partitioner: Option<Partitioner<K, V>>,
    ) -> Result<&mut Self, TopologyError> {
        let retarget: typed::SinkFactory = Arc::new(move |topic: String| {
            let (keys, values, partitioner) = (keys.clone(), values.clone(), partitioner.clone());
            let factory: typed::NodeFactory = Arc::new(move || {
                Box::new(SinkNode {
                    topic: topic.clone(),
                    keys: keys.clone(),
                    values: values.clone(),
                    partitioner: partitioner.clone(),
                })
            });
            factory
        });
        let typed = Typed {
            factory: retarget(topic.to_string()),
            input: Some(TypeSig::of::<K, V>()),
            output: None,
            retarget: Some(retarget),
        };
        let kind = NodeKind::Sink {
            topic: topic.to_string(),
        };
        self.add(name, kind, parents, typed)
    }

    /// A state store used by `processors`.
    pub fn add_state_store(
        &mut self,
        store: StoreSpec,
        processors: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        let name = store.name.clone();
        if self.name_taken(&name) {
            return Err(TopologyError::DuplicateName(name));
        }
        let users = processors.iter().map(|p| p.to_string()).collect();
        self.stores.insert(name, (store, users));
        Ok(self)
    }

    /// A node, store or global store is named `name` already.
    fn name_taken(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
            || self.stores.contains_key(name)
            || self.global_stores.contains_key(name)
    }

    /// A global key-value store: every instance keeps all of `topic` (every partition) in
    /// it, read_committed, a null value deleting its key; the topic is its changelog. It is
    /// filled before the stream threads start and kept up to date by a thread of its own;
    /// processors connected with [`TopologyBuilder::connect_store`] read it (and must not
    /// write it). Its serdes must be the topic's: keys are stored as the topic's bytes.
    pub fn add_global_store(
        &mut self,
        store: StoreSpec,
        topic: &str,
    ) -> Result<&mut Self, TopologyError> {
        let name = store.name.clone();
        if self.name_taken(&name) {
            return Err(TopologyError::DuplicateName(name));
        }
        if store.kind() != StoreKind::KeyValue {
            return Err(TopologyError::Invalid(format!(
                "global store `{name}` must be a key-value store"
            )));
        }
        self.global_stores
            .insert(name, (store, topic.to_string(), Vec::new()));
        Ok(self)
    }

    /// Gives `processor` access to the existing store `store` too (a join reading the store
    /// of a table, say). Processors sharing a (non-global) store run in one task.
    pub fn connect_store(
        &mut self,
        store: &str,
        processor: &str,
    ) -> Result<&mut Self, TopologyError> {
        let users = match (
            self.stores.get_mut(store),
            self.global_stores.get_mut(store),
        ) {
            (Some((_, users)), _) | (None, Some((_, _, users))) => users,
            (None, None) => {
                return Err(TopologyError::Invalid(format!(
                    "there is no state store `{store}`"
                )));
            }
        };
        if !users.iter().any(|u| u == processor) {
            users.push(processor.to_string());
        }
        Ok(self)
    }

    /// Validates the graph and splits it into sub-topologies.
    pub fn build(&self) -> Result<Topology, TopologyError> {
        self.validate()?;
        Ok(Topology {
            sub_topologies: self.split(),
            builder: self.clone(),
        })
    }
}

/// One independently scheduled part of a topology: its tasks run one per partition of its
/// (co-partitioned) source topics.
#[derive(Clone)]
pub struct SubTopology {
    /// Its nodes, in the order they were added.
    pub nodes: Vec<String>,
    /// Topics its sources read.
    pub source_topics: BTreeSet<String>,
    /// Topics its sinks write.
    pub sink_topics: BTreeSet<String>,
    /// Its state stores.
    pub stores: BTreeSet<String>,
    /// Nodes by index, as its tasks run them.
    pub shape: Arc<TaskShape>,
    pub(crate) factories: Vec<typed::NodeFactory>,
    pub(crate) store_specs: Vec<StoreSpec>,
    /// The global stores its processors read.
    pub(crate) global_store_specs: Vec<StoreSpec>,
}

impl std::fmt::Debug for SubTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubTopology")
            .field("nodes", &self.nodes)
            .field("source_topics", &self.source_topics)
            .field("sink_topics", &self.sink_topics)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

/// A validated topology.
#[derive(Debug, Clone)]
pub struct Topology {
    builder: TopologyBuilder,
    sub_topologies: Vec<SubTopology>,
}

impl Topology {
    /// The sub-topologies, numbered by position.
    pub fn sub_topologies(&self) -> &[SubTopology] {
        &self.sub_topologies
    }

    /// The global stores: name and the topic that fills each.
    pub fn global_stores(&self) -> Vec<(String, String)> {
        self.builder
            .global_stores
            .iter()
            .map(|(name, (_, topic, _))| (name.clone(), topic.clone()))
            .collect()
    }

    /// The topic that fills global store `store`, if it is one.
    pub fn global_topic(&self, store: &str) -> Option<&str> {
        self.builder
            .global_stores
            .get(store)
            .map(|(_, topic, _)| topic.as_str())
    }

    /// The sub-topology reading `topic`, by number.
    pub fn reader_of(&self, topic: &str) -> Option<usize> {
        self.sub_topologies
            .iter()
            .position(|s| s.source_topics.contains(topic))
    }

    /// Topics written by one sub-topology and read by another (repartition topics).
    pub fn internal_topics(&self) -> BTreeSet<String> {
        let read: BTreeSet<&String> = self
            .sub_topologies
            .iter()
            .flat_map(|s| &s.source_topics)
            .collect();
        self.sub_topologies
            .iter()
            .flat_map(|s| &s.sink_topics)
            .filter(|t| read.contains(t))
            .cloned()
            .collect()
    }

    /// Topics read by the topology that no part of it writes.
    pub fn external_source_topics(&self) -> BTreeSet<String> {
        let internal = self.internal_topics();
        self.sub_topologies
            .iter()
            .flat_map(|s| &s.source_topics)
            .filter(|t| !internal.contains(*t))
            .cloned()
            .collect()
    }

    /// Every source topic, upstream first: the external inputs, then each repartition
    /// topic once every topic its writers read is listed (a cycle, which no builder makes,
    /// ends the list in name order). Checked in this order, a group committed to the end of
    /// every one has processed everything: the commit that wrote a repartition topic's
    /// records also committed the input they came from.
    pub fn source_topics_upstream_first(&self) -> Vec<String> {
        let internal = self.internal_topics();
        let mut ordered: Vec<String> = self.external_source_topics().into_iter().collect();
        let mut placed: BTreeSet<String> = ordered.iter().cloned().collect();
        loop {
            let ready: Vec<String> = internal
                .iter()
                .filter(|t| !placed.contains(*t))
                .filter(|t| {
                    self.sub_topologies
                        .iter()
                        .filter(|s| s.sink_topics.contains(*t))
                        .all(|w| w.source_topics.iter().all(|r| placed.contains(r)))
                })
                .cloned()
                .collect();
            if ready.is_empty() {
                break;
            }
            placed.extend(ready.iter().cloned());
            ordered.extend(ready);
        }
        ordered.extend(internal.into_iter().filter(|t| !placed.contains(t)));
        ordered
    }

    /// The topology as readable text, in the spirit of Kafka Streams' `describe()`.
    pub fn describe(&self) -> String {
        let b = &self.builder;
        let mut out = String::from("Topologies:\n");
        for (i, sub) in self.sub_topologies.iter().enumerate() {
            let _ = writeln!(out, "   Sub-topology: {i}");
            for name in &sub.nodes {
                let node = &b.nodes[name];
                let children: Vec<&str> = b
                    .order
                    .iter()
                    .filter(|c| b.nodes[*c].parents.contains(name))
                    .map(String::as_str)
                    .collect();
                let stores: Vec<&str> = b
                    .stores
                    .iter()
                    .filter(|(_, (_, users))| users.contains(name))
                    .map(|(s, _)| s.as_str())
                    .collect();
                let head = match &node.kind {
                    NodeKind::Source { topics } => {
                        format!("Source: {name} (topics: [{}])", topics.join(", "))
                    }
                    NodeKind::Processor => {
                        format!("Processor: {name} (stores: [{}])", stores.join(", "))
                    }
                    NodeKind::Sink { topic } => format!("Sink: {name} (topic: {topic})"),
                };
                let _ = writeln!(out, "    {head}");
                if !children.is_empty() {
                    let _ = writeln!(out, "      --> {}", children.join(", "));
                }
                if !node.parents.is_empty() {
                    let _ = writeln!(out, "      <-- {}", node.parents.join(", "));
                }
            }
        }
        out
    }
}
