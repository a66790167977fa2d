//! The `--isolation` flag shared by `consume` and `perf consume`: Kafka's `isolation.level`
//! values, spelled as Kafka spells them (`read_committed`, `read_uncommitted`).

use clap::ValueEnum;
use sluice::log::IsolationLevel;

/// Help text of `--isolation`.
pub const HELP: &str = "\
What a transactional topic shows (isolation.level). `read_committed` stops at the last \
stable offset (the first record of the oldest open transaction) and skips the records of \
aborted transactions; `read_uncommitted` shows every record up to the high watermark, open \
and aborted transactions included. Transaction markers are never shown. Topics written \
without transactions read the same either way.";

/// `--isolation read_committed|read_uncommitted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Isolation {
    /// Only committed transactions, up to the last stable offset.
    #[default]
    #[value(name = "read_committed", alias = "read-committed")]
    ReadCommitted,
    /// Everything up to the high watermark, open and aborted transactions included.
    #[value(name = "read_uncommitted", alias = "read-uncommitted")]
    ReadUncommitted,
}

impl From<Isolation> for IsolationLevel {
    fn from(isolation: Isolation) -> Self {
        match isolation {
            Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
            Isolation::ReadUncommitted => IsolationLevel::ReadUncommitted,
        }
    }
}
