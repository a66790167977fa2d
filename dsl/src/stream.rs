//! [`Stream`]: an unbounded sequence of keyed records, and its stateless operators. Each
//! operator adds one processor to the topology and returns the stream of what it forwards.
//! An operator that may change the key marks the stream, so a later grouping knows it
//! must repartition.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use sluice_runtime::processor::Processor;
use sluice_runtime::serde::Serde;
use sluice_runtime::topology::{StoreSpec, TopologyError};

use crate::Data;
use crate::builder::{NO_NAME, Shared};
use crate::ops::{Filter, FlatMap, FlatMapFn, Pass, Peek, PeekFn, Predicate, Split};

/// A typed stream of records.
pub struct Stream<K, V> {
    pub(crate) inner: Shared,
    pub(crate) node: String,
    pub(crate) keys: Arc<dyn Serde<K>>,
    pub(crate) values: Arc<dyn Serde<V>>,
    /// The key may differ from the partitioning of the source.
    pub(crate) key_changed: bool,
    /// Which name `named` chose for the next operator on this stream (`NO_NAME`: none).
    pub(crate) name_token: u64,
}

impl<K, V> std::fmt::Debug for Stream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("node", &self.node)
            .field("key_changed", &self.key_changed)
            .finish_non_exhaustive()
    }
}

impl<K, V> Clone for Stream<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            node: self.node.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            key_changed: self.key_changed,
            name_token: self.name_token,
        }
    }
}

impl<K: Data, V: Data> Stream<K, V> {
    pub(crate) fn new(
        inner: Shared,
        node: String,
        keys: Arc<dyn Serde<K>>,
        values: Arc<dyn Serde<V>>,
        key_changed: bool,
    ) -> Self {
        Self {
            inner,
            node,
            keys,
            values,
            key_changed,
            name_token: NO_NAME,
        }
    }

    /// Names the next operator applied to this stream: its processor gets `name`, and the
    /// stores and internal topics it derives (`<name>-repartition`, `<name>-left-store`...)
    /// are named after it, so they stay stable when the topology changes elsewhere
    /// (Kafka Streams' `Named`). Operators that take a store name use that for the store.
    /// The name goes to exactly one operator: the next one applied to the stream returned
    /// here (or a clone of it). Operators on other streams of the builder, and on `self`,
    /// keep their generated names.
    ///
    /// ```
    /// use sluice_dsl::StreamBuilder;
    /// let b = StreamBuilder::new();
    /// b.stream::<String, i64>("in").named("only-positive").filter(|_, v| *v > 0).to("out");
    /// let topology = b.build()?;
    /// assert!(topology.describe().contains("Processor: only-positive"));
    /// # Ok::<(), sluice_dsl::runtime::topology::TopologyError>(())
    /// ```
    pub fn named(&self, name: &str) -> Self {
        let name_token = self.inner.borrow_mut().name_next(name);
        Self {
            name_token,
            ..self.clone()
        }
    }

    /// This stream with `keys` as its key serde from here on (for the topics, repartition
    /// topics and stores of the operators that follow).
    pub fn with_key_serde(&self, keys: impl Serde<K> + 'static) -> Self {
        Self {
            keys: Arc::new(keys),
            ..self.clone()
        }
    }

    /// This stream with `values` as its value serde from here on.
    pub fn with_value_serde(&self, values: impl Serde<V> + 'static) -> Self {
        Self {
            values: Arc::new(values),
            ..self.clone()
        }
    }

    /// The processor node this stream's records come from.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// The name of the next operator on this stream: the one `named` chose for it, or a
    /// generated `kind-N`. Sites that already hold `inner` borrowed call `Inner::name`.
    pub(crate) fn next_node_name(&self, kind: &str) -> String {
        self.inner.borrow_mut().name(self.name_token, kind)
    }

    /// Adds processor `P` (made by `factory`) fed by `parents`; returns its name.
    pub(crate) fn add<P, K2, V2>(
        &self,
        kind: &str,
        parents: &[&str],
        factory: impl Fn() -> P + Send + Sync + 'static,
    ) -> String
    where
        P: Processor<K, V, K2, V2> + 'static,
        K2: Data,
        V2: Data,
    {
        let name = self.next_node_name(kind);
        self.add_as::<P, K2, V2>(&name, parents, factory);
        name
    }

    /// Adds processor `P` named `name` (from `Inner::name`) fed by `parents`.
    pub(crate) fn add_as<P, K2, V2>(
        &self,
        name: &str,
        parents: &[&str],
        factory: impl Fn() -> P + Send + Sync + 'static,
    ) where
        P: Processor<K, V, K2, V2> + 'static,
        K2: Data,
        V2: Data,
    {
        self.inner
            .borrow_mut()
            .add(|t| t.add_processor::<P, K, V, K2, V2>(name, parents, factory));
    }

    /// Records `error` for `build` to report.
    pub(crate) fn fail(&self, error: String) {
        self.inner
            .borrow_mut()
            .add(|_| Err(TopologyError::Invalid(error)));
    }

    /// This stream, through the repartition topic `topic` if its key may have changed.
    pub(crate) fn co_partitioned(&self, topic: &str) -> Self {
        if self.key_changed {
            self.repartition(topic)
        } else {
            self.clone()
        }
    }

    /// Adds the state store `spec`, used by processor `node`.
    pub(crate) fn add_store(&self, spec: StoreSpec, node: &str) {
        self.inner
            .borrow_mut()
            .add(|t| t.add_state_store(spec, &[node]));
    }

    /// Gives processor `node` access to the existing store `store`.
    pub(crate) fn connect_store(&self, store: &str, node: &str) {
        self.inner
            .borrow_mut()
            .add(|t| t.connect_store(store, node));
    }

    pub(crate) fn derive<K2: Data, V2: Data>(
        &self,
        node: String,
        keys: Arc<dyn Serde<K2>>,
        values: Arc<dyn Serde<V2>>,
        key_changed: bool,
    ) -> Stream<K2, V2> {
        Stream::new(self.inner.clone(), node, keys, values, key_changed)
    }

    pub(crate) fn flat_map_inner<K2: Data, V2: Data>(
        &self,
        kind: &str,
        f: impl Fn(K, V) -> Vec<(K2, V2)> + Send + Sync + 'static,
        keys: Arc<dyn Serde<K2>>,
        values: Arc<dyn Serde<V2>>,
        key_changed: bool,
    ) -> Stream<K2, V2> {
        let f: FlatMapFn<K, V, K2, V2> = Arc::new(f);
        let node = self.add::<FlatMap<K, V, K2, V2>, K2, V2>(kind, &[&self.node], move || {
            FlatMap { f: f.clone() }
        });
        self.derive(node, keys, values, key_changed)
    }

    /// The records for which `keep` holds.
    pub fn filter(&self, keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter_inner("filter", Arc::new(keep), false)
    }

    /// The records for which `drop` does not hold.
    pub fn filter_not(&self, drop: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter_inner("filter-not", Arc::new(drop), true)
    }

    fn filter_inner(&self, kind: &str, keep: Predicate<K, V>, negate: bool) -> Self {
        let node = self.add::<Filter<K, V>, K, V>(kind, &[&self.node], move || Filter {
            keep: keep.clone(),
            negate,
        });
        self.derive(
            node,
            self.keys.clone(),
            self.values.clone(),
            self.key_changed,
        )
    }

    /// Each record as the key and value `f` returns (the key may change).
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> Stream<K2, V2> {
        self.flat_map_inner(
            "map",
            move |k, v| vec![f(k, v)],
            K2::serde(),
            V2::serde(),
            true,
        )
    }

    /// Each record with the value `f` returns (the key is kept).
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> Stream<K, V2> {
        self.flat_map_inner(
            "map-values",
            move |k, v| vec![(k, f(v))],
            self.keys.clone(),
            V2::serde(),
            self.key_changed,
        )
    }

    /// Each record as the records `f` returns (keys may change).
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.flat_map_inner(
            "flat-map",
            move |k, v| f(k, v).into_iter().collect(),
            K2::serde(),
            V2::serde(),
            true,
        )
    }

    /// Each record as one record per value `f` returns, with the same key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> Stream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.flat_map_inner(
            "flat-map-values",
            move |k: K, v| f(v).into_iter().map(|v2| (k.clone(), v2)).collect(),
            self.keys.clone(),
            V2::serde(),
            self.key_changed,
        )
    }

    /// Each record with the key `f` chooses.
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> Stream<K2, V> {
        self.flat_map_inner(
            "select-key",
            move |k, v| vec![(f(&k, &v), v)],
            K2::serde(),
            self.values.clone(),
            true,
        )
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        let f: PeekFn<K, V> = Arc::new(f);
        let node = self.add::<Peek<K, V>, K, V>("peek", &[&self.node], move || Peek {
            f: f.clone(),
            terminal: false,
        });
        self.derive(
            node,
            self.keys.clone(),
            self.values.clone(),
            self.key_changed,
        )
    }

    /// Calls `f` on each record; the stream ends here.
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let f: PeekFn<K, V> = Arc::new(f);
        self.add::<Peek<K, V>, K, V>("foreach", &[&self.node], move || Peek {
            f: f.clone(),
            terminal: true,
        });
    }

    /// This stream and `other` as one (in the order records arrive).
    pub fn merge(&self, other: &Stream<K, V>) -> Self {
        let node =
            self.add::<Pass<K, V>, K, V>("merge", &[&self.node, &other.node], || Pass(PhantomData));
        self.derive(
            node,
            self.keys.clone(),
            self.values.clone(),
            self.key_changed || other.key_changed,
        )
    }

    /// Splits the stream into named branches: each record goes to the first branch whose
    /// predicate holds, else to the default branch if there is one, else nowhere.
    pub fn split(&self) -> Splitter<K, V> {
        Splitter {
            stream: self.clone(),
            branches: Vec::new(),
        }
    }

    /// Writes the stream to `topic` with its serdes; the partition is murmur2 of the key.
    pub fn to(&self, topic: &str) {
        self.to_with(topic, self.keys.clone(), self.values.clone());
    }

    /// Writes the stream to `topic` with the given serdes.
    pub fn to_with(
        &self,
        topic: &str,
        keys: impl Serde<K> + 'static,
        values: impl Serde<V> + 'static,
    ) {
        let mut inner = self.inner.borrow_mut();
        let name = inner.name(self.name_token, "sink");
        let parent = self.node.clone();
        inner.add(|t| t.add_sink(&name, topic, &[&parent], keys, values));
    }

    /// Writes the stream to `topic`, the partition chosen by `partitioner(key, value,
    /// partition count)`.
    pub fn to_with_partitioner(
        &self,
        topic: &str,
        partitioner: impl Fn(&K, &V, i32) -> i32 + Send + Sync + 'static,
    ) {
        let mut inner = self.inner.borrow_mut();
        let name = inner.name(self.name_token, "sink");
        let (parent, keys, values) = (self.node.clone(), self.keys.clone(), self.values.clone());
        inner.add(|t| {
            t.add_sink_with_partitioner(&name, topic, &[&parent], keys, values, partitioner)
        });
    }

    /// Writes the stream to the internal topic `topic` and reads it back: the records are
    /// partitioned by their current key (a sub-topology boundary). An app names the topic
    /// `<application id>-<topic>` on the broker and creates it when it starts.
    pub fn repartition(&self, topic: &str) -> Self {
        self.to(topic);
        let mut inner = self.inner.borrow_mut();
        inner.add(|t| Ok(t.declare_internal_topic(topic)));
        let name = inner.name(self.name_token, "repartition-source");
        let (keys, values) = (self.keys.clone(), self.values.clone());
        inner.add(|t| t.add_source(&name, &[topic], keys, values));
        drop(inner);
        self.derive(name, self.keys.clone(), self.values.clone(), false)
    }

    /// Groups the stream by its key (repartitioning first if the key may have changed).
    pub fn group_by_key(&self) -> crate::Grouped<K, V> {
        crate::Grouped {
            stream: self.clone(),
        }
    }

    /// Groups the stream by the key `f` chooses; a repartition topic is added.
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> crate::Grouped<K2, V> {
        crate::Grouped {
            stream: self.select_key(f),
        }
    }

    /// The Processor API as an escape hatch: a processor made by `factory` for each task,
    /// with `stores` connected to it; the stream of what it forwards, with the default
    /// serdes of `K2` and `V2`.
    pub fn process<P, K2: Data, V2: Data>(
        &self,
        factory: impl Fn() -> P + Send + Sync + 'static,
        stores: Vec<StoreSpec>,
    ) -> Stream<K2, V2>
    where
        P: Processor<K, V, K2, V2> + 'static,
    {
        let node = self.add::<P, K2, V2>("process", &[&self.node], factory);
        let mut inner = self.inner.borrow_mut();
        for store in stores {
            let at = node.clone();
            inner.add(|t| t.add_state_store(store, &[&at]));
        }
        drop(inner);
        self.derive(node, K2::serde(), V2::serde(), true)
    }
}

/// Builds the branches of [`Stream::split`].
pub struct Splitter<K, V> {
    stream: Stream<K, V>,
    branches: Vec<(String, Predicate<K, V>)>,
}

impl<K, V> std::fmt::Debug for Splitter<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&String> = self.branches.iter().map(|(n, _)| n).collect();
        f.debug_struct("Splitter")
            .field("branches", &names)
            .finish_non_exhaustive()
    }
}

impl<K: Data, V: Data> Splitter<K, V> {
    /// A branch named `name` for the records `predicate` holds for (and no earlier one).
    pub fn branch(
        mut self,
        name: &str,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.branches.push((name.to_string(), Arc::new(predicate)));
        self
    }

    /// The branches, by name; records no predicate holds for are dropped.
    pub fn no_default_branch(self) -> BTreeMap<String, Stream<K, V>> {
        self.finish(None)
    }

    /// The branches, by name, and `name` for the records no predicate holds for.
    pub fn default_branch(self, name: &str) -> BTreeMap<String, Stream<K, V>> {
        self.finish(Some(name.to_string()))
    }

    fn finish(self, default: Option<String>) -> BTreeMap<String, Stream<K, V>> {
        let s = &self.stream;
        let split = s.next_node_name("split");
        let child = |branch: &str| format!("{split}-{branch}");
        let branches: Vec<(String, Predicate<K, V>)> = self
            .branches
            .iter()
            .map(|(name, p)| (child(name), p.clone()))
            .collect();
        let default_child = default.as_deref().map(child);
        {
            let mut inner = s.inner.borrow_mut();
            let (b, d) = (branches.clone(), default_child.clone());
            let parent = s.node.clone();
            inner.add(|t| {
                t.add_processor::<Split<K, V>, K, V, K, V>(&split, &[&parent], move || Split {
                    branches: b.clone(),
                    default: d.clone(),
                })
            });
        }
        let mut out = BTreeMap::new();
        let names = self.branches.iter().map(|(n, _)| n.clone()).chain(default);
        for name in names {
            let node = child(&name);
            let mut inner = s.inner.borrow_mut();
            inner.add(|t| {
                t.add_processor::<Pass<K, V>, K, V, K, V>(&node, &[&split], || Pass(PhantomData))
            });
            drop(inner);
            out.insert(
                name,
                s.derive(node, s.keys.clone(), s.values.clone(), s.key_changed),
            );
        }
        out
    }
}
