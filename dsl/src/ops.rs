//! The processors behind the stateless operators. Each holds its user function behind an
//! `Arc`, so the topology can make one per task.

use std::marker::PhantomData;
use std::sync::Arc;

use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};

use crate::Data;

/// A function of a record to its replacements.
pub(crate) type FlatMapFn<K, V, K2, V2> = Arc<dyn Fn(K, V) -> Vec<(K2, V2)> + Send + Sync>;

/// A function that looks at a record.
pub(crate) type PeekFn<K, V> = Arc<dyn Fn(&K, &V) + Send + Sync>;

/// Keeps the records `keep` says yes to (or no to, when `negate`).
pub(crate) struct Filter<K, V> {
    pub keep: Predicate<K, V>,
    pub negate: bool,
}

impl<K: Data, V: Data> Processor<K, V> for Filter<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, r: Record<K, V>) -> ProcessResult {
        if (self.keep)(&r.key, &r.value) != self.negate {
            ctx.forward(r)?;
        }
        Ok(())
    }
}

/// Turns each record into any number of records (map, map_values, flat_map, select_key...
/// are all this with a different function).
pub(crate) struct FlatMap<K, V, K2, V2> {
    pub f: FlatMapFn<K, V, K2, V2>,
}

impl<K: Data, V: Data, K2: Data, V2: Data> Processor<K, V, K2, V2> for FlatMap<K, V, K2, V2> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        r: Record<K, V>,
    ) -> ProcessResult {
        let (timestamp, headers) = (r.timestamp, r.headers);
        for (key, value) in (self.f)(r.key, r.value) {
            ctx.forward(Record {
                key,
                value,
                timestamp,
                headers: headers.clone(),
            })?;
        }
        Ok(())
    }
}

/// Calls `f` on each record; forwards it unchanged unless `terminal`.
pub(crate) struct Peek<K, V> {
    pub f: PeekFn<K, V>,
    pub terminal: bool,
}

impl<K: Data, V: Data> Processor<K, V> for Peek<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, r: Record<K, V>) -> ProcessResult {
        (self.f)(&r.key, &r.value);
        if !self.terminal {
            ctx.forward(r)?;
        }
        Ok(())
    }
}

/// Forwards everything (the join point of `merge`, the head of a branch).
pub(crate) struct Pass<K, V>(pub PhantomData<fn(K, V)>);

impl<K: Data, V: Data> Processor<K, V> for Pass<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, r: Record<K, V>) -> ProcessResult {
        ctx.forward(r)?;
        Ok(())
    }
}

/// A branch predicate.
pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Sends each record to the first branch whose predicate holds (or the default branch).
pub(crate) struct Split<K, V> {
    pub branches: Vec<(String, Predicate<K, V>)>,
    pub default: Option<String>,
}

impl<K: Data, V: Data> Processor<K, V> for Split<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, r: Record<K, V>) -> ProcessResult {
        let target = self
            .branches
            .iter()
            .find(|(_, p)| p(&r.key, &r.value))
            .map(|(child, _)| child)
            .or(self.default.as_ref());
        if let Some(child) = target {
            ctx.forward_to(child, r)?;
        }
        Ok(())
    }
}
