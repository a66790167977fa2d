//! The three kinds of node a task runs, behind one type-erased trait: a source decodes a
//! consumed record with its serdes and forwards it; a processor node downcasts what it
//! receives to the user processor's input types and runs it; a sink encodes and picks the
//! output partition (murmur2 of the key bytes unless the sink has a partitioner).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use sluice_log::{ProducerRecord, partition_for_key};

use super::core::{ErasedRecord, TaskCore};
use crate::error::{Error, Result};
use crate::processor::{
    BoxError, Processor, ProcessorContext, PunctuationType, Record, processor_failed,
};
use crate::serde::Serde;

/// A node as a task runs it.
pub(crate) trait NodeLogic: Send {
    fn init(&mut self, _core: &mut TaskCore, _me: usize) -> Result<()> {
        Ok(())
    }
    fn process(&mut self, core: &mut TaskCore, me: usize, record: ErasedRecord) -> Result<()>;
    fn punctuate(
        &mut self,
        _core: &mut TaskCore,
        _me: usize,
        _kind: PunctuationType,
        _timestamp: i64,
    ) -> Result<()> {
        Ok(())
    }
    fn close(&mut self) {}
    /// Decodes consumed bytes and forwards them (sources only).
    fn deliver(
        &mut self,
        core: &mut TaskCore,
        me: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Vec<sluice_log::batch::Header>,
    ) -> Result<()> {
        let _ = (key, value, timestamp, headers);
        Err(Error::Reentrant(core.node_name(me).to_string()))
    }
}

/// A user's error as the runtime's: one already naming a processor passes through.
fn user_error(core: &TaskCore, me: usize, error: BoxError) -> Error {
    match error.downcast::<Error>() {
        Ok(e) if matches!(*e, Error::ProcessorFailed { .. }) => *e,
        Ok(e) => processor_failed(core, me, e.to_string()),
        Err(e) => processor_failed(core, me, e.to_string()),
    }
}

fn downcast<T: 'static>(core: &TaskCore, me: usize, value: Box<dyn Any + Send>) -> Result<T> {
    value.downcast::<T>().map(|b| *b).map_err(|_| {
        processor_failed(
            core,
            me,
            format!(
                "received a value that is not a {}",
                std::any::type_name::<T>()
            ),
        )
    })
}

/// Runs a user [`Processor`].
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub processor: P,
    pub _types: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> ProcessorNode<P, KIn, VIn, KOut, VOut> {
    fn ctx(core: &mut TaskCore, me: usize) -> ProcessorContext<'_, KOut, VOut> {
        ProcessorContext {
            core,
            node: me,
            _out: PhantomData,
        }
    }
}

impl<P, KIn, VIn, KOut, VOut> NodeLogic for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: 'static,
    VIn: 'static,
{
    fn init(&mut self, core: &mut TaskCore, me: usize) -> Result<()> {
        let result = self.processor.init(&mut Self::ctx(core, me));
        result.map_err(|e| user_error(core, me, e))
    }

    fn process(&mut self, core: &mut TaskCore, me: usize, record: ErasedRecord) -> Result<()> {
        let record = Record {
            key: downcast::<KIn>(core, me, record.key)?,
            value: downcast::<VIn>(core, me, record.value)?,
            timestamp: record.timestamp,
            headers: record.headers,
        };
        let result = self.processor.process(&mut Self::ctx(core, me), record);
        result.map_err(|e| user_error(core, me, e))
    }

    fn punctuate(
        &mut self,
        core: &mut TaskCore,
        me: usize,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<()> {
        let result = self
            .processor
            .punctuate(&mut Self::ctx(core, me), kind, timestamp);
        result.map_err(|e| user_error(core, me, e))
    }

    fn close(&mut self) {
        self.processor.close();
    }
}

/// Decodes what a source topic holds; a null key decodes from empty bytes, a null value as
/// the value serde says (`Serde::deserialize_nullable`).
pub(crate) struct SourceNode<K, V> {
    pub keys: Arc<dyn Serde<K>>,
    pub values: Arc<dyn Serde<V>>,
}

impl<K, V> NodeLogic for SourceNode<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn process(&mut self, core: &mut TaskCore, me: usize, record: ErasedRecord) -> Result<()> {
        let record = Record {
            key: downcast::<K>(core, me, record.key)?,
            value: downcast::<V>(core, me, record.value)?,
            timestamp: record.timestamp,
            headers: record.headers,
        };
        let children = core.children(me);
        core.forward(&children, record)
    }

    fn deliver(
        &mut self,
        core: &mut TaskCore,
        me: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Vec<sluice_log::batch::Header>,
    ) -> Result<()> {
        let bad = |e: Error| Error::Deserialization {
            topic: String::new(),
            partition: -1,
            offset: -1,
            reason: e.to_string(),
        };
        let key = self
            .keys
            .deserialize(key.unwrap_or_default())
            .map_err(bad)?;
        let value = self.values.deserialize_nullable(value).map_err(bad)?;
        let children = core.children(me);
        core.forward(
            &children,
            Record {
                key,
                value,
                timestamp,
                headers,
            },
        )
    }
}

/// Chooses a sink's output partition from the key, value and partition count.
pub type Partitioner<K, V> = Arc<dyn Fn(&K, &V, i32) -> i32 + Send + Sync>;

/// Encodes records for a topic.
pub(crate) struct SinkNode<K, V> {
    pub topic: String,
    pub keys: Arc<dyn Serde<K>>,
    pub values: Arc<dyn Serde<V>>,
    pub partitioner: Option<Partitioner<K, V>>,
}

impl<K: 'static, V: 'static> NodeLogic for SinkNode<K, V> {
    fn process(&mut self, core: &mut TaskCore, me: usize, record: ErasedRecord) -> Result<()> {
        let key: K = downcast(core, me, record.key)?;
        let value: V = downcast(core, me, record.value)?;
        let partitions = core.sink_partitions.get(&self.topic).copied().unwrap_or(1);
        let key_bytes = self.keys.serialize(&key)?;
        let partition = match &self.partitioner {
            Some(choose) => choose(&key, &value, partitions),
            None => partition_for_key(&key_bytes, partitions),
        };
        if !(0..partitions).contains(&partition) {
            return Err(processor_failed(
                core,
                me,
                format!(
                    "the partitioner chose partition {partition} of `{}`, which has {partitions}",
                    self.topic
                ),
            ));
        }
        let mut out = ProducerRecord::new(self.topic.clone(), Bytes::new())
            .with_key(Bytes::from(key_bytes))
            .with_partition(partition)
            .with_timestamp(record.timestamp);
        out.value = self.values.serialize_nullable(&value)?.map(Bytes::from);
        out.headers = record.headers;
        core.output.push(out);
        Ok(())
    }
}
