//! Helpers shared by the log's integration tests: temporary brokers, batch builders and the
//! proptest case count (`PROPTEST_CASES` raises it for a soak).

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use sluice_log::batch::BatchBuilder;
use sluice_log::{Broker, BrokerConfig};

/// Cases per property: `PROPTEST_CASES` if set, else `default`.
pub fn cases(default: u32) -> u32 {
    sluice_log::testing::proptest_cases(default)
}

/// A broker whose background thread never syncs or runs retention on its own, so a test
/// decides exactly what is fsynced.
pub fn quiet_broker(dir: &Path) -> Broker {
    let config = BrokerConfig::default()
        .with_flush_check_interval(Duration::from_secs(3600))
        .with_retention_check_interval(Duration::from_secs(3600));
    Broker::open(dir, config).expect("open broker")
}

/// A batch of `values` (keyless), optionally from idempotent producer `(pid, epoch, seq)`.
pub fn batch(values: &[Vec<u8>], producer: Option<(i64, i16, i32)>, timestamp: i64) -> Bytes {
    let mut b = BatchBuilder::new();
    if let Some((pid, epoch, seq)) = producer {
        b = b.with_producer(pid, epoch, seq);
    }
    for v in values {
        b.append(timestamp, None, Some(v), &[]);
    }
    b.build().expect("build batch")
}

/// Every record value of a partition from `from`, with offsets, read through the broker.
pub fn read_all(broker: &Broker, topic: &str, partition: i32, from: i64) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let data = broker
            .read(topic, partition, offset, 64 * 1024)
            .expect("read");
        if data.records.is_empty() {
            return out;
        }
        for batch in sluice_log::batch::split_batches(data.records).expect("split") {
            for r in batch.records().expect("records") {
                let r = r.expect("record");
                if r.offset >= offset {
                    out.push((r.offset, r.value.unwrap_or_default()));
                }
            }
            offset = batch.last_offset() + 1;
        }
    }
}

/// Copies a directory tree: the image a crash (kill -9) would leave, taken while the broker
/// is still open, since every acknowledged byte is already in the OS.
pub fn copy_dir(from: &Path, to: &Path) {
    sluice_log::crash_image::copy(from, to).expect("copy the data directory");
}

/// Cuts a partition directory back to the batches below `offset`, as a power loss that kept
/// only what was fsynced would (later segments go).
pub fn cut_to_offset(dir: &Path, offset: i64) {
    sluice_log::crash_image::cut_partition(dir, offset).expect("cut the partition");
}
