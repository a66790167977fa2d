//! `sluice perf ...`: the benchmarks. Each reports progress on stderr about once a
//! second and ends with one JSON line of figures on stdout. This module holds the subcommand
//! enum and what both share: the progress meter, the throughput figures and percentiles.

pub mod consume;
pub mod eos;
pub mod produce;
pub mod rebalance;
pub mod resume;
pub mod table_chain;
pub mod txn;
pub mod windows;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::ClusterArgs;
use super::error::{CliError, CliResult};
use super::output::json_number;

/// The `perf` subcommands.
#[derive(Debug, Subcommand)]
pub enum PerfCommand {
    /// Send N records of B bytes as fast as possible, optionally in transactions; report
    /// throughput and latency.
    Produce(produce::PerfProduceArgs),
    /// Read N records from the start of every partition of a topic; report throughput.
    Consume(consume::PerfConsumeArgs),
    /// Run a count-by-key app over N pre-produced records at-least-once and exactly-once;
    /// report both throughputs, end-to-end latency and commit latency.
    Eos(eos::PerfEosArgs),
    /// Kill -9 an exactly-once app holding a large state mid-stream; report how fast it
    /// resumes and how much it restores, against a full restore.
    Resume(resume::PerfResumeArgs),
    /// A second exactly-once instance joins, then leaves; report the time to `Running` and
    /// the changelog records each instance restored.
    Rebalance(rebalance::PerfRebalanceArgs),
    /// Aggregate N pre-produced records with three exactly-once DSL apps (count per key, per
    /// tumbling window, per session); report each throughput and the ratios.
    Windows(windows::PerfWindowsArgs),
    /// A table filtered, mapped and joined by a stream in one exactly-once DSL app; report
    /// throughput and the bytes written to RocksDB.
    TableChain(table_chain::PerfTableChainArgs),
}

/// Runs a `perf` subcommand; `cluster` is the `--bootstrap-server` given, which only `perf
/// eos` and `perf rebalance` take.
pub fn run(data: &Path, cmd: PerfCommand, cluster: Option<&ClusterArgs>) -> CliResult {
    if let Some(cluster) = cluster
        && !matches!(cmd, PerfCommand::Eos(_) | PerfCommand::Rebalance(_))
    {
        return Err(CliError::Usage(format!(
            "--bootstrap-server {} (or SLUICE_BOOTSTRAP_SERVER): of the benchmarks only `perf eos` and `perf rebalance` run on a Kafka cluster; the others use the data directory",
            cluster.bootstrap
        )));
    }
    match cmd {
        PerfCommand::Produce(args) => produce::run(data, &args),
        PerfCommand::Consume(args) => consume::run(data, &args),
        PerfCommand::Eos(args) => eos::run(data, &args, cluster),
        PerfCommand::Resume(args) => resume::run(data, &args),
        PerfCommand::Rebalance(args) => rebalance::run(data, &args, cluster),
        PerfCommand::Windows(args) => windows::run(data, &args),
        PerfCommand::TableChain(args) => table_chain::run(data, &args),
    }
}

/// Prints `records so far, rate` to stderr about once a second.
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    start: Instant,
    next: Instant,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(1);

    /// Starts the clock.
    pub fn new(what: &'static str) -> Self {
        let start = Instant::now();
        Self {
            what,
            start,
            next: start + Self::EVERY,
        }
    }

    /// Reports `records` done if a second has passed since the last report.
    pub fn tick(&mut self, records: u64, total: u64) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + Self::EVERY;
        let seconds = now.duration_since(self.start).as_secs_f64();
        let rate = records as f64 / seconds.max(1e-9);
        // Progress is best effort: a closed stderr must not stop the benchmark.
        let _ = writeln!(
            std::io::stderr(),
            "perf {}: {records}/{total} records, {rate:.0} records/s",
            self.what
        );
    }
}

/// Throughput figures of a finished run.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Records moved.
    pub records: u64,
    /// Bytes of record values moved.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Throughput {
    /// The JSON fields `"records":..,"bytes":..,"seconds":..,"records_per_sec":..,"mb_per_sec":..`
    /// (MB is 10^6 bytes), without braces.
    pub fn json_fields(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "\"records\":{},\"bytes\":{},\"seconds\":{},\"records_per_sec\":{},\"mb_per_sec\":{}",
            self.records,
            self.bytes,
            json_number(self.elapsed.as_secs_f64(), 6),
            json_number(self.records as f64 / seconds, 1),
            json_number(self.bytes as f64 / 1e6 / seconds, 3),
        )
    }
}

/// The `"latency_ms":{"p50":..,"p99":..,"max":..}` field from samples (`null` without any).
pub fn latency_json(samples: &mut [Duration]) -> String {
    match json_percentiles(samples) {
        Some((p50, p99, max)) => format!(
            "\"latency_ms\":{{\"p50\":{p50},\"p99\":{p99},\"max\":{max},\"samples\":{}}}",
            samples.len()
        ),
        None => "\"latency_ms\":null".to_string(),
    }
}

/// The p50, p99 and maximum of samples as JSON numbers of milliseconds; `None` without
/// samples. Sorts the samples.
pub fn json_percentiles(samples: &mut [Duration]) -> Option<(String, String, String)> {
    samples.sort_unstable();
    let max = samples.last().copied()?;
    let ms = |d: Duration| json_number(d.as_secs_f64() * 1e3, 3);
    Some((
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 99.0)),
        ms(max),
    ))
}

/// The nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&samples[..1], 99.0), Duration::from_millis(1));
    }

    #[test]
    fn latency_json_lists_percentiles() {
        let mut samples = vec![Duration::from_millis(3), Duration::from_millis(1)];
        assert_eq!(
            latency_json(&mut samples),
            "\"latency_ms\":{\"p50\":1.0,\"p99\":3.0,\"max\":3.0,\"samples\":2}"
        );
    }
}
