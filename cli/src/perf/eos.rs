//! `sluice perf eos`: the runtime benchmark. A count-by-key topology (source -> count in a
//! RocksDB store -> sink, one output record per input) runs over N pre-produced records,
//! once at-least-once and once exactly-once, each from a clean state on the same input:
//! input records/s of each and their ratio. Then, with the exactly-once app running,
//! records are produced at a steady rate and the end-to-end latency (produce to visible
//! to a read_committed reader) is measured, with the commit latency the app reports.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, value_parser};
use sluice::log::cluster::{
    Cluster, ClusterConsumer, ClusterError, ConsumerSpec, OffsetAt, ProducerSpec, TxnProducer,
};
use sluice::log::{Broker, ProducerRecord, TopicConfig, TopicPartition};
use sluice::runtime::app::{App, AppHandle, AppMetrics, AppState};
use sluice::runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice::runtime::serde::{BigEndianSerde, StringSerde};
use sluice::runtime::topology::{StoreSpec, Topology, TopologyBuilder};
use sluice::runtime::{AppConfig, ProcessingGuarantee};

use super::{Progress, latency_json};

/// The latency phase's producer lingers 5 ms (the Java producer's default), as Kafka
/// Streams' CountBench in bench/kafka-streams does. With none, librdkafka sent the 20 k/s
/// stream in over a thousand requests a second, and its sender thread and the broker
/// answering them took most of a core of two. A record's latency counts from its send, so
/// the linger is part of what is measured.
const LATENCY_LINGER: Duration = Duration::from_millis(5);

/// The key of the record that warms the latency phase's producer up (not measured).
const WARM_UP_KEY: &str = "warm-up";
use crate::error::{CliError, CliResult};
use crate::output::{json_number, print_line};
use crate::{ClusterArgs, Open, with_broker};

/// Arguments of `perf eos`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"records\":2000000,\"keys\":10000,\"threads\":2,\"partitions\":4,\"commit_interval_ms\":100,
   \"alos\":{\"seconds\":..,\"records_per_sec\":..},\"eos\":{\"seconds\":..,\"records_per_sec\":..},
   \"eos_over_alos\":0.97,\"latency_ms\":{\"p50\":..,\"p99\":..,\"max\":..,\"samples\":..},
   \"commit_latency_ms\":{\"p50\":..,\"p99\":..}}
Throughput counts from the start of the app to the moment its committed offsets reach the end \
of the input. The data directory gets topics perf-eos-in, perf-eos-out-alos and \
perf-eos-out-eos (recreated) and the apps' state under <data>/perf-eos-state. With \
--bootstrap-server the topics and groups are on that Kafka cluster instead, named with a \
suffix unique to the run (perf-eos-in-<run> ...), and only the state is under <data>.")]
pub struct PerfEosArgs {
    /// Input records to pre-produce and process in each mode.
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..))]
    pub records: u64,
    /// Distinct keys (records are spread over them round-robin).
    #[arg(long, value_name = "K", value_parser = value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Stream threads of each app.
    #[arg(long, value_name = "T", default_value_t = 2, value_parser = value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// Partitions of the input and output topics (tasks).
    #[arg(long, value_name = "P", default_value_t = 4, value_parser = value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// The apps' commit interval in ms (both modes).
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = value_parser!(u64).range(1..))]
    pub commit_interval_ms: u64,
    /// Records per second in the latency phase.
    #[arg(long, value_name = "R", default_value_t = 20_000, value_parser = value_parser!(u64).range(1..))]
    pub latency_rate: u64,
    /// Length of the latency phase in seconds.
    #[arg(long, value_name = "S", default_value_t = 3, value_parser = value_parser!(u64).range(1..=600))]
    pub latency_seconds: u64,
}

/// The topics and app ids of one run.
struct Names {
    input: String,
    suffix: String,
}

impl Names {
    fn app(&self, guarantee: ProcessingGuarantee) -> String {
        match guarantee {
            ProcessingGuarantee::ExactlyOnce => format!("perf-eos-eos{}", self.suffix),
            ProcessingGuarantee::AtLeastOnce => format!("perf-eos-alos{}", self.suffix),
        }
    }

    fn output(&self, guarantee: ProcessingGuarantee) -> String {
        match guarantee {
            ProcessingGuarantee::ExactlyOnce => format!("perf-eos-out-eos{}", self.suffix),
            ProcessingGuarantee::AtLeastOnce => format!("perf-eos-out-alos{}", self.suffix),
        }
    }
}

/// A cluster's error as the CLI's.
pub(super) fn cluster_error<E: ClusterError>(e: E) -> CliError {
    match sluice::runtime::Error::cluster(e) {
        sluice::runtime::Error::Log(log) => CliError::Log(log),
        other => CliError::Failed(other.to_string()),
    }
}

/// Counts per key, forwarding each new count.
#[derive(Debug)]
struct CountByKey;

impl Processor<String, i64, String, i64> for CountByKey {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> ProcessResult {
        let mut counts = ctx.kv_store::<String, i64>("counts")?;
        let count = counts.get(&record.key)?.unwrap_or(0) + 1;
        counts.put(&record.key, &count)?;
        ctx.forward(record.with_value(count))?;
        Ok(())
    }
}

fn topology(input: &str, output: &str) -> CliResult<Topology> {
    let fail = |e: sluice::runtime::topology::TopologyError| CliError::Failed(e.to_string());
    let mut b = TopologyBuilder::new();
    b.add_source::<String, i64>("in", &[input], StringSerde, BigEndianSerde)
        .map_err(fail)?;
    b.add_processor("count", &["in"], || CountByKey)
        .map_err(fail)?;
    b.add_state_store(
        StoreSpec::key_value::<String, i64>("counts", StringSerde, BigEndianSerde),
        &["count"],
    )
    .map_err(fail)?;
    b.add_sink::<String, i64>("out", output, &["count"], StringSerde, BigEndianSerde)
        .map_err(fail)?;
    b.build().map_err(fail)
}

const INPUT: &str = "perf-eos-in";

pub(super) fn runtime(e: sluice::runtime::Error) -> CliError {
    CliError::Failed(e.to_string())
}

/// Runs `perf eos`: on the data directory's log, or on the Kafka cluster of the global
/// `--bootstrap-server` (Apache Kafka or `sluice broker`).
pub fn run(data: &Path, args: &PerfEosArgs, cluster: Option<&ClusterArgs>) -> CliResult {
    match cluster {
        None => with_broker(data, Open::CreateIfMissing, |broker| {
            for topic in [INPUT, "perf-eos-out-alos", "perf-eos-out-eos"] {
                recreate(broker, topic, args.partitions)?;
            }
            let names = Names {
                input: INPUT.to_string(),
                suffix: String::new(),
            };
            let line = bench(broker, data, args, &names)?;
            print_line(&line)
        }),
        Some(cluster) => on_kafka(data, args, cluster),
    }
}

#[cfg(feature = "kafka")]
fn on_kafka(data: &Path, args: &PerfEosArgs, cluster: &ClusterArgs) -> CliResult {
    use sluice::log::cluster::{InternalTopic, InternalTopicKind};
    let cluster = super::super::remote::connect(cluster)?.cluster;
    let run = format!("{:x}", sluice::log::now_ms());
    let suffix = format!("-{run}");
    let names = Names {
        input: format!("{INPUT}{suffix}"),
        suffix,
    };
    let spec = InternalTopic {
        partitions: Some(args.partitions),
        kind: InternalTopicKind::Repartition,
    };
    for topic in [
        names.input.clone(),
        names.output(ProcessingGuarantee::AtLeastOnce),
        names.output(ProcessingGuarantee::ExactlyOnce),
    ] {
        cluster
            .create_internal_topic(&topic, &spec)
            .map_err(cluster_error)?;
    }
    std::fs::create_dir_all(data).map_err(CliError::io("creating the data directory"))?;
    let line = bench(&cluster, data, args, &names)?;
    print_line(&line)
}

#[cfg(not(feature = "kafka"))]
fn on_kafka(_data: &Path, _args: &PerfEosArgs, _cluster: &ClusterArgs) -> CliResult {
    Err(super::super::no_kafka_feature())
}

/// Deletes `topic` if it exists and creates it with `partitions`.
pub(super) fn recreate(broker: &Broker, topic: &str, partitions: i32) -> CliResult {
    if broker.topic_metadata(topic).is_ok() {
        broker.delete_topic(topic)?;
    }
    broker.create_topic(topic, TopicConfig::default().with_partitions(partitions))?;
    Ok(())
}

fn produce<C: Cluster>(cluster: &C, input: &str, args: &PerfEosArgs) -> CliResult {
    let mut producer = cluster
        .producer(&ProducerSpec::idempotent("perf-eos-input"))
        .map_err(cluster_error)?;
    let mut progress = Progress::new("eos: producing input");
    for i in 0..args.records {
        let key = format!("key-{}", i % args.keys);
        let record = ProducerRecord::new(input, 1i64.to_be_bytes().to_vec()).with_key(key);
        producer.send(record).map_err(cluster_error)?;
        progress.tick(i + 1, args.records);
    }
    producer.flush().map_err(cluster_error)?;
    producer.close().map_err(cluster_error)
}

/// The end offset of each partition of `topic`.
pub(super) fn input_end<C: Cluster>(
    cluster: &C,
    topic: &str,
    partitions: i32,
) -> CliResult<Vec<(TopicPartition, i64)>> {
    let mut ends = Vec::new();
    for p in 0..partitions {
        let tp = TopicPartition::new(topic, p);
        let end = cluster
            .list_offset(&tp, OffsetAt::Latest)
            .map_err(cluster_error)?;
        ends.push((tp, end));
    }
    Ok(ends)
}

/// Whether `group` has committed every partition to its end in `ends`.
pub(super) fn committed_all<C: Cluster>(
    cluster: &C,
    group: &str,
    ends: &[(TopicPartition, i64)],
) -> CliResult<bool> {
    let partitions: Vec<TopicPartition> = ends.iter().map(|(tp, _)| tp.clone()).collect();
    let committed = cluster
        .committed_offsets(group, &partitions)
        .map_err(cluster_error)?;
    Ok(committed
        .iter()
        .zip(ends)
        .all(|((_, c), (_, end))| c.unwrap_or(0) >= *end))
}

fn start<C: Cluster>(
    cluster: &C,
    data: &Path,
    args: &PerfEosArgs,
    names: &Names,
    guarantee: ProcessingGuarantee,
) -> CliResult<(AppHandle, String)> {
    let (id, output) = (names.app(guarantee), names.output(guarantee));
    let state = data.join("perf-eos-state").join(&id);
    if state.exists() {
        std::fs::remove_dir_all(&state).map_err(CliError::io("removing old benchmark state"))?;
    }
    let config = AppConfig::default()
        .with_processing_guarantee(guarantee)
        .with_num_threads(args.threads as usize)
        .with_commit_interval(Duration::from_millis(args.commit_interval_ms))
        .with_max_poll_records(10_000)
        .with_state_dir(state);
    let app = App::new(&id, topology(&names.input, &output)?, config).map_err(runtime)?;
    Ok((app.start(cluster).map_err(runtime)?, id))
}

/// Runs one mode over the whole input; returns (seconds, metrics) and the running handle.
fn throughput<C: Cluster>(
    cluster: &C,
    data: &Path,
    args: &PerfEosArgs,
    names: &Names,
    guarantee: ProcessingGuarantee,
) -> CliResult<(f64, AppMetrics, AppHandle)> {
    let ends = input_end(cluster, &names.input, args.partitions)?;
    let started = Instant::now();
    let (handle, group) = start(cluster, data, args, names, guarantee)?;
    let mut progress = Progress::new("eos: processing");
    while !committed_all(cluster, &group, &ends)? {
        if handle.state() == AppState::Error {
            return Err(CliError::Failed(handle.error().unwrap_or_default()));
        }
        progress.tick(handle.metrics().records_processed, args.records);
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((started.elapsed().as_secs_f64(), handle.metrics(), handle))
}

fn latency<C: Cluster>(cluster: &C, args: &PerfEosArgs, names: &Names) -> CliResult<Vec<Duration>> {
    let mut consumer = cluster
        .consumer(&ConsumerSpec::read_committed("perf-eos-latency"))
        .map_err(cluster_error)?;
    let output = names.output(ProcessingGuarantee::ExactlyOnce);
    let ends = input_end(cluster, &output, args.partitions)?;
    consumer.assign(&ends).map_err(cluster_error)?;
    let done = Arc::new(AtomicBool::new(false));
    let total = args.latency_rate * args.latency_seconds;
    let producer_thread = {
        let cluster = cluster.clone();
        let done = done.clone();
        let (rate, keys, input) = (args.latency_rate, args.keys, names.input.clone());
        std::thread::spawn(move || -> CliResult {
            let spec = ProducerSpec::idempotent("perf-eos-latency").with_linger(LATENCY_LINGER);
            let mut producer = cluster.producer(&spec).map_err(cluster_error)?;
            // A new producer's first send waits for its connection, metadata and producer
            // id (librdkafka asks again for the id after 500 ms if no connection was up
            // yet): one record sent and flushed before the paced stream keeps that wait out
            // of the figures. The reader skips its output.
            let record = |key: String| {
                ProducerRecord::new(input.as_str(), 1i64.to_be_bytes().to_vec())
                    .with_key(key)
                    .with_timestamp(sluice::log::now_ms())
            };
            producer
                .send(record(WARM_UP_KEY.to_string()))
                .map_err(cluster_error)?;
            producer.flush().map_err(cluster_error)?;
            let started = Instant::now();
            for i in 0..total {
                let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                producer
                    .send(record(format!("key-{}", i % keys)))
                    .map_err(cluster_error)?;
            }
            producer.flush().map_err(cluster_error)?;
            done.store(true, Ordering::SeqCst);
            producer.close().map_err(cluster_error)
        })
    };
    let mut samples = Vec::with_capacity(total as usize);
    let deadline = Instant::now() + Duration::from_secs(args.latency_seconds + 30);
    while (samples.len() as u64) < total && Instant::now() < deadline {
        for record in consumer
            .poll(Duration::from_millis(5))
            .map_err(cluster_error)?
        {
            if record.key.as_deref() == Some(WARM_UP_KEY.as_bytes()) {
                continue;
            }
            let age = sluice::log::now_ms()
                .saturating_sub(record.timestamp)
                .max(0);
            samples.push(Duration::from_millis(age as u64));
        }
    }
    match producer_thread.join() {
        Ok(result) => result?,
        Err(_) => return Err(CliError::Failed("the latency producer panicked".into())),
    }
    Ok(samples)
}

fn bench<C: Cluster>(
    cluster: &C,
    data: &Path,
    args: &PerfEosArgs,
    names: &Names,
) -> CliResult<String> {
    produce(cluster, &names.input, args)?;
    let alos_mode = ProcessingGuarantee::AtLeastOnce;
    let (alos_seconds, _, alos) = throughput(cluster, data, args, names, alos_mode)?;
    alos.shutdown().map_err(runtime)?;
    let eos_mode = ProcessingGuarantee::ExactlyOnce;
    let (eos_seconds, _, eos) = throughput(cluster, data, args, names, eos_mode)?;
    let mut samples = latency(cluster, args, names)?;
    let metrics = eos.metrics();
    eos.shutdown().map_err(runtime)?;
    let rate = |seconds: f64| args.records as f64 / seconds.max(1e-9);
    let mode = |seconds: f64| {
        format!(
            "{{\"seconds\":{},\"records_per_sec\":{}}}",
            json_number(seconds, 6),
            json_number(rate(seconds), 1)
        )
    };
    let ms = |us: u64| json_number(us as f64 / 1e3, 3);
    Ok(format!(
        "{{\"records\":{},\"keys\":{},\"threads\":{},\"partitions\":{},\"commit_interval_ms\":{},\"alos\":{},\"eos\":{},\"eos_over_alos\":{},{},\"commit_latency_ms\":{{\"p50\":{},\"p99\":{},\"commits\":{}}}}}",
        args.records,
        args.keys,
        args.threads,
        args.partitions,
        args.commit_interval_ms,
        mode(alos_seconds),
        mode(eos_seconds),
        json_number(alos_seconds / eos_seconds.max(1e-9), 3),
        latency_json(&mut samples),
        ms(metrics.commit_latency_p50_us),
        ms(metrics.commit_latency_p99_us),
        metrics.commits,
    ))
}
