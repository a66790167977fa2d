//! The states of a transactional id in the coordinator, exactly Kafka's, and the only moves
//! between them that the coordinator may make.

use serde::{Deserialize, Serialize};

/// A transactional id's state (Kafka's `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    /// Known, no transaction open.
    Empty,
    /// A transaction is open: partitions are being added and written.
    Ongoing,
    /// `end_txn(commit)` accepted: markers are being written (the commit point is passed).
    PrepareCommit,
    /// `end_txn(abort)` or a timeout: abort markers are being written.
    PrepareAbort,
    /// Markers written, transaction committed.
    CompleteCommit,
    /// Markers written, transaction aborted.
    CompleteAbort,
    /// The id is expired and its state removed.
    Dead,
    /// A newer producer took over while a transaction was open: the epoch is being bumped
    /// before the open transaction is aborted.
    PrepareEpochFence,
}

impl TxnState {
    /// Whether the coordinator may move from `self` to `next` (Kafka's `validPreviousStates`).
    pub fn can_move_to(self, next: TxnState) -> bool {
        use TxnState::*;
        match next {
            Empty => matches!(self, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(self, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => matches!(self, Ongoing),
            PrepareAbort => matches!(self, Ongoing | PrepareEpochFence),
            CompleteCommit => matches!(self, PrepareCommit),
            CompleteAbort => matches!(self, PrepareAbort),
            Dead => matches!(self, Empty | CompleteCommit | CompleteAbort),
            PrepareEpochFence => matches!(self, Ongoing),
        }
    }

    /// Whether a transaction is between its start and its markers.
    pub fn is_open(self) -> bool {
        matches!(self, TxnState::Ongoing | TxnState::PrepareEpochFence)
    }

    /// Whether markers are still to be written.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

#[cfg(test)]
mod tests {
    use super::TxnState::{self, *};

    const ALL: [TxnState; 8] = [
        Empty,
        Ongoing,
        PrepareCommit,
        PrepareAbort,
        CompleteCommit,
        CompleteAbort,
        Dead,
        PrepareEpochFence,
    ];

    /// The whole table, written out: every pair not listed is refused.
    #[test]
    fn only_kafkas_transitions_are_legal() {
        let legal = [
            (Empty, Empty),
            (CompleteCommit, Empty),
            (CompleteAbort, Empty),
            (Ongoing, Ongoing),
            (Empty, Ongoing),
            (CompleteCommit, Ongoing),
            (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort),
            (PrepareEpochFence, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Empty, Dead),
            (CompleteCommit, Dead),
            (CompleteAbort, Dead),
            (Ongoing, PrepareEpochFence),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_move_to(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }
}
