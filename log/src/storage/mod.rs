//! On-disk storage of partitions: segments and their indexes, producer state, recovery,
//! retention and compaction (docs/architecture.md §2.2-§2.4, §2.7).

mod append;
mod compaction;
mod compaction_rewrite;
mod delete_records;
mod group_commit;
mod index;
mod partition;
mod partition_open;
mod producer_state;
mod segment;
mod sync_workers;
#[cfg(test)]
mod test_support;
mod txn_index;

pub use compaction::CompactionStats;
pub use partition::{AppendOutcome, Partition, PartitionData, PartitionInfo};
pub use producer_state::MAX_BATCHES_PER_PRODUCER;
pub(crate) use sync_workers::SyncWorkers;
pub use sync_workers::{DurableWait, MAX_WORKERS as MAX_FSYNC_WORKERS};
