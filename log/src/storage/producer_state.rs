//! Idempotent-producer state of one partition (docs/architecture.md §2.4): per producer id, its epoch and
//! the sequence ranges and offsets of its last five batches. It decides whether a batch is
//! new, a duplicate (acknowledged again with its original offsets) or out of order, and it
//! persists as `<offset>.snapshot` files so that a restart need only re-scan the log after the
//! newest snapshot.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::batch::{BatchHeader, increment_sequence};

/// How many batches per producer are remembered for duplicate detection (Kafka's 5, which is
/// also the most in-flight requests an idempotent producer may have).
pub const MAX_BATCHES_PER_PRODUCER: usize = 5;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchMetadata {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// Offset of the first record of the producer's open transaction on this partition.
    txn_first_offset: Option<i64>,
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// Append it.
    Append,
    /// Already in the log at these offsets: acknowledge again, do not append.
    Duplicate(BatchMetadata),
}

/// Why a batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceError {
    OutOfOrder { expected: i32, received: i32 },
    Fenced { epoch: i16, current_epoch: i16 },
}

/// The state of every idempotent producer that wrote to one partition.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions as (first offset, producer id): the first is the last stable offset.
    ongoing: BTreeSet<(i64, i64)>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    version: u8,
    offset: i64,
    producers: Vec<(i64, ProducerEntry)>,
}

impl ProducerStates {
    /// Decides what to do with an idempotent batch (`producer_id >= 0`).
    pub(crate) fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        let received = header.base_sequence;
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return if received == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    expected: 0,
                    received,
                })
            };
        };
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::Fenced {
                epoch: header.producer_epoch,
                current_epoch: entry.epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            return if received == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    expected: 0,
                    received,
                })
            };
        }
        let last_seq = header.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == received && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| increment_sequence(b.last_seq, 1));
        if received == expected {
            Ok(SequenceCheck::Append)
        } else {
            Err(SequenceError::OutOfOrder { expected, received })
        }
    }

    /// Records a data batch that is now in the log (on append and on the recovery re-scan).
    /// A transactional batch opens the producer's transaction here if none is open.
    pub(crate) fn update(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() || header.is_control() {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if header.base_sequence < 0 {
            // Written by the broker on the producer's behalf (transactional offsets): part of
            // the transaction, not of the producer's sequence.
            if header.is_transactional() && entry.txn_first_offset.is_none() {
                entry.txn_first_offset = Some(header.base_offset);
                self.ongoing
                    .insert((header.base_offset, header.producer_id));
            }
            return;
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        while entry.batches.len() > MAX_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(header.base_offset);
            self.ongoing
                .insert((header.base_offset, header.producer_id));
        }
    }

    /// Records a transaction marker (control batch) now in the log: closes the producer's
    /// open transaction and returns its first offset, if one was open. A marker from a newer
    /// epoch (the coordinator bumped it) resets the producer's sequences.
    pub(crate) fn complete_txn(&mut self, producer_id: i64, epoch: i16) -> Option<i64> {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        let first = entry.txn_first_offset.take()?;
        self.ongoing.remove(&(first, producer_id));
        Some(first)
    }

    /// The current epoch of a producer, if it wrote here.
    pub(crate) fn epoch(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// Whether the producer has an open transaction on this partition.
    pub(crate) fn has_open_txn(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some())
    }

    /// The first offset of the oldest open transaction: the last stable offset, if any is open.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|&(offset, _)| offset)
    }

    /// The snapshot file for `offset` in `dir`.
    pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
        dir.join(format!("{}.snapshot", super::segment::file_stem(offset)))
    }

    /// Serializes the state as of `offset`: a CRC-32C, then the bincode body.
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut producers: Vec<(i64, ProducerEntry)> = self
            .producers
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        producers.sort_by_key(|(pid, _)| *pid);
        let body = SnapshotBody {
            version: 2,
            offset,
            producers,
        };
        let payload =
            bincode::serde::encode_to_vec(&body, bincode::config::standard()).unwrap_or_default();
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Decodes a snapshot written by [`encode_snapshot`](Self::encode_snapshot) for `offset`;
    /// `None` when it is torn, corrupt or for another offset.
    pub(crate) fn decode_snapshot(bytes: &[u8], offset: i64) -> Option<Self> {
        let (crc, payload) = bytes.split_at_checked(4)?;
        if u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) != crc32c::crc32c(payload) {
            return None;
        }
        let (body, _): (SnapshotBody, _) =
            bincode::serde::decode_from_slice(payload, bincode::config::standard()).ok()?;
        if body.version != 2 || body.offset != offset {
            return None;
        }
        let ongoing = body
            .producers
            .iter()
            .filter_map(|(pid, e)| e.txn_first_offset.map(|first| (first, *pid)))
            .collect();
        Some(Self {
            producers: body.producers.into_iter().collect(),
            ongoing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn header(epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut b = BatchBuilder::new().with_producer(7, epoch, seq);
        for _ in 0..records {
            b.append(0, None, Some(b"v"), &[]);
        }
        let bytes = b.build().unwrap_or_default();
        let mut h = BatchHeader::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        h.base_offset = base_offset;
        h
    }

    #[test]
    fn sequences_wrap_from_i32_max_to_zero() {
        let mut states = ProducerStates::default();
        let near_max = header(0, i32::MAX - 2, 5, 0); // covers MAX-2, MAX-1, MAX, 0, 1
        assert_eq!(near_max.last_sequence(), 1);
        states.update(&near_max);
        assert_eq!(states.check(&header(0, 2, 1, 5)), Ok(SequenceCheck::Append));
        assert_eq!(
            states.check(&header(0, i32::MAX - 2, 5, 0)),
            Ok(SequenceCheck::Duplicate(BatchMetadata {
                first_seq: i32::MAX - 2,
                last_seq: 1,
                first_offset: 0,
                last_offset: 4
            }))
        );
        assert_eq!(
            states.check(&header(0, 3, 1, 5)),
            Err(SequenceError::OutOfOrder {
                expected: 2,
                received: 3
            })
        );
    }

    #[test]
    fn snapshots_round_trip_and_reject_corruption() {
        let mut states = ProducerStates::default();
        states.update(&header(3, 0, 2, 10));
        let bytes = states.encode_snapshot(12);
        let restored = ProducerStates::decode_snapshot(&bytes, 12).unwrap_or_default();
        assert_eq!(
            restored.check(&header(3, 2, 1, 12)),
            Ok(SequenceCheck::Append)
        );
        assert!(
            ProducerStates::decode_snapshot(&bytes, 13).is_none(),
            "snapshot for another offset"
        );
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(ProducerStates::decode_snapshot(&corrupt, 12).is_none());
    }
}
