//! Figures an instance keeps about itself: records processed, commits, and the commit
//! latencies (the last 100,000) for percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

const KEPT: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    processed: AtomicU64,
    commits: AtomicU64,
    aborts: AtomicU64,
    restored: AtomicU64,
    dropped: AtomicU64,
    commit_micros: Mutex<Vec<u64>>,
}

impl Metrics {
    pub fn processed(&self, n: u64) {
        self.processed.fetch_add(n, Ordering::Relaxed);
    }
    pub fn aborted(&self) {
        self.aborts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub fn restored(&self, n: u64) {
        self.restored.fetch_add(n, Ordering::Relaxed);
    }
    pub fn committed(&self, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.commit_micros.lock();
        if kept.len() < KEPT {
            kept.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        }
    }
    pub fn snapshot(&self) -> AppMetrics {
        let mut latencies = self.commit_micros.lock().clone();
        latencies.sort_unstable();
        let pick = |q: f64| -> u64 {
            if latencies.is_empty() {
                return 0;
            }
            let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies[i.min(latencies.len() - 1)]
        };
        AppMetrics {
            records_processed: self.processed.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            aborts: self.aborts.load(Ordering::Relaxed),
            records_restored: self.restored.load(Ordering::Relaxed),
            records_dropped: self.dropped.load(Ordering::Relaxed),
            commit_latency_p50_us: pick(0.5),
            commit_latency_p99_us: pick(0.99),
        }
    }
}

/// An instance's figures so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppMetrics {
    /// Input records processed (including ones processed again after an abort).
    pub records_processed: u64,
    /// Transactions (or at-least-once commits) completed.
    pub commits: u64,
    /// Transactions aborted (rebalances, failures).
    pub aborts: u64,
    /// Changelog records applied by restores.
    pub records_restored: u64,
    /// Records processors dropped (late records, for instance).
    pub records_dropped: u64,
    /// Median commit latency in µs (flush, offsets, commit, RocksDB apply).
    pub commit_latency_p50_us: u64,
    /// 99th-percentile commit latency in µs.
    pub commit_latency_p99_us: u64,
}
