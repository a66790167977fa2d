//! Produce on the embedded broker: appending a batch (checked, idempotent, transactional
//! when its header says so) and waiting for it to be durable, blocking or as a future
//! (docs/architecture.md §2.3, §2.8).

use bytes::Bytes;

use super::{Acks, Broker, ProducerIdAndEpoch, is_internal};
use crate::batch::BatchHeader;
use crate::error::{Error, Result};
use crate::storage::{AppendOutcome, DurableWait};
use crate::topic::TopicPartition;

impl Broker {
    /// Appends one v2 record batch to a partition (Produce) with `acks=all`. The batch is
    /// checked (CRC, records, producer sequence); the returned offsets are where it landed, or
    /// where it already was when it is a retry of an appended batch.
    pub fn produce(&self, topic: &str, partition: i32, batch: Bytes) -> Result<AppendOutcome> {
        self.produce_with_acks(topic, partition, batch, Acks::All)
    }

    /// Produce with an explicit `acks`. Under the `commit` fsync policy a non-transactional
    /// batch with `acks=all` is fsynced before it is acknowledged. A transactional batch is
    /// accepted only from the current epoch of a producer whose open transaction includes the
    /// partition (KIP-890), and is appended under that transaction's lock.
    pub fn produce_with_acks(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: Acks,
    ) -> Result<AppendOutcome> {
        let (outcome, durable_at) = self.produce_deferred(topic, partition, batch, acks)?;
        if let Some(up_to) = durable_at {
            self.wait_durable(topic, partition, up_to)?;
        }
        Ok(outcome)
    }

    /// Produce without waiting for durability: the batch is appended (and visible), and
    /// when its acknowledgement must wait for an fsync (acks=all under `commit`, any write
    /// under `always`) the offset to pass to [`wait_durable`](Self::wait_durable) is
    /// returned. A server keeps answering a connection's next requests meanwhile, and the
    /// waits of all producers share fsyncs (group commit).
    pub fn produce_deferred(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: Acks,
    ) -> Result<(AppendOutcome, Option<i64>)> {
        self.check_open()?;
        if is_internal(topic) {
            return Err(Error::UnsupportedBatch {
                topic: topic.to_string(),
                partition,
                reason: "internal topics are written by the broker only",
            });
        }
        let target = self.inner.topics.get(topic)?.partition(partition)?;
        let header = BatchHeader::parse(&batch).ok();
        if let Some(h) = header.filter(|h| h.has_producer_id())
            && !self.inner.pids.lock().is_known(h.producer_id)
        {
            return Err(Error::UnknownProducerId {
                producer_id: h.producer_id,
            });
        }
        match header.filter(|h| h.is_transactional() && h.has_producer_id()) {
            Some(h) => {
                let producer = ProducerIdAndEpoch {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                };
                let tp = TopicPartition::new(topic, partition);
                self.with_verified_txn(producer, &tp, || target.append_deferred(batch, acks))
            }
            None => target.append_deferred(batch, acks),
        }
    }

    /// Waits until every offset of a partition below `up_to` is durable, sharing the fsync
    /// with every other waiter on the partition (group commit).
    pub fn wait_durable(&self, topic: &str, partition: i32, up_to: i64) -> Result<()> {
        self.inner
            .topics
            .get(topic)?
            .partition(partition)?
            .sync_up_to(up_to)
    }

    /// The same wait as [`wait_durable`](Self::wait_durable), as a future that holds no
    /// thread: the broker's fsync workers run the fsync (shared, as there, with every other
    /// waiter on the partition) and resolve it. A server awaits these for its acks=all
    /// answers. An unknown topic or partition resolves at once with its error.
    pub fn durable(&self, topic: &str, partition: i32, up_to: i64) -> DurableWait {
        if let Err(e) = self.check_open() {
            return DurableWait::ready(Err(e));
        }
        match self
            .inner
            .topics
            .get(topic)
            .and_then(|t| t.partition(partition))
        {
            Ok(p) => self.inner.sync_workers.wait(p, up_to),
            Err(e) => DurableWait::ready(Err(e)),
        }
    }
}
