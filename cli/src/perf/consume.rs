//! `sluice perf consume`: reads N records from the start of every partition of a topic with
//! a `Consumer` and reports the throughput.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::builder::RangedU64ValueParser;
use clap::{Args, value_parser};
use sluice::log::{Broker, Consumer, ConsumerConfig, TopicPartition, validate_topic_name};

use super::{Progress, Throughput};
use crate::error::{CliError, CliResult};
use crate::isolation::{self, Isolation};
use crate::output::print_line;
use crate::{Open, with_broker};

/// Give up when no record has arrived for this long.
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Records one poll may return.
const MAX_POLL_RECORDS: usize = 64 * 1024;

/// Arguments of `perf consume`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"records\":1000000,\"bytes\":100000000,\"seconds\":0.2,\"records_per_sec\":5000000.0,\"mb_per_sec\":500.0}
bytes is the sum of the value lengths; MB is 10^6 bytes. Fails at once if the topic holds fewer \
than N records, and after 10 s without a new record. Transaction markers, and under \
read_committed aborted transactions, are not records: a topic written by `perf produce \
--transactional` holds exactly the records sent.")]
pub struct PerfConsumeArgs {
    /// The topic to read.
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// How many records to read (the topic must hold at least this many).
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..))]
    pub records: u64,
    /// Most bytes fetched per partition at a time (max.partition.fetch.bytes).
    #[arg(
        long,
        value_name = "B",
        default_value_t = ConsumerConfig::default().max_partition_fetch_bytes,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_partition_fetch_bytes: usize,
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t, help = isolation::HELP)]
    pub isolation: Isolation,
}

/// Runs `perf consume`.
pub fn run(data: &Path, args: &PerfConsumeArgs) -> CliResult {
    validate_topic_name(&args.topic)?;
    with_broker(data, Open::MustExist, |broker| {
        let line = consume(broker, args)?;
        print_line(&line)
    })
}

/// Runs the benchmark and returns its JSON line.
fn consume(broker: &Broker, args: &PerfConsumeArgs) -> CliResult<String> {
    let meta = broker.topic_metadata(&args.topic)?;
    // An upper bound: markers and aborted records take offsets too.
    let readable = |p: &sluice::log::PartitionInfo| match args.isolation {
        Isolation::ReadCommitted => p.last_stable_offset,
        Isolation::ReadUncommitted => p.high_watermark,
    };
    let available: i64 = meta
        .partitions
        .iter()
        .map(|p| readable(p) - p.log_start_offset)
        .sum();
    if available < args.records as i64 {
        return Err(CliError::Usage(format!(
            "topic `{}` holds {available} records, fewer than --records {}",
            args.topic, args.records
        )));
    }
    let config = ConsumerConfig::default()
        .with_max_partition_fetch_bytes(args.max_partition_fetch_bytes)
        .with_max_poll_records(MAX_POLL_RECORDS)
        .with_isolation(args.isolation.into());
    let mut consumer = Consumer::new(broker, config);
    let partitions: Vec<TopicPartition> = meta
        .partitions
        .iter()
        .map(|p| TopicPartition::new(args.topic.as_str(), p.partition))
        .collect();
    consumer.assign(partitions.clone())?;
    for tp in &partitions {
        consumer.seek_to_beginning(tp)?;
    }

    let mut progress = Progress::new("consume");
    let start = Instant::now();
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut last_record = start;
    while records < args.records {
        let batch = consumer.poll(Duration::from_millis(200))?;
        if batch.is_empty() {
            if last_record.elapsed() >= STALL_LIMIT {
                return Err(CliError::Failed(format!(
                    "no record for {} s after reading {records} of {} records",
                    STALL_LIMIT.as_secs(),
                    args.records
                )));
            }
            continue;
        }
        last_record = Instant::now();
        let take = batch
            .len()
            .min(usize::try_from(args.records - records).unwrap_or(usize::MAX));
        bytes += batch[..take]
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
            .sum::<u64>();
        records += take as u64;
        progress.tick(records, args.records);
    }
    let throughput = Throughput {
        records,
        bytes,
        elapsed: start.elapsed(),
    };
    Ok(format!("{{{}}}", throughput.json_fields()))
}
