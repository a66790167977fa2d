//! Store scans stream: a scan of every key of a large store holds memory flat (RocksDB's
//! iterator plus its block cache), where collecting the entries would grow with the store.
//! Alone in its binary, so no other test's allocations move the process's RSS meanwhile.
//!
//! `SCAN_KEYS` sets the number of keys (default 1,000,000; `SCAN_KEYS=10000000` for the
//! figure in the notes); the figures go to stderr as one JSON line.

use sluice_runtime::serde::{BigEndianSerde, StringSerde};
use sluice_runtime::state::{StateDb, StoreName};

/// Keys written per committed transaction while the store is filled.
const BATCH: u64 = 100_000;
/// Growth of the resident set allowed during the scan: RocksDB's default block cache
/// (32 MiB) and the iterator's blocks, with room to spare. Collecting a million entries of
/// ~110 bytes would take well over 100 MiB.
const FLAT_LIMIT_BYTES: u64 = 64 << 20;

/// The process's resident set, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("a VmRSS line");
    kib * 1024
}

fn value_of(key: u64) -> String {
    format!("{key:0>100}")
}

#[test]
fn a_scan_of_every_key_holds_memory_flat() {
    let keys: u64 = std::env::var("SCAN_KEYS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = StateDb::open(dir.path()).expect("open");
    let store = db
        .kv_store::<u64, String>(&StoreName::new("big", 0), BigEndianSerde, StringSerde)
        .expect("store");
    let mut next = 0;
    while next < keys {
        let mut overlay = db.overlay();
        for key in next..(next + BATCH).min(keys) {
            store.put(&mut overlay, &key, &value_of(key)).expect("put");
        }
        db.apply(overlay, &[]).expect("apply");
        next += BATCH;
    }
    // Out of the memtables and into SST files, as a store that big is.
    db.flush().expect("flush");

    // One uncommitted write, which the scan must merge in at its place.
    let mut overlay = db.overlay();
    let changed = keys / 2;
    store
        .put(&mut overlay, &changed, &"changed".to_string())
        .expect("put");

    let before = rss_bytes();
    let mut peak = before;
    let mut seen = 0u64;
    for (i, entry) in store.all(&overlay).expect("scan").enumerate() {
        let (key, value) = entry.expect("entry");
        assert_eq!(key, i as u64, "keys in order, none missing");
        if key == changed {
            assert_eq!(value, "changed", "the overlay's write wins");
        } else {
            assert_eq!(value, value_of(key));
        }
        seen += 1;
        if seen.is_multiple_of(50_000) {
            peak = peak.max(rss_bytes());
        }
    }
    peak = peak.max(rss_bytes());
    assert_eq!(seen, keys);
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{{\"keys\":{keys},\"rss_before_scan_mib\":{:.1},\"rss_peak_during_scan_mib\":{:.1},\"growth_mib\":{:.1}}}",
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        growth as f64 / 1048576.0
    );
    assert!(
        growth < FLAT_LIMIT_BYTES,
        "the scan of {keys} keys grew the resident set by {growth} bytes"
    );
}
