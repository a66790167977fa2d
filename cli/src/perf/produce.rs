//! `sluice perf produce`: sends N records of B bytes (one shared value, null keys) through a
//! `Producer`, measures throughput and the send-to-acknowledgement latency of a sample of
//! records, and checks that every record reached the log. With `--transactional` the records
//! are sent in transactions (see [`super::txn`]) and commit latency is reported too.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, value_parser};
use sluice::log::{
    Broker, DeliveryFuture, FsyncPolicy, Producer, ProducerConfig, ProducerRecord, TopicConfig,
    validate_topic_name,
};

use super::txn::{CommitEvery, Transactions};
use super::{Progress, Throughput, latency_json};
use crate::error::{CliError, CliResult};
use crate::output::print_line;
use crate::{Open, with_broker};

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

With --transactional the producer is transactional (transactional.id sluice-perf-<pid>): it \
begins a transaction, sends --txn-records records (or sends for --commit-interval-ms, default \
100 ms as in Kafka Streams), commits, and so on; the last transaction holds what is left. The \
line then also has \"commit_ms\":{\"p50\":..,\"p99\":..,\"count\":..}, the time each \
commit_transaction took (it sends what is buffered, writes the markers and, under the commit \
fsync policy, fsyncs) and the number of commits. Read the records back with `perf consume \
--isolation read_committed`.

Examples:
  sluice perf produce --topic bench --records 10000000 --record-size 100
  sluice perf produce --topic bench --records 1000000 --record-size 100 --transactional --txn-records 1000
  sluice perf produce --topic bench --records 1000000 --record-size 100 --transactional --commit-interval-ms 100 --fsync commit")]
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
    /// Bytes the producer may buffer before `send` blocks (buffer.memory). Under
    /// --transactional every commit first drains this buffer, so it bounds commit latency.
    #[arg(long, value_name = "B", default_value_t = ProducerConfig::default().buffer_memory)]
    pub buffer_bytes: usize,
    /// Partitions of the topic when it has to be created [default: 1]. Records go to one
    /// partition a batch at a time, in turn (as Kafka's sticky partitioner does).
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// fsync policy of the topic when it has to be created: always, commit, interval:MS or
    /// never (see `topic create --help`) [default: never, to measure the log rather than the
    /// disk; topics created with `topic create` default to commit].
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<String>,
    /// fsync every partition before stopping the clock; adds "fsync_at_end":true.
    #[arg(long)]
    pub flush_at_end: bool,
    /// Send the records in transactions with a transactional producer; adds "commit_ms".
    /// Commits every --txn-records records or every --commit-interval-ms (default 100 ms).
    #[arg(long)]
    pub transactional: bool,
    /// With --transactional: commit after every N records.
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..))]
    pub txn_records: Option<u64>,
    /// With --transactional: commit once MS milliseconds have passed since the transaction
    /// began (Kafka Streams commits every 100 ms), up to 300000.
    #[arg(long, value_name = "MS", value_parser = value_parser!(u64).range(1..=300_000))]
    pub commit_interval_ms: Option<u64>,
}

impl PerfProduceArgs {
    /// When transactions commit, or `None` without --transactional.
    fn commit_every(&self) -> CliResult<Option<CommitEvery>> {
        if !self.transactional {
            if self.txn_records.is_some() || self.commit_interval_ms.is_some() {
                return Err(CliError::Usage(
                    "--txn-records and --commit-interval-ms need --transactional".into(),
                ));
            }
            return Ok(None);
        }
        Ok(Some(match (self.txn_records, self.commit_interval_ms) {
            (Some(_), Some(_)) => {
                return Err(CliError::Usage(
                    "give either --txn-records or --commit-interval-ms, not both".into(),
                ));
            }
            (Some(n), None) => CommitEvery::Records(n),
            (None, ms) => CommitEvery::Interval(Duration::from_millis(ms.unwrap_or(100))),
        }))
    }
}

/// Runs `perf produce`.
pub fn run(data: &Path, args: &PerfProduceArgs) -> CliResult {
    validate_topic_name(&args.topic)?;
    let every = args.commit_every()?;
    let fsync: FsyncPolicy = args.fsync.as_deref().unwrap_or("never").parse()?;
    let config = TopicConfig::default()
        .with_partitions(args.partitions.unwrap_or(1))
        .with_fsync(fsync);
    config.validate()?;
    with_broker(data, Open::CreateIfMissing, |broker| {
        ensure_topic(broker, &args.topic, config, args)?;
        let line = produce(broker, args, every)?;
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
        Err(sluice::log::Error::UnknownTopic { .. }) => Ok(broker.create_topic(topic, config)?),
        Err(e) => Err(e.into()),
    }
}

/// The sum of the log end offsets of a topic's partitions.
fn log_end_total(broker: &Broker, topic: &str) -> CliResult<i64> {
    let meta = broker.topic_metadata(topic)?;
    Ok(meta.partitions.iter().map(|p| p.log_end_offset).sum())
}

/// Runs the benchmark and returns its JSON line.
fn produce(
    broker: &Broker,
    args: &PerfProduceArgs,
    every: Option<CommitEvery>,
) -> CliResult<String> {
    let partitions = broker.partition_count(&args.topic)?;
    let before = log_end_total(broker, &args.topic)?;
    let mut config = ProducerConfig::default()
        .with_batch_size(args.batch_bytes)
        .with_linger_ms(args.linger_ms)
        .with_buffer_memory(args.buffer_bytes);
    if let Some(every) = every {
        let interval = match every {
            CommitEvery::Interval(d) => d,
            CommitEvery::Records(_) => Duration::ZERO,
        };
        config = config
            .with_transactional_id(format!("sluice-perf-{}", std::process::id()))
            .with_transaction_timeout((interval * 3).max(Duration::from_secs(60)));
    }
    let producer = Producer::new(broker, config)?;
    let mut txns = match every {
        Some(every) => Some(Transactions::init(
            &producer,
            every,
            usize::try_from(partitions).unwrap_or(0),
        )?),
        None => None,
    };
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
    let sent = send_all(&producer, &plan, &tx, &mut progress, txns.as_mut());
    drop(tx);
    let committed = match txns.as_mut() {
        Some(t) if sent.is_ok() => t.finish(),
        _ => Ok(()),
    };
    if let Some(t) = txns.as_mut()
        && (sent.is_err() || committed.is_err())
    {
        t.abort_open();
    }
    producer.flush()?;
    if args.flush_at_end {
        broker.flush()?;
    }
    let elapsed = start.elapsed();
    let (mut samples, delivery_error) = waiter
        .join()
        .map_err(|_| CliError::Failed("the latency thread panicked".into()))?;
    sent?;
    committed?;
    if let Some(e) = delivery_error {
        return Err(e.into());
    }
    // Each commit adds a marker to every partition its transaction wrote to.
    let markers = txns.as_ref().map_or(0, Transactions::markers);
    let commit_json = txns.as_mut().map(Transactions::commit_json);
    drop(txns);
    producer.close()?;
    let appended = log_end_total(broker, &args.topic)? - before - markers;
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
    let commit = commit_json.map_or(String::new(), |c| format!(",{c}"));
    Ok(format!(
        "{{{},{},\"fsync_at_end\":{}{commit}}}",
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
    mut txns: Option<&mut Transactions<'_>>,
) -> CliResult {
    let args = plan.args;
    for i in 0..args.records {
        let partition = ((i / plan.per_batch) % plan.partitions) as i32;
        if let Some(t) = txns.as_deref_mut() {
            t.before_send(partition as usize)?;
        }
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
        if let Some(t) = txns.as_deref_mut() {
            t.after_send()?;
        }
        if i % 4096 == 0 {
            progress.tick(i, args.records);
        }
    }
    Ok(())
}
