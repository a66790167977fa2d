//! Processors the integration tests build topologies from: word splitting and counting,
//! a count-and-sum aggregate, a pass-through, and one that fails on demand.

#![allow(dead_code)]

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::{BigEndianSerde, BincodeSerde, StringSerde, UnitSerde};
use sluice_runtime::topology::{StoreSpec, Topology, TopologyBuilder};

/// Splits a line into lowercase words, each keyed by itself.
#[derive(Debug, Default)]
pub struct Split;

impl Processor<(), String, String, String> for Split {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<(), String>,
    ) -> ProcessResult {
        for word in record.value.split_whitespace() {
            let word = word.to_lowercase();
            ctx.forward(Record::new(word.clone(), word, record.timestamp))?;
        }
        Ok(())
    }
}

/// Counts records per key in the store `counts`, forwarding the new count.
#[derive(Debug, Default)]
pub struct Count;

impl Processor<String, String, String, u64> for Count {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, u64>,
        record: Record<String, String>,
    ) -> ProcessResult {
        let mut counts = ctx.kv_store::<String, u64>("counts")?;
        let n = counts.get(&record.key)?.unwrap_or(0) + 1;
        counts.put(&record.key, &n)?;
        ctx.forward(record.with_value(n))?;
        Ok(())
    }
}

/// Running count and sum of a key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Agg {
    /// Records seen.
    pub count: u64,
    /// Sum of their values.
    pub sum: i64,
}

/// Folds `i64` values per key into an [`Agg`] in the store `agg`, forwarding each new one.
#[derive(Debug, Default)]
pub struct CountSum;

impl Processor<String, i64, String, Agg> for CountSum {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Agg>,
        record: Record<String, i64>,
    ) -> ProcessResult {
        let mut store = ctx.kv_store::<String, Agg>("agg")?;
        let mut agg = store.get(&record.key)?.unwrap_or_default();
        agg.count += 1;
        agg.sum += record.value;
        store.put(&record.key, &agg)?;
        ctx.forward(record.with_value(agg))?;
        Ok(())
    }
}

/// Forwards what it gets.
#[derive(Debug)]
pub struct Pass<K, V>(PhantomData<fn(K, V)>);

impl<K, V> Default for Pass<K, V> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Processor<K, V> for Pass<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> ProcessResult {
        ctx.forward(record)?;
        Ok(())
    }
}

/// `lines` -> split -> `words-repartition` -> count -> `word-counts`.
pub fn wordcount_builder() -> TopologyBuilder {
    let mut b = TopologyBuilder::new();
    b.add_source("lines", &["text-input"], UnitSerde, StringSerde)
        .expect("source");
    b.add_processor("split", &["lines"], || Split)
        .expect("processor");
    b.add_sink(
        "to-words",
        "words-repartition",
        &["split"],
        StringSerde,
        StringSerde,
    )
    .expect("sink");
    b.add_source("words", &["words-repartition"], StringSerde, StringSerde)
        .expect("source");
    b.add_processor("count", &["words"], || Count)
        .expect("processor");
    b.add_state_store(
        StoreSpec::key_value::<String, u64>("counts", StringSerde, BigEndianSerde),
        &["count"],
    )
    .expect("store");
    b.add_sink::<String, u64>(
        "out",
        "word-counts",
        &["count"],
        StringSerde,
        BigEndianSerde,
    )
    .expect("sink");
    b
}

/// `in` (String -> i64) -> count and sum per key (store `agg`) -> `out` (String -> Agg).
pub fn count_sum(input: &str, output: &str) -> Topology {
    let mut b = TopologyBuilder::new();
    b.add_source::<String, i64>("in", &[input], StringSerde, BigEndianSerde)
        .expect("source");
    b.add_processor("count-sum", &["in"], || CountSum)
        .expect("processor");
    b.add_state_store(
        StoreSpec::key_value("agg", StringSerde, BincodeSerde::<Agg>::default()),
        &["count-sum"],
    )
    .expect("store");
    b.add_sink(
        "out",
        output,
        &["count-sum"],
        StringSerde,
        BincodeSerde::<Agg>::default(),
    )
    .expect("sink");
    b.build().expect("valid topology")
}
