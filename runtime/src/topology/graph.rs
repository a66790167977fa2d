//! Validation of a topology's graph (names, parents, stores, cycles, edge types) and its
//! split into sub-topologies: connected components of parent links and shared stores, cut
//! where one part writes a topic that another reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{NodeKind, NodeShape, SubTopology, TaskShape, TopologyBuilder, TopologyError};

impl TopologyBuilder {
    pub(super) fn validate(&self) -> Result<(), TopologyError> {
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
                let Some(p) = self.nodes.get(parent) else {
                    return Err(TopologyError::UnknownParent {
                        node: name.clone(),
                        parent: parent.clone(),
                    });
                };
                if let NodeKind::Sink { .. } = p.kind {
                    return Err(TopologyError::SinkAsParent {
                        node: name.clone(),
                        parent: parent.clone(),
                    });
                }
                if let (Some(found), Some(expected)) = (p.typed.output, node.typed.input)
                    && !found.matches(&expected)
                {
                    return Err(TopologyError::TypeMismatch {
                        node: name.clone(),
                        parent: parent.clone(),
                        expected: expected.to_string(),
                        found: found.to_string(),
                    });
                }
            }
        }
        let global = self
            .global_stores
            .iter()
            .map(|(s, (_, _, users))| (s, users));
        for (store, users) in self.stores.iter().map(|(s, (_, u))| (s, u)).chain(global) {
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
        self.check_acyclic()
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
    pub(super) fn split(&self) -> Vec<SubTopology> {
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
        for (_, users) in self.stores.values() {
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
            .map(|nodes| self.sub_topology(nodes))
            .collect();
        subs.sort_by_key(|s| self.order.iter().position(|n| *n == s.nodes[0]));
        subs
    }

    fn sub_topology(&self, nodes: Vec<String>) -> SubTopology {
        let topics = |pick: fn(&NodeKind) -> Vec<String>| -> BTreeSet<String> {
            nodes
                .iter()
                .flat_map(|n| pick(&self.nodes[n].kind))
                .collect()
        };
        let store_names: BTreeSet<String> = self
            .stores
            .iter()
            .filter(|(_, (_, users))| users.iter().any(|u| nodes.contains(u)))
            .map(|(s, _)| s.clone())
            .collect();
        let position: BTreeMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut shape = TaskShape::default();
        for name in &nodes {
            let children = nodes
                .iter()
                .filter(|c| self.nodes[*c].parents.contains(name))
                .filter_map(|c| position.get(c.as_str()).copied())
                .collect();
            let global = self
                .global_stores
                .iter()
                .filter(|(_, (_, _, users))| users.contains(name))
                .map(|(s, _)| s.clone());
            let stores = self
                .stores
                .iter()
                .filter(|(_, (_, users))| users.contains(name))
                .map(|(s, _)| s.clone())
                .chain(global)
                .collect();
            if let NodeKind::Source { topics } = &self.nodes[name].kind {
                for topic in topics {
                    shape.sources.insert(topic.clone(), position[name.as_str()]);
                }
            }
            shape.nodes.push(NodeShape {
                name: name.clone(),
                children,
                stores,
            });
        }
        SubTopology {
            source_topics: topics(|k| match k {
                NodeKind::Source { topics } => topics.clone(),
                _ => Vec::new(),
            }),
            sink_topics: topics(|k| match k {
                NodeKind::Sink { topic } => vec![topic.clone()],
                _ => Vec::new(),
            }),
            factories: nodes
                .iter()
                .map(|n| self.nodes[n].typed.factory.clone())
                .collect(),
            store_specs: store_names
                .iter()
                .map(|s| self.stores[s].0.clone())
                .collect(),
            global_store_specs: self
                .global_stores
                .values()
                .filter(|(_, _, users)| users.iter().any(|u| nodes.contains(u)))
                .map(|(spec, _, _)| spec.clone())
                .collect(),
            stores: store_names,
            shape: Arc::new(shape),
            nodes,
        }
    }
}
