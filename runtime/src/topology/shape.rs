//! The compiled form of one sub-topology that every one of its tasks shares: nodes by
//! index, their children and stores, and which node reads which topic.

use std::collections::BTreeMap;

/// A node of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeShape {
    /// Its name in the topology.
    pub name: String,
    /// Indices of its children, in the order they were added.
    pub children: Vec<usize>,
    /// The stores it may use.
    pub stores: Vec<String>,
}

/// The nodes of a sub-topology, indexed, with its source and sink topics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskShape {
    /// Nodes in the order they were added.
    pub nodes: Vec<NodeShape>,
    /// Source topic -> the node reading it.
    pub sources: BTreeMap<String, usize>,
}
