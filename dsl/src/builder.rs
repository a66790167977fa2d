//! [`StreamBuilder`]: where a DSL topology starts (`stream`, `table`) and ends (`build`). Operators
//! add nodes to one runtime `TopologyBuilder` shared by every stream made from the builder;
//! a node the runtime refuses (a duplicate name, say) is reported by `build`, so operator
//! chains stay free of `?`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use sluice_runtime::serde::{OptionSerde, Serde};
use sluice_runtime::topology::{Topology, TopologyBuilder, TopologyError};

use crate::{Data, Stream, Table};

pub(crate) struct Inner {
    pub topology: TopologyBuilder,
    next: usize,
    error: Option<TopologyError>,
    /// The names `named` chose, by the token of the stream they were given to; each is
    /// taken by the next operator applied to that stream, and by no other.
    pending_names: HashMap<u64, String>,
    next_token: u64,
}

impl Inner {
    /// The node name of an operator of `kind` applied to the stream with `token`: the name
    /// `named` chose for that stream if it has not been used yet, else a fresh `kind-0003`.
    pub fn name(&mut self, token: u64, kind: &str) -> String {
        if let Some(name) = self.pending_names.remove(&token) {
            return name;
        }
        self.next += 1;
        format!("{kind}-{:04}", self.next)
    }

    /// Keeps `name` for the next operator applied to a stream with the returned token.
    pub fn name_next(&mut self, name: &str) -> u64 {
        self.next_token += 1;
        self.pending_names.insert(self.next_token, name.to_string());
        self.next_token
    }

    /// Runs a change to the topology, keeping the first error for `build`.
    pub fn add(
        &mut self,
        change: impl FnOnce(&mut TopologyBuilder) -> Result<&mut TopologyBuilder, TopologyError>,
    ) {
        if let Err(e) = change(&mut self.topology)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

/// The token of a stream that `named` has not named.
pub(crate) const NO_NAME: u64 = 0;

/// Builds a topology with the DSL.
///
/// ```
/// use sluice_dsl::StreamBuilder;
/// let b = StreamBuilder::new();
/// b.stream::<(), String>("text-input")
///     .flat_map_values(|line| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
///     .filter(|_, word| word.len() > 3)
///     .to("long-words");
/// let topology = b.build()?;
/// assert_eq!(topology.sub_topologies().len(), 1);
/// # Ok::<(), sluice_dsl::runtime::topology::TopologyError>(())
/// ```
pub struct StreamBuilder {
    pub(crate) inner: Shared,
}

impl std::fmt::Debug for StreamBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBuilder").finish_non_exhaustive()
    }
}

impl Default for StreamBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            inner: Rc::new(RefCell::new(Inner {
                topology: TopologyBuilder::new(),
                next: 0,
                error: None,
                pending_names: HashMap::new(),
                next_token: 0,
            })),
        }
    }

    /// The records of `topic`, decoded with the default serdes of `K` and `V`.
    pub fn stream<K: Data, V: Data>(&self, topic: &str) -> Stream<K, V> {
        self.stream_with(topic, K::serde(), V::serde())
    }

    /// The records of `topic`, decoded with the given serdes.
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topic: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> Stream<K, V> {
        let (keys, values): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) =
            (Arc::new(keys), Arc::new(values));
        let name = {
            let mut inner = self.inner.borrow_mut();
            let name = inner.name(NO_NAME, "source");
            let (k, v) = (keys.clone(), values.clone());
            inner.add(|t| t.add_source(&name, &[topic], k, v));
            name
        };
        Stream::new(self.inner.clone(), name, keys, values, false)
    }

    /// The table whose changelog is `topic`: each record is its key's new value, a null
    /// value deletes the key. Kept in store `store`, with the default serdes of `K` and `V`.
    pub fn table<K: Data, V: Data>(&self, topic: &str, store: &str) -> Table<K, V> {
        self.table_with(topic, store, K::serde(), V::serde())
    }

    /// [`StreamBuilder::table`] with the given serdes.
    pub fn table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        store: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) -> Table<K, V> {
        let values: Arc<dyn Serde<V>> = Arc::new(values);
        self.stream_with::<K, Option<V>>(topic, keys, OptionSerde(values.clone()))
            .materialize(store, values)
    }

    /// Validates the topology and returns it, or the first error an operator met.
    pub fn build(self) -> Result<Topology, TopologyError> {
        let inner = self.inner.borrow();
        if let Some(e) = &inner.error {
            return Err(e.clone());
        }
        inner.topology.build()
    }
}
