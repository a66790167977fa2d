//! The shape of a topology (DESIGN §3): named sources (reading topics), processors and sinks
//! (writing topics), their parent links and the state stores connected to processors;
//! validated ([`TopologyBuilder::build`]) and split into sub-topologies at topics that one
//! part writes and another reads (repartition topics). [`Topology::describe`] prints it.
//!
//! This module holds the graph only; the processors that run at its nodes attach to it
//! with the Processor API.
//!
//! ```
//! use sluice_runtime::topology::TopologyBuilder;
//! let mut b = TopologyBuilder::new();
//! b.add_source("lines", &["text-input"]).unwrap();
//! b.add_processor("split", &["lines"]).unwrap();
//! b.add_sink("to-repartition", "words-repartition", &["split"]).unwrap();
//! b.add_source("words", &["words-repartition"]).unwrap();
//! b.add_processor("count", &["words"]).unwrap();
//! b.add_state_store("counts", &["count"]).unwrap();
//! b.add_sink("out", "word-counts", &["count"]).unwrap();
//! let topology = b.build().unwrap();
//! assert_eq!(topology.sub_topologies().len(), 2);
//! println!("{}", topology.describe());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What is wrong with a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
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
}

/// Builds and validates a topology's graph.
#[derive(Debug, Default, Clone)]
pub struct TopologyBuilder {
    nodes: BTreeMap<String, Node>,
    order: Vec<String>,
    stores: BTreeMap<String, Vec<String>>,
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
    ) -> Result<&mut Self, TopologyError> {
        if self.nodes.contains_key(name) || self.stores.contains_key(name) {
            return Err(TopologyError::DuplicateName(name.to_string()));
        }
        let parents = parents.iter().map(|p| p.to_string()).collect();
        self.nodes.insert(name.to_string(), Node { kind, parents });
        self.order.push(name.to_string());
        Ok(self)
    }

    /// A source reading `topics`.
    pub fn add_source(&mut self, name: &str, topics: &[&str]) -> Result<&mut Self, TopologyError> {
        let topics = topics.iter().map(|t| t.to_string()).collect();
        self.add(name, NodeKind::Source { topics }, &[])
    }

    /// A processor fed by `parents`.
    pub fn add_processor(
        &mut self,
        name: &str,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        self.add(name, NodeKind::Processor, parents)
    }

    /// A sink writing `topic`, fed by `parents`.
    pub fn add_sink(
        &mut self,
        name: &str,
        topic: &str,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        self.add(
            name,
            NodeKind::Sink {
                topic: topic.to_string(),
            },
            parents,
        )
    }

    /// A state store used by `processors`.
    pub fn add_state_store(
        &mut self,
        name: &str,
        processors: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        if self.nodes.contains_key(name) || self.stores.contains_key(name) {
            return Err(TopologyError::DuplicateName(name.to_string()));
        }
        self.stores.insert(
            name.to_string(),
            processors.iter().map(|p| p.to_string()).collect(),
        );
        Ok(self)
    }

    /// Validates the graph and splits it into sub-topologies.
    pub fn build(&self) -> Result<Topology, TopologyError> {
        let mut readers: BTreeMap<&str, &str> = BTreeMap::new();
        for name in &self.order {
            let node = &self.nodes[name];
            match &node.kind {
                NodeKind::Source { topics } if topics.is_empty() => {
                    return Err(TopologyError::Unconnected(
                        name.clone(),
                        "a source needs a topic",
                    ));
                }
                NodeKind::Source { topics } => {
                    for topic in topics {
                        if let Some(first) = readers.insert(topic, name) {
                            return Err(TopologyError::TopicReadTwice {
                                topic: topic.clone(),
                                first: first.to_string(),
                                second: name.clone(),
                            });
                        }
                    }
                }
                _ if node.parents.is_empty() => {
                    return Err(TopologyError::Unconnected(name.clone(), "it has no parent"));
                }
                _ => {}
            }
            for parent in &node.parents {
                match self.nodes.get(parent).map(|p| &p.kind) {
                    None => {
                        return Err(TopologyError::UnknownParent {
                            node: name.clone(),
                            parent: parent.clone(),
                        });
                    }
                    Some(NodeKind::Sink { .. }) => {
                        return Err(TopologyError::SinkAsParent {
                            node: name.clone(),
                            parent: parent.clone(),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        for (store, users) in &self.stores {
            if users.is_empty() {
                return Err(TopologyError::UnconnectedStore(store.clone()));
            }
            for user in users {
                if !matches!(
                    self.nodes.get(user).map(|n| &n.kind),
                    Some(NodeKind::Processor)
                ) {
                    return Err(TopologyError::StoreOnNonProcessor {
                        store: store.clone(),
                        node: user.clone(),
                    });
                }
            }
        }
        self.check_acyclic()?;
        Ok(Topology {
            sub_topologies: self.split(),
            builder: self.clone(),
        })
    }

    fn check_acyclic(&self) -> Result<(), TopologyError> {
        // 0 unvisited, 1 on the current path, 2 done.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        fn visit<'a>(
            b: &'a TopologyBuilder,
            n: &'a str,
            state: &mut BTreeMap<&'a str, u8>,
        ) -> Result<(), TopologyError> {
            match state.get(n) {
                Some(1) => return Err(TopologyError::Cycle(n.to_string())),
                Some(2) => return Ok(()),
                _ => {}
            }
            state.insert(n, 1);
            for p in &b.nodes[n].parents {
                visit(b, p, state)?;
            }
            state.insert(n, 2);
            Ok(())
        }
        for name in &self.order {
            visit(self, name, &mut state)?;
        }
        Ok(())
    }

    /// Connected components of nodes (parent links and shared stores), each with its nodes
    /// in insertion order; a topic written by one component and read by another separates
    /// them (the reading source starts its own sub-topology).
    fn split(&self) -> Vec<SubTopology> {
        let index: BTreeMap<&str, usize> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut group: Vec<usize> = (0..self.order.len()).collect();
        fn root(group: &mut [usize], mut n: usize) -> usize {
            while group[n] != n {
                group[n] = group[group[n]];
                n = group[n];
            }
            n
        }
        let mut links: Vec<(usize, usize)> = Vec::new();
        for name in &self.order {
            for parent in &self.nodes[name].parents {
                links.push((index[name.as_str()], index[parent.as_str()]));
            }
        }
        for users in self.stores.values() {
            for pair in users.windows(2) {
                links.push((index[pair[0].as_str()], index[pair[1].as_str()]));
            }
        }
        for (a, b) in links {
            let (ra, rb) = (root(&mut group, a), root(&mut group, b));
            group[ra] = rb;
        }
        let mut parts: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (i, name) in self.order.iter().enumerate() {
            let r = root(&mut group, i);
            parts.entry(r).or_default().push(name.clone());
        }
        let mut subs: Vec<SubTopology> = parts
            .into_values()
            .map(|nodes| {
                let topics = |pick: fn(&NodeKind) -> Vec<String>| -> BTreeSet<String> {
                    nodes
                        .iter()
                        .flat_map(|n| pick(&self.nodes[n].kind))
                        .collect()
                };
                let stores = self
                    .stores
                    .iter()
                    .filter(|(_, users)| users.iter().any(|u| nodes.contains(u)))
                    .map(|(s, _)| s.clone())
                    .collect();
                SubTopology {
                    source_topics: topics(|k| match k {
                        NodeKind::Source { topics } => topics.clone(),
                        _ => Vec::new(),
                    }),
                    sink_topics: topics(|k| match k {
                        NodeKind::Sink { topic } => vec![topic.clone()],
                        _ => Vec::new(),
                    }),
                    stores,
                    nodes,
                }
            })
            .collect();
        subs.sort_by_key(|s| self.order.iter().position(|n| *n == s.nodes[0]));
        subs
    }
}

/// One independently scheduled part of a topology: its tasks run one per partition of its
/// source topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubTopology {
    /// Its nodes, in the order they were added.
    pub nodes: Vec<String>,
    /// Topics its sources read.
    pub source_topics: BTreeSet<String>,
    /// Topics its sinks write.
    pub sink_topics: BTreeSet<String>,
    /// Its state stores.
    pub stores: BTreeSet<String>,
}

/// A validated topology graph.
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
                    .filter(|(_, users)| users.contains(name))
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
