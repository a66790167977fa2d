//! Figures an instance keeps about itself: records processed, commits, and the commit
//! latencies of the last 100,000 commits (a rolling window: the oldest drops out as each new
//! one comes in) for percentiles.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Commit latencies kept for the percentiles: the most recent ones.
const KEPT: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    processed: AtomicU64,
    commits: AtomicU64,
    aborts: AtomicU64,
    restored: AtomicU64,
    dropped: AtomicU64,
    opened: AtomicU64,
    retained: AtomicU64,
    assignments: AtomicU64,
    commit_micros: Mutex<VecDeque<u64>>,
    /// Notified after each commit is counted.
    commit_signal: (Mutex<()>, Condvar),
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
    pub fn opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
    }
    pub fn retained(&self, n: u64) {
        self.retained.fetch_add(n, Ordering::Relaxed);
    }
    pub fn assigned(&self) {
        self.assignments.fetch_add(1, Ordering::SeqCst);
    }
    pub fn committed(&self, took: Duration) {
        {
            let mut kept = self.commit_micros.lock();
            if kept.len() >= KEPT {
                kept.pop_front();
            }
            kept.push_back(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        }
        let _signal = self.commit_signal.0.lock();
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.commit_signal.1.notify_all();
    }
    /// Commits counted so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }
    /// Waits until more than `seen` commits are counted, or `timeout` passes.
    pub fn wait_for_commit(&self, seen: u64, timeout: Duration) {
        let deadline = std::time::Instant::now().checked_add(timeout);
        let mut signal = self.commit_signal.0.lock();
        while self.commits() <= seen {
            let timed_out = match deadline {
                Some(d) => self.commit_signal.1.wait_until(&mut signal, d).timed_out(),
                None => {
                    self.commit_signal.1.wait(&mut signal);
                    false
                }
            };
            if timed_out {
                return;
            }
        }
    }
    pub fn snapshot(&self) -> AppMetrics {
        let mut latencies: Vec<u64> = self.commit_micros.lock().iter().copied().collect();
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
            tasks_opened: self.opened.load(Ordering::Relaxed),
            tasks_retained: self.retained.load(Ordering::Relaxed),
            assignments: self.assignments.load(Ordering::SeqCst),
            commit_latency_p50_us: pick(0.5),
            commit_latency_p99_us: pick(0.99),
            state_bytes_written: 0,
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
    /// Tasks opened: offsets fetched, stores restored, processors created and initialised.
    pub tasks_opened: u64,
    /// Tasks kept open across a generation change, with their state and position.
    pub tasks_retained: u64,
    /// Group generations the instance's threads have followed (assignments taken, the
    /// first join included).
    pub assignments: u64,
    /// Median commit latency in µs (flush, offsets, commit, RocksDB apply).
    pub commit_latency_p50_us: u64,
    /// 99th-percentile commit latency in µs.
    pub commit_latency_p99_us: u64,
    /// Bytes the instance wrote to RocksDB: the size of every write batch it applied
    /// (`StateDb::apply`: each commit's keys and values put, keys deleted and changelog
    /// checkpoints, and likewise restores and global-store updates).
    pub state_bytes_written: u64,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{KEPT, Metrics};

    #[test]
    fn percentiles_cover_the_most_recent_commits() {
        let metrics = Metrics::default();
        for _ in 0..KEPT {
            metrics.committed(Duration::from_millis(50));
        }
        let slow = metrics.snapshot();
        assert_eq!(slow.commit_latency_p50_us, 50_000);
        for _ in 0..KEPT {
            metrics.committed(Duration::from_micros(700));
        }
        let fast = metrics.snapshot();
        assert_eq!(fast.commits, 2 * KEPT as u64);
        assert_eq!(
            fast.commit_latency_p50_us, 700,
            "the old commits left the window"
        );
        assert_eq!(fast.commit_latency_p99_us, 700);
        // The window moves one commit at a time: half of it slow again shows in the p99.
        for _ in 0..KEPT / 2 {
            metrics.committed(Duration::from_millis(50));
        }
        let mixed = metrics.snapshot();
        assert_eq!(mixed.commit_latency_p99_us, 50_000);
    }
}
