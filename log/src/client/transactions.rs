//! The producer's transactional API, shaped like rdkafka's and Kafka's:
//! `init_transactions`, `begin_transaction`, `send` (which enlists partitions as it goes),
//! `send_offsets_to_transaction`, `commit_transaction` and `abort_transaction`.
//!
//! Errors are classed as Kafka's are ([`TxnErrorKind`]): retriable ones may be retried as
//! they are; after an abortable one the transaction must be aborted; after a fatal one (the
//! producer was fenced by a newer instance or timed out) the producer must be dropped.
//!
//! ```
//! use std::time::Duration;
//! use sluice_log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
//! # let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
//! broker.create_topic("out", TopicConfig::default()).unwrap();
//! let producer = Producer::new(&broker, ProducerConfig::default().with_transactional_id("app-0")).unwrap();
//! producer.init_transactions().unwrap();
//! producer.begin_transaction().unwrap();
//! producer.send(ProducerRecord::new("out", "all or nothing")).unwrap();
//! producer.commit_transaction().unwrap();
//! ```

use super::accumulator::OpenTxn;
use super::consumer_group::GroupMetadata;
use super::producer::Producer;
use crate::error::{Error, Result};
use crate::topic::TopicPartition;

/// How a transactional error is to be handled (rdkafka's `txn_requires_abort` /
/// `is_fatal` / `is_retriable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnErrorKind {
    /// Try the same call again.
    Retriable,
    /// Abort the transaction, then carry on.
    Abortable,
    /// The producer cannot go on (fenced, or its transactional id is gone): drop it.
    Fatal,
}

impl Error {
    /// The class of an error from a transactional call.
    pub fn txn_kind(&self) -> TxnErrorKind {
        match self {
            e if e.is_retriable() => TxnErrorKind::Retriable,
            Error::ProducerFenced { .. }
            | Error::TxnProducerFenced { .. }
            | Error::UnknownProducerId { .. }
            | Error::TransactionalIdNotFound(_)
            | Error::InvalidTransactionTimeout { .. }
            | Error::Closed(_) => TxnErrorKind::Fatal,
            Error::Delivery { source, .. } => source.txn_kind().max_abortable(),
            _ => TxnErrorKind::Abortable,
        }
    }
}

impl TxnErrorKind {
    /// A delivery failure is at least abortable: the transaction lost a record.
    fn max_abortable(self) -> Self {
        match self {
            TxnErrorKind::Fatal => TxnErrorKind::Fatal,
            _ => TxnErrorKind::Abortable,
        }
    }
}

impl Producer {
    fn transactional_id(&self) -> Result<&str> {
        self.config
            .transactional_id
            .as_deref()
            .ok_or_else(|| Error::IllegalState("this producer has no transactional id".into()))
    }

    fn identity(&self) -> Result<crate::broker::ProducerIdAndEpoch> {
        self.acc.state.lock().identity.ok_or_else(|| {
            Error::IllegalState("call init_transactions before using transactions".into())
        })
    }

    /// Registers the transactional id with the coordinator: any transaction a previous
    /// instance left open is aborted (or completed, if it was being committed) and every
    /// older instance is fenced.
    pub fn init_transactions(&self) -> Result<()> {
        let id = self.transactional_id()?;
        let identity = self
            .broker
            .init_transactions(id, self.config.transaction_timeout)?;
        let mut state = self.acc.state.lock();
        state.identity = Some(identity);
        state.txn = None;
        Ok(())
    }

    /// Starts a transaction: `send` is allowed until it is committed or aborted.
    pub fn begin_transaction(&self) -> Result<()> {
        self.transactional_id()?;
        let mut state = self.acc.state.lock();
        if state.identity.is_none() {
            return Err(Error::IllegalState("call init_transactions first".into()));
        }
        if state.txn.is_some() {
            return Err(Error::IllegalState("a transaction is already open".into()));
        }
        state.txn = Some(OpenTxn::default());
        Ok(())
    }

    /// Adds a consumer group's offsets to the transaction: they become the group's
    /// committed offsets exactly when the transaction commits (KIP-447: the group metadata
    /// fences a zombie member of an older generation).
    pub fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
    ) -> Result<()> {
        let id = self.transactional_id()?;
        let identity = self.identity()?;
        if self.acc.state.lock().txn.is_none() {
            return Err(Error::IllegalState("no transaction is open".into()));
        }
        self.broker
            .add_offsets_to_txn(id, identity, &group.group_id)?;
        if let Some(txn) = self.acc.state.lock().txn.as_mut() {
            txn.offsets_added = true;
        }
        self.broker.txn_offset_commit(
            id,
            identity,
            &group.group_id,
            group.generation,
            &group.member_id,
            offsets,
        )
    }

    /// Sends everything buffered, then commits. If any record of the transaction failed, the
    /// transaction is aborted instead and the failure returned (abortable).
    pub fn commit_transaction(&self) -> Result<()> {
        self.end_transaction(true)
    }

    /// Waits for what was sent, then aborts the transaction: none of its records or
    /// offsets will ever be visible to read_committed readers.
    pub fn abort_transaction(&self) -> Result<()> {
        self.end_transaction(false)
    }

    fn end_transaction(&self, commit: bool) -> Result<()> {
        let id = self.transactional_id()?;
        if self.acc.state.lock().txn.is_none() {
            return Err(Error::IllegalState("no transaction is open".into()));
        }
        let flushed = self.flush();
        let (identity, enlisted, failed) = {
            let state = self.acc.state.lock();
            let txn = state.txn.as_ref();
            (
                state.identity,
                txn.is_some_and(|t| !t.added.is_empty() || t.offsets_added),
                txn.and_then(|t| t.failed.clone()),
            )
        };
        let identity =
            identity.ok_or_else(|| Error::IllegalState("call init_transactions first".into()))?;
        let commit = commit && failed.is_none() && flushed.is_ok();
        if enlisted {
            let next = self.broker.end_txn(id, identity, commit)?;
            self.acc.state.lock().identity = Some(next);
        }
        self.acc.state.lock().txn = None;
        match (failed, flushed) {
            (Some(source), _) if !commit => Err(Error::Delivery {
                topic: String::new(),
                partition: -1,
                source,
            }),
            (_, Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}
