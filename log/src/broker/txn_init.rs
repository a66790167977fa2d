//! InitProducerId on the broker (Kafka's KIP-98 and KIP-360): a new producer id for an
//! idempotent producer, the next epoch for one recovering from a sequence error, and, for a
//! transactional id, the end of the previous instance's transaction and a new epoch that
//! fences that instance. A transactional producer that sends its current id and epoch
//! (KIP-360) must be the id's current producer, or be retrying the request that just moved it
//! on; anyone else is fenced.

use std::time::Duration;

use super::{Broker, ProducerIdAndEpoch};
use crate::error::{Error, Result};
use crate::txn::coordinator::TxnMeta;
use crate::txn::{ControlType, MAX_TXN_TIMEOUT_MS, TxnState};

/// An epoch at or past this is exhausted: the next bump hands out a new producer id
/// (Kafka's `isEpochExhausted`).
const LAST_EPOCH: i16 = i16::MAX - 1;

impl Broker {
    /// InitProducerId for a transactional id: a new id gets a producer id at epoch 0; a known
    /// one first finishes (Prepare*) or aborts (Ongoing) its open transaction, then gets the
    /// next epoch, which fences every older instance of the producer.
    pub fn init_transactions(
        &self,
        transactional_id: &str,
        timeout: Duration,
    ) -> Result<ProducerIdAndEpoch> {
        self.init_transactional(transactional_id, timeout, None)
    }

    /// InitProducerId as Kafka clients send it (KIP-360), `current` being the producer id and
    /// epoch the client holds, if any (an id or epoch below 0 counts as none):
    ///
    /// - no transactional id, no `current`: a new producer id at epoch 0;
    /// - no transactional id, `current` (an idempotent producer recovering from
    ///   `UNKNOWN_PRODUCER_ID` or `OUT_OF_ORDER_SEQUENCE_NUMBER`): the same id at the next
    ///   epoch, whose sequences start again at 0 on every partition; a new id at epoch 0 when
    ///   the epoch is exhausted, or the id is not one this broker handed out to an idempotent
    ///   producer;
    /// - a transactional id without `current`: [`init_transactions`](Self::init_transactions);
    /// - a transactional id with `current`: `current` must be the id's producer and epoch, or
    ///   the ones the last such call moved on from (a retry, answered again without another
    ///   bump); otherwise `TxnProducerFenced`. Then as `init_transactions`: the open
    ///   transaction is finished or aborted and the epoch moves on. An id the coordinator
    ///   does not know starts at epoch 0 whatever `current` says.
    ///
    /// `timeout` is the transaction timeout; it must be between 1 ms and
    /// [`MAX_TXN_TIMEOUT_MS`] for a transactional id and is ignored otherwise.
    pub fn init_producer_id_with(
        &self,
        transactional_id: Option<&str>,
        timeout: Duration,
        current: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch> {
        let current = current.filter(|c| c.producer_id >= 0 && c.epoch >= 0);
        match transactional_id {
            Some(id) => self.init_transactional(id, timeout, current),
            None => self.init_idempotent(current),
        }
    }

    /// The idempotent case of [`init_producer_id_with`](Self::init_producer_id_with).
    fn init_idempotent(&self, current: Option<ProducerIdAndEpoch>) -> Result<ProducerIdAndEpoch> {
        self.check_open()?;
        // A transactional id's producer id is moved on by its coordinator only: bumping it
        // here would fence the coordinator's own markers.
        let bumpable = current.filter(|c| {
            c.epoch < LAST_EPOCH && self.inner.txns.by_producer(c.producer_id).is_none()
        });
        let mut pids = self.inner.pids.lock();
        if let Some(c) = bumpable
            && pids.is_known(c.producer_id)
        {
            tracing::debug!(
                producer_id = c.producer_id,
                epoch = c.epoch + 1,
                "idempotent producer moves to its next epoch"
            );
            return Ok(ProducerIdAndEpoch {
                producer_id: c.producer_id,
                epoch: c.epoch + 1,
            });
        }
        Ok(ProducerIdAndEpoch {
            producer_id: pids.allocate()?,
            epoch: 0,
        })
    }

    /// The transactional cases of [`init_producer_id_with`](Self::init_producer_id_with).
    fn init_transactional(
        &self,
        transactional_id: &str,
        timeout: Duration,
        current: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch> {
        self.check_open()?;
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        if timeout_ms == 0 || timeout_ms > MAX_TXN_TIMEOUT_MS {
            return Err(Error::InvalidTransactionTimeout {
                millis: timeout_ms,
                max: MAX_TXN_TIMEOUT_MS,
            });
        }
        if transactional_id.is_empty() {
            return Err(Error::InvalidTxnState(
                "the transactional id is empty".into(),
            ));
        }
        let txns = &self.inner.txns;
        let (shared, created) = txns.get_or_create(transactional_id, || {
            let meta = TxnMeta {
                transactional_id: transactional_id.to_string(),
                producer_id: self.inner.pids.lock().allocate()?,
                epoch: 0,
                state: TxnState::Empty,
                partitions: Default::default(),
                timeout_ms,
                txn_start_ms: 0,
                unsynced_markers: Default::default(),
                last_producer: None,
                keep_epoch: false,
            };
            txns.persist(&meta)?;
            Ok(meta)
        })?;
        let mut m = shared.lock();
        if created {
            return Ok(ProducerIdAndEpoch {
                producer_id: m.producer_id,
                epoch: m.epoch,
            });
        }
        let before = (m.producer_id, m.epoch);
        if let Some(c) = current {
            if m.last_producer == Some((c.producer_id, c.epoch)) {
                tracing::debug!(
                    transactional_id,
                    "a retried InitProducerId is answered again"
                );
                return Ok(ProducerIdAndEpoch {
                    producer_id: m.producer_id,
                    epoch: m.epoch,
                });
            }
            // Unlike the other transactional calls, InitProducerId answers a foreign
            // producer id as fenced too (Kafka's PRODUCER_FENCED).
            if c.producer_id != m.producer_id || c.epoch != m.epoch {
                return Err(Error::TxnProducerFenced {
                    transactional_id: m.transactional_id.clone(),
                    producer_id: c.producer_id,
                    epoch: c.epoch,
                    current_epoch: m.epoch,
                });
            }
        }
        match m.state {
            TxnState::PrepareCommit => {
                let bump = !m.keep_epoch;
                self.write_markers(&mut m, ControlType::Commit, bump)?;
            }
            TxnState::PrepareAbort => {
                let bump = !m.keep_epoch;
                self.write_markers(&mut m, ControlType::Abort, bump)?;
            }
            TxnState::Ongoing | TxnState::PrepareEpochFence => {
                tracing::info!(
                    transactional_id,
                    "fencing the previous producer and aborting its transaction"
                );
                m.move_to(TxnState::PrepareAbort)?;
                txns.persist(&m)?;
                self.write_markers(&mut m, ControlType::Abort, true)?;
            }
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {}
        }
        self.bump_epoch(&mut m)?;
        m.state = TxnState::Empty;
        m.timeout_ms = timeout_ms;
        m.last_producer = current.map(|_| before);
        txns.persist(&m)?;
        Ok(ProducerIdAndEpoch {
            producer_id: m.producer_id,
            epoch: m.epoch,
        })
    }

    /// Moves the id to its next epoch, or to a new producer id at epoch 0 when the epoch is
    /// exhausted (and points the new id at the id's state). Forgets any remembered
    /// KIP-360 predecessor: the caller sets it again when this bump is one.
    pub(super) fn bump_epoch(&self, m: &mut TxnMeta) -> Result<()> {
        m.last_producer = None;
        if m.epoch >= LAST_EPOCH {
            let old = m.producer_id;
            m.producer_id = self.inner.pids.lock().allocate()?;
            m.epoch = 0;
            self.inner
                .txns
                .rebind_producer(&m.transactional_id, old, m.producer_id);
        } else {
            m.epoch += 1;
        }
        Ok(())
    }
}
