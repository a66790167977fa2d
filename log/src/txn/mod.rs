//! Transactions (docs/architecture.md §2.5): the transaction states and their legal moves, the control
//! records that mark a transaction's end in each partition, and the isolation levels of
//! reads. The coordinator that drives them lives in [`coordinator`].

pub mod coordinator;
mod state;

pub use coordinator::{MAX_TXN_TIMEOUT_MS, TXN_STATE_TOPIC, TxnCoordinator, TxnDescription};
pub use state::TxnState;

use bytes::Bytes;

use crate::batch::{BatchBuilder, BatchError, RecordBatch};

/// How a transaction ended, as its control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The transaction's records are to be dropped (type 0).
    Abort,
    /// The transaction's records are visible (type 1).
    Commit,
}

impl ControlType {
    /// Kafka's type id.
    pub fn id(self) -> i16 {
        match self {
            Self::Abort => 0,
            Self::Commit => 1,
        }
    }
}

/// How a producer's transactions use epochs (KIP-890 part 2's "transaction version").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TxnVersion {
    /// Kafka's classic protocol (clients on Produce up to v11, EndTxn up to v4): the producer
    /// keeps its epoch E across transactions, markers are written at E, and its sequences
    /// run on from one transaction to the next.
    V1,
    /// KIP-890 part 2: every end bumps the epoch; markers are written at E + 1 and the
    /// producer continues at E + 1 with sequences from 0. sluice's own clients use it.
    #[default]
    V2,
}

/// What a fetch may return (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, aborted and open transactions included.
    ReadUncommitted,
    /// Only up to the last stable offset; aborted transactions are listed so the reader can
    /// drop them. The default.
    #[default]
    ReadCommitted,
}

/// A transaction that was aborted on one partition: its producer and the offsets from its
/// first record to its abort marker. Readers drop that producer's transactional records in
/// the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first record on the partition.
    pub first_offset: i64,
    /// Offset of its abort marker.
    pub last_offset: i64,
}

/// Builds the control batch (transaction marker) Kafka writes: one record whose key is
/// `version i16 = 0, type i16` and whose value is `version i16 = 0, coordinatorEpoch i32`.
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    kind: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Bytes, BatchError> {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.id().to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new()
        .with_producer(producer_id, epoch, -1)
        .with_transactional(true)
        .with_control(true);
    builder.append(timestamp, Some(&key), Some(&value), &[]);
    builder.build()
}

/// Reads the marker type of a control batch.
pub fn control_type(batch: &RecordBatch) -> Result<ControlType, BatchError> {
    let record = batch
        .records()?
        .next()
        .ok_or_else(|| BatchError::Inconsistent("a control batch without a record".into()))??;
    let key = record
        .key
        .ok_or_else(|| BatchError::Inconsistent("a control record without a key".into()))?;
    if key.len() < 4 {
        return Err(BatchError::Inconsistent(format!(
            "control record key of {} bytes",
            key.len()
        )));
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Ok(ControlType::Abort),
        1 => Ok(ControlType::Commit),
        other => Err(BatchError::Inconsistent(format!(
            "unknown control record type {other}"
        ))),
    }
}
