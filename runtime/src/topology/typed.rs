//! What a node is made of besides its links: a factory for the node a task runs, and the
//! key and value types on its edges, which `build` checks parent by parent.

use std::any::TypeId;
use std::sync::Arc;

use crate::task::node::NodeLogic;

/// A key and value type, with names for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSig {
    key: TypeId,
    value: TypeId,
    /// The key type's name.
    pub key_name: &'static str,
    /// The value type's name.
    pub value_name: &'static str,
}

impl TypeSig {
    /// The signature of `K, V`.
    pub fn of<K: 'static, V: 'static>() -> Self {
        Self {
            key: TypeId::of::<K>(),
            value: TypeId::of::<V>(),
            key_name: std::any::type_name::<K>(),
            value_name: std::any::type_name::<V>(),
        }
    }

    /// Whether both types are the same as `other`'s.
    pub fn matches(&self, other: &TypeSig) -> bool {
        self.key == other.key && self.value == other.value
    }
}

impl std::fmt::Display for TypeSig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}, {}>", self.key_name, self.value_name)
    }
}

/// Makes a fresh node for each task.
pub(crate) type NodeFactory = Arc<dyn Fn() -> Box<dyn NodeLogic> + Send + Sync>;

/// Makes a sink's factory for the topic it writes (so a topology can rename topics).
pub(crate) type SinkFactory = Arc<dyn Fn(String) -> NodeFactory + Send + Sync>;

/// A node's factory and edge types.
#[derive(Clone)]
pub(crate) struct Typed {
    pub factory: NodeFactory,
    /// For a sink: its factory for another topic.
    pub retarget: Option<SinkFactory>,
    /// What it receives (none for a source).
    pub input: Option<TypeSig>,
    /// What it forwards (none for a sink).
    pub output: Option<TypeSig>,
}

impl std::fmt::Debug for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typed")
            .field("input", &self.input)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}
