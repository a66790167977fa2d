//! On-disk storage of partitions: segments and their indexes, producer state, recovery and
//! retention (DESIGN §2.2-§2.4, §2.7).

mod append;
mod index;
mod partition;
mod partition_open;
mod producer_state;
mod segment;
mod txn_index;

pub use partition::{AppendOutcome, Partition, PartitionData, PartitionInfo};
pub use producer_state::MAX_BATCHES_PER_PRODUCER;
