//! The transactional producer of the seam: what a stream thread's commit needs (docs/
//! architecture.md §3.1). One producer per stream thread, used with `&mut` on that thread:
//! output and changelog records are sent inside a transaction with the input offsets
//! (`send_offsets_to_transaction`, fenced by the group's generation, KIP-447), and the whole
//! commits or aborts as one.

use std::time::Duration;

use super::ClusterError;
use crate::client::ProducerRecord;
use crate::topic::TopicPartition;

/// How a [`TxnProducer`] is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSpec {
    /// `transactional.id`: the runtime uses `<app>-<instance>-<thread>`, so a restarted
    /// instance fences its previous incarnation. `None`: an idempotent producer without
    /// transactions (at-least-once).
    pub transactional_id: Option<String>,
    /// How long the cluster lets a transaction stay open before aborting it.
    pub transaction_timeout: Duration,
    /// How long a record may wait for others to share its batch.
    pub linger: Duration,
    /// A name for the client in the cluster's logs and metrics.
    pub client_id: String,
}

impl ProducerSpec {
    /// A producer for `transactional_id`: a 60 s transaction timeout, 5 ms linger.
    pub fn new(transactional_id: impl Into<String>) -> Self {
        let transactional_id = transactional_id.into();
        Self {
            client_id: transactional_id.clone(),
            transactional_id: Some(transactional_id),
            transaction_timeout: Duration::from_secs(60),
            linger: Duration::from_millis(5),
        }
    }

    /// An idempotent producer without transactions, named `client_id`.
    pub fn idempotent(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            linger: Duration::from_millis(5),
        }
    }

    /// Sets the transaction timeout.
    pub fn with_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Sets the linger.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
}

/// A record's pending delivery, from [`TxnProducer::send_tracked`].
pub trait Delivery {
    /// What it fails with.
    type Error: ClusterError;
    /// The offset the record got. Known once a [`TxnProducer::flush`] has returned; asked
    /// before, it waits for the record (embedded) or fails (Kafka).
    fn offset(self) -> Result<i64, Self::Error>;
}

/// A transactional producer. Errors say how to recover through their
/// [`class`](ClusterError::class): `Fenced` needs a new producer.
pub trait TxnProducer: Send {
    /// What its calls fail with.
    type Error: ClusterError;
    /// A tracked record's delivery.
    type Delivery: Delivery<Error = Self::Error>;
    /// Who the consumer group member is (`ConsumerGroupMetadata`), for
    /// `send_offsets_to_transaction`.
    type GroupMetadata;

    /// Registers the transactional id with the cluster: a previous producer with the same
    /// id is fenced and its open transaction aborted.
    fn init_transactions(&mut self) -> Result<(), Self::Error>;

    /// Opens a transaction.
    fn begin_transaction(&mut self) -> Result<(), Self::Error>;

    /// Sends a record in the open transaction. A failure to deliver it surfaces at the next
    /// `flush` or commit.
    fn send(&mut self, record: ProducerRecord) -> Result<(), Self::Error>;

    /// Sends a record and keeps its delivery, to learn its offset after the next `flush`.
    fn send_tracked(&mut self, record: ProducerRecord) -> Result<Self::Delivery, Self::Error>;

    /// Waits until every record sent is acknowledged or failed; the first failure since the
    /// previous flush.
    fn flush(&mut self) -> Result<(), Self::Error>;

    /// Adds the group's input offsets (the next offset to read, per partition) to the open
    /// transaction: they become its committed offsets exactly when it commits. The cluster
    /// refuses them from a member of an older generation.
    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &Self::GroupMetadata,
    ) -> Result<(), Self::Error>;

    /// Flushes, then commits the transaction; if a record failed, the transaction is aborted
    /// and the failure returned.
    fn commit_transaction(&mut self) -> Result<(), Self::Error>;

    /// Aborts the transaction: none of its records or offsets will ever be read_committed.
    fn abort_transaction(&mut self) -> Result<(), Self::Error>;

    /// Flushes and stops the producer (an open transaction is left to the cluster, which
    /// aborts it at the next `init_transactions` of its id or at its timeout).
    fn close(self) -> Result<(), Self::Error>;

    /// Fault injection: stops as a killed process stops: records not yet sent are lost,
    /// nothing is flushed, committed or aborted.
    #[doc(hidden)]
    fn abandon(self);
}
