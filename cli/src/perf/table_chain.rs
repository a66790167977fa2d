//! `sluice perf table-chain`: what a chain of table operators costs. A source table of K
//! keys, each updated U times, goes through `filter` (three rows in four pass) and
//! `map_values`, and a stream of S records is joined with the result; the app runs exactly
//! once on the embedded log from a clean state. Reported: input records/s (table updates
//! plus stream records, from the app's start until its committed offsets reach the end of
//! both inputs), the bytes the app wrote to RocksDB (`AppMetrics::state_bytes_written`) and
//! the topology's state stores with the end offsets of their changelog topics summed
//! (records plus one commit marker per partition and transaction). See BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, value_parser};
use sluice::dsl::{StreamBuilder, Table};
use sluice::log::{Broker, Producer, ProducerConfig, ProducerRecord};
use sluice::runtime::AppConfig;
use sluice::runtime::app::{App, AppState};
use sluice::runtime::state::changelog_topic;
use sluice::runtime::topology::Topology;

use super::Progress;
use super::eos::{committed_all, input_end, recreate, runtime};
use crate::error::{CliError, CliResult};
use crate::output::{json_number, print_line};
use crate::{Open, with_broker};

const TABLE: &str = "perf-table-chain-table";
const STREAM: &str = "perf-table-chain-stream";
const OUTPUT: &str = "perf-table-chain-out";

/// Arguments of `perf table-chain`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"keys\":10000,\"updates\":20,\"table_records\":200000,\"stream_records\":200000,\"threads\":2,
   \"partitions\":4,\"commit_interval_ms\":100,\"seconds\":..,\"records_per_sec\":..,
   \"state_bytes_written\":..,\"state_bytes_per_record\":..,\"changelog_offsets\":..,\"stores\":[\"rows\",..]}
The data directory gets the topics perf-table-chain-table, perf-table-chain-stream and \
perf-table-chain-out (recreated), and the app's state under <data>/perf-table-chain-state; \
the app id (and so its group and changelog topics) ends in a suffix unique to the run.")]
pub struct PerfTableChainArgs {
    /// Keys of the table.
    #[arg(long, value_name = "K", default_value_t = 10_000, value_parser = value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Updates of each key (the table's input has K * U records).
    #[arg(long, value_name = "U", default_value_t = 20, value_parser = value_parser!(u64).range(1..))]
    pub updates: u64,
    /// Stream records joined with the table (default: K * U), interleaved with the updates.
    #[arg(long, value_name = "S", value_parser = value_parser!(u64).range(1..))]
    pub stream_records: Option<u64>,
    /// Stream threads of the app.
    #[arg(long, value_name = "T", default_value_t = 2, value_parser = value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// Partitions of the input topics (tasks).
    #[arg(long, value_name = "P", default_value_t = 4, value_parser = value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// The app's commit interval in ms.
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = value_parser!(u64).range(1..))]
    pub commit_interval_ms: u64,
}

/// The benchmark's topology: table -> filter -> map_values (lazy tables: the join reads
/// `rows` through them), joined by a stream.
fn topology() -> CliResult<Topology> {
    let b = StreamBuilder::new();
    let rows: Table<String, i64> = b.table(TABLE, "rows");
    let chain = rows.filter(|_, v| v % 4 != 0).map_values(|_, v| v * 10);
    b.stream::<String, i64>(STREAM)
        .join_table(&chain, |_, v, row| v + row)
        .to(OUTPUT);
    b.build()
        .map_err(|e| CliError::Failed(format!("the benchmark topology: {e}")))
}

/// Produces the table's updates and the stream's records, interleaved (timestamp `i` for
/// the `i`-th of each), keys round-robin.
fn produce(broker: &Broker, args: &PerfTableChainArgs, stream_records: u64) -> CliResult {
    let producer = Producer::new(broker, ProducerConfig::default())?;
    let table_records = args.keys * args.updates;
    let total = table_records + stream_records;
    let mut progress = Progress::new("table-chain: producing input");
    for i in 0..table_records.max(stream_records) {
        let key = format!("key-{}", i % args.keys);
        if i < table_records {
            let value = (i as i64).to_be_bytes().to_vec();
            let record = ProducerRecord::new(TABLE, value)
                .with_key(key.clone())
                .with_timestamp(i as i64);
            producer.send(record)?;
        }
        if i < stream_records {
            let record = ProducerRecord::new(STREAM, 1i64.to_be_bytes().to_vec())
                .with_key(key)
                .with_timestamp(i as i64);
            producer.send(record)?;
        }
        progress.tick(2 * i + 2, total);
    }
    producer.flush()?;
    Ok(())
}

/// Runs `perf table-chain`.
pub fn run(data: &Path, args: &PerfTableChainArgs) -> CliResult {
    with_broker(data, Open::CreateIfMissing, |broker| {
        for topic in [TABLE, STREAM, OUTPUT] {
            recreate(broker, topic, args.partitions)?;
        }
        let stream_records = args.stream_records.unwrap_or(args.keys * args.updates);
        produce(broker, args, stream_records)?;
        let total = args.keys * args.updates + stream_records;

        let id = format!("perf-table-chain-{:x}", sluice::log::now_ms());
        let state = data.join("perf-table-chain-state").join(&id);
        let config = AppConfig::default()
            .with_num_threads(args.threads as usize)
            .with_commit_interval(Duration::from_millis(args.commit_interval_ms))
            .with_max_poll_records(10_000)
            .with_state_dir(state);
        let topology = topology()?;
        let mut stores: Vec<String> = topology
            .sub_topologies()
            .iter()
            .flat_map(|s| s.stores.iter().cloned())
            .collect();
        stores.sort();
        let mut ends = input_end(broker, TABLE, args.partitions)?;
        ends.extend(input_end(broker, STREAM, args.partitions)?);
        let started = Instant::now();
        let app = App::new(id.as_str(), topology, config).map_err(runtime)?;
        let handle = app.start(broker).map_err(runtime)?;
        let mut progress = Progress::new("table-chain: processing");
        while !committed_all(broker, &id, &ends)? {
            if handle.state() == AppState::Error {
                return Err(CliError::Failed(handle.error().unwrap_or_default()));
            }
            progress.tick(handle.metrics().records_processed, total);
            std::thread::sleep(Duration::from_millis(2));
        }
        let seconds = started.elapsed().as_secs_f64();
        let metrics = handle.metrics();
        handle.shutdown().map_err(runtime)?;
        let mut changelog_offsets = 0;
        for store in &stores {
            let topic = changelog_topic(&id, store);
            let ends = input_end(broker, &topic, args.partitions)?;
            changelog_offsets += ends.iter().map(|(_, end)| end).sum::<i64>();
        }
        let stores: Vec<String> = stores.iter().map(|s| format!("\"{s}\"")).collect();
        print_line(&format!(
            "{{\"keys\":{},\"updates\":{},\"table_records\":{},\"stream_records\":{},\"threads\":{},\"partitions\":{},\"commit_interval_ms\":{},\"seconds\":{},\"records_per_sec\":{},\"state_bytes_written\":{},\"state_bytes_per_record\":{},\"changelog_offsets\":{},\"stores\":[{}]}}",
            args.keys,
            args.updates,
            args.keys * args.updates,
            stream_records,
            args.threads,
            args.partitions,
            args.commit_interval_ms,
            json_number(seconds, 6),
            json_number(total as f64 / seconds.max(1e-9), 1),
            metrics.state_bytes_written,
            json_number(metrics.state_bytes_written as f64 / total as f64, 1),
            changelog_offsets,
            stores.join(","),
        ))
    })
}
