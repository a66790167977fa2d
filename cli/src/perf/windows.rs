//! `sluice perf windows`: the DSL's stateful operators side by side. One input of N records
//! (K keys, event time one millisecond apart) is aggregated by three exactly-once DSL apps,
//! each from a clean state: a count per key (a key-value store), a count per key and
//! tumbling window (a window store), and a count per key and session (a session store).
//! Each reports input records/s; the ratios to the key-value count show what windowing
//! costs.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, value_parser};
use sluice::dsl::{SessionWindows, StreamBuilder, TimeWindows};
use sluice::log::{Broker, Producer, ProducerConfig, ProducerRecord};
use sluice::runtime::AppConfig;
use sluice::runtime::app::{App, AppState};
use sluice::runtime::topology::Topology;

use super::Progress;
use super::eos::{committed_all, input_end, recreate, runtime};
use crate::error::{CliError, CliResult};
use crate::output::{json_number, print_line};
use crate::{Open, with_broker};

const INPUT: &str = "perf-windows-in";

/// Arguments of `perf windows`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"records\":1000000,\"keys\":10000,\"threads\":2,\"partitions\":4,\"window_ms\":60000,\"gap_ms\":5000,
   \"count\":{\"seconds\":..,\"records_per_sec\":..},\"tumbling\":{..},\"session\":{..},
   \"tumbling_over_count\":0.8,\"session_over_count\":0.6}
Throughput counts from the start of each app to the moment its committed offsets reach the \
end of the input. The data directory gets the topic perf-windows-in (recreated) and the apps' \
state under <data>/perf-windows-state.")]
pub struct PerfWindowsArgs {
    /// Input records to pre-produce and aggregate with each app.
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..))]
    pub records: u64,
    /// Distinct keys (records are spread over them round-robin).
    #[arg(long, value_name = "K", value_parser = value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Stream threads of each app.
    #[arg(long, value_name = "T", default_value_t = 2, value_parser = value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// Partitions of the input topic (tasks).
    #[arg(long, value_name = "P", default_value_t = 4, value_parser = value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Size of the tumbling windows in ms (event time advances 1 ms per record).
    #[arg(long, value_name = "MS", default_value_t = 60_000, value_parser = value_parser!(u64).range(1..))]
    pub window_ms: u64,
    /// Inactivity gap of the sessions in ms.
    #[arg(long, value_name = "MS", default_value_t = 5_000, value_parser = value_parser!(u64).range(1..))]
    pub gap_ms: u64,
}

/// The three apps' topologies by name.
fn topology(kind: &str, args: &PerfWindowsArgs) -> CliResult<Topology> {
    let b = StreamBuilder::new();
    let grouped = b.stream::<String, ()>(INPUT).group_by_key();
    match kind {
        "count" => {
            grouped.count("counts");
        }
        "tumbling" => {
            let windows = TimeWindows::of(Duration::from_millis(args.window_ms));
            grouped.windowed_by(windows).count("window-counts");
        }
        _ => {
            let sessions = SessionWindows::with_inactivity_gap(Duration::from_millis(args.gap_ms));
            grouped
                .windowed_by_session(sessions)
                .count("session-counts");
        }
    }
    b.build()
        .map_err(|e| CliError::Failed(format!("the benchmark topology: {e}")))
}

/// Runs `perf windows`.
pub fn run(data: &Path, args: &PerfWindowsArgs) -> CliResult {
    with_broker(data, Open::CreateIfMissing, |broker| {
        recreate(broker, INPUT, args.partitions)?;
        let producer = Producer::new(broker, ProducerConfig::default())?;
        let mut progress = Progress::new("windows: producing input");
        for i in 0..args.records {
            let record = ProducerRecord::new(INPUT, Vec::new())
                .with_key(format!("key-{}", i % args.keys))
                .with_timestamp(i as i64);
            producer.send(record)?;
            progress.tick(i + 1, args.records);
        }
        producer.flush()?;
        let mut figures = Vec::new();
        for kind in ["count", "tumbling", "session"] {
            figures.push((kind, aggregate(broker, data, args, kind)?));
        }
        let rate = |seconds: f64| args.records as f64 / seconds.max(1e-9);
        let modes: Vec<String> = figures
            .iter()
            .map(|(kind, seconds)| {
                format!(
                    "\"{kind}\":{{\"seconds\":{},\"records_per_sec\":{}}}",
                    json_number(*seconds, 6),
                    json_number(rate(*seconds), 1)
                )
            })
            .collect();
        let ratio = |i: usize| json_number(figures[0].1 / figures[i].1.max(1e-9), 3);
        print_line(&format!(
            "{{\"records\":{},\"keys\":{},\"threads\":{},\"partitions\":{},\"window_ms\":{},\"gap_ms\":{},{},\"tumbling_over_count\":{},\"session_over_count\":{}}}",
            args.records,
            args.keys,
            args.threads,
            args.partitions,
            args.window_ms,
            args.gap_ms,
            modes.join(","),
            ratio(1),
            ratio(2),
        ))
    })
}

/// Runs app `kind` over the whole input from a clean state; its seconds.
fn aggregate(broker: &Broker, data: &Path, args: &PerfWindowsArgs, kind: &str) -> CliResult<f64> {
    let id = format!("perf-windows-{kind}");
    let state = data.join("perf-windows-state").join(&id);
    if state.exists() {
        std::fs::remove_dir_all(&state).map_err(CliError::io("removing old benchmark state"))?;
    }
    let config = AppConfig::default()
        .with_num_threads(args.threads as usize)
        .with_max_poll_records(10_000)
        .with_state_dir(state);
    let ends = input_end(broker, INPUT, args.partitions)?;
    let started = Instant::now();
    let app = App::new(id.as_str(), topology(kind, args)?, config).map_err(runtime)?;
    let handle = app.start(broker).map_err(runtime)?;
    let mut progress = Progress::new("windows: aggregating");
    while !committed_all(broker, &id, &ends)? {
        if handle.state() == AppState::Error {
            return Err(CliError::Failed(handle.error().unwrap_or_default()));
        }
        progress.tick(handle.metrics().records_processed, args.records);
        std::thread::sleep(Duration::from_millis(2));
    }
    let seconds = started.elapsed().as_secs_f64();
    handle.shutdown().map_err(runtime)?;
    Ok(seconds)
}
