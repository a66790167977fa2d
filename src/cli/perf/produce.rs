//! `sluice perf produce`: sends N records of B bytes (one shared value, null keys) through a
//! `Producer`, measures throughput and the send-to-acknowledgement latency of a sample of
//! records, and checks that every record reached the log.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use clap::{Args, value_parser};
use sluice_log::{
    Broker, DeliveryFuture, FsyncPolicy, Producer, ProducerConfig, ProducerRecord, TopicConfig,
    validate_topic_name,
};

use super::{Progress, Throughput, latency_json};
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::print_line;
use crate::cli::{Open, with_broker};

/// Latency is measured on at most about this many records.
const LATENCY_SAMPLES: u64 = 10_000;
/// Bytes a small record adds to its value inside a batch (lengths, deltas, attributes).
const RECORD_OVERHEAD: usize = 10;

/// Arguments of `perf produce`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"records\":1000000,\"bytes\":100000000,\"seconds\":0.41,\"records_per_sec\":2439024.4,\
\"mb_per_sec\":243.9,\"latency_ms\":{\"p50\":3.1,\"p99\":9.8,\"max\":12.0,\"samples\":10000},\
\"fsync_at_end\":false}
bytes counts record values (records x record size); MB is 10^6 bytes. Latency is from `send` to \
acknowledgement, sampled on up to 10000 records spread evenly over the run.

Example:
  sluice perf produce --topic bench --records 10000000 --record-size 100")]
pub struct PerfProduceArgs {
    /// The topic; created when missing, with --partitions and --fsync.
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// How many records to send.
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..))]
    pub records: u64,
    /// Size of each record's value in bytes.
    #[arg(long, value_name = "B")]
    pub record_size: usize,
    /// Producer batch size in bytes (batch.size).
    #[arg(long, value_name = "B", default_value_t = ProducerConfig::default().batch_size)]
    pub batch_bytes: usize,
    /// How long the producer waits to fill a batch (linger.ms).
    #[arg(long, value_name = "MS", default_value_t = ProducerConfig::default().linger.as_millis() as u64)]
    pub linger_ms: u64,
    /// Partitions of the topic when it has to be created [default: 1]. Records go to one
    /// partition a batch at a time, in turn (as Kafka's sticky partitioner does).
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// fsync policy of the topic when it has to be created: always, interval:MS or never
    /// [default: never].
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<String>,
    /// fsync every partition before stopping the clock; adds "fsync_at_end":true.
    #[arg(long)]
    pub flush_at_end: bool,
}

/// Runs `perf produce`.
pub fn run(data: &Path, args: &PerfProduceArgs) -> CliResult {
    validate_topic_name(&args.topic)?;
    let fsync: FsyncPolicy = args.fsync.as_deref().unwrap_or("never").parse()?;
    let config = TopicConfig::default()
        .with_partitions(args.partitions.unwrap_or(1))
        .with_fsync(fsync);
    config.validate()?;
    with_broker(data, Open::CreateIfMissing, |broker| {
        ensure_topic(broker, &args.topic, config, args)?;
        let line = produce(broker, args)?;
        print_line(&line)
    })
}

/// Creates the topic if it is missing; says so when flags for a new topic go unused.
fn ensure_topic(
    broker: &Broker,
    topic: &str,
    config: TopicConfig,
    args: &PerfProduceArgs,
) -> CliResult {
    match broker.topic_metadata(topic) {
        Ok(existing) => {
            if args.partitions.is_some() || args.fsync.is_some() {
                tracing::warn!(
                    topic,
                    partitions = existing.partitions.len(),
                    fsync = %existing.config.fsync,
                    "the topic exists: --partitions and --fsync are ignored"
                );
            }
            Ok(())
        }
        Err(sluice_log::Error::UnknownTopic { .. }) => Ok(broker.create_topic(topic, config)?),
        Err(e) => Err(e.into()),
    }
}

/// The sum of the log end offsets of a topic's partitions.
fn log_end_total(broker: &Broker, topic: &str) -> CliResult<i64> {
    let meta = broker.topic_metadata(topic)?;
    Ok(meta.partitions.iter().map(|p| p.log_end_offset).sum())
}

/// Runs the benchmark and returns its JSON line.
fn produce(broker: &Broker, args: &PerfProduceArgs) -> CliResult<String> {
    let partitions = broker.partition_count(&args.topic)?;
    let before = log_end_total(broker, &args.topic)?;
    let config = ProducerConfig::default()
        .with_batch_size(args.batch_bytes)
        .with_linger_ms(args.linger_ms);
    let producer = Producer::new(broker, config)?;
    let plan = Plan {
        args,
        value: Bytes::from(
            (0..args.record_size)
                .map(|i| b'a' + (i % 26) as u8)
                .collect::<Vec<u8>>(),
        ),
        partitions: u64::try_from(partitions).unwrap_or(1).max(1),
        per_batch: (args.batch_bytes / (args.record_size + RECORD_OVERHEAD)).max(1) as u64,
        sample_every: (args.records / LATENCY_SAMPLES).max(1),
    };

    // Sampled deliveries are awaited on another thread, in send order, so the sending loop
    // never blocks on an acknowledgement.
    let (tx, rx) = mpsc::channel::<(Instant, DeliveryFuture)>();
    let waiter = thread::Builder::new()
        .name("sluice-perf-latency".into())
        .spawn(move || {
            let mut samples = Vec::new();
            let mut first_error = None;
            for (sent, delivery) in rx {
                match delivery.wait() {
                    Ok(_) => samples.push(sent.elapsed()),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            (samples, first_error)
        })
        .map_err(CliError::io("spawning a thread"))?;

    let mut progress = Progress::new("produce");
    let start = Instant::now();
    let sent = send_all(&producer, &plan, &tx, &mut progress);
    drop(tx);
    producer.flush()?;
    if args.flush_at_end {
        broker.flush()?;
    }
    let elapsed = start.elapsed();
    let (mut samples, delivery_error) = waiter
        .join()
        .map_err(|_| CliError::Failed("the latency thread panicked".into()))?;
    producer.close()?;
    sent?;
    if let Some(e) = delivery_error {
        return Err(e.into());
    }
    let appended = log_end_total(broker, &args.topic)? - before;
    if appended != args.records as i64 {
        return Err(CliError::Failed(format!(
            "{appended} records reached the log, {} were sent",
            args.records
        )));
    }
    let throughput = Throughput {
        records: args.records,
        bytes: args.records * args.record_size as u64,
        elapsed,
    };
    Ok(format!(
        "{{{},{},\"fsync_at_end\":{}}}",
        throughput.json_fields(),
        latency_json(&mut samples),
        args.flush_at_end
    ))
}

/// What to send and where.
#[derive(Debug)]
struct Plan<'a> {
    args: &'a PerfProduceArgs,
    /// The value every record shares.
    value: Bytes,
    /// Partitions of the topic.
    partitions: u64,
    /// Records that fill a batch: the loop moves to the next partition after this many.
    per_batch: u64,
    /// Every this many records, one is timed.
    sample_every: u64,
}

/// The sending loop.
fn send_all(
    producer: &Producer,
    plan: &Plan<'_>,
    samples: &mpsc::Sender<(Instant, DeliveryFuture)>,
    progress: &mut Progress,
) -> CliResult {
    let args = plan.args;
    for i in 0..args.records {
        let partition = ((i / plan.per_batch) % plan.partitions) as i32;
        let record =
            ProducerRecord::new(args.topic.as_str(), plan.value.clone()).with_partition(partition);
        if i % plan.sample_every == 0 {
            let sent = Instant::now();
            let delivery = producer.send(record)?;
            // The receiver only goes away if its thread died; the join reports that.
            let _ = samples.send((sent, delivery));
        } else {
            producer.send(record)?;
        }
        if i % 4096 == 0 {
            progress.tick(i, args.records);
        }
    }
    Ok(())
}
