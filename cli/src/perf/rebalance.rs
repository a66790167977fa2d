//! `sluice perf rebalance`: what a rebalance costs an exactly-once app. A "latest value per
//! key" app (one key-value store with a changelog) runs as instance A over N keys on P
//! partitions until caught up. Then a second instance B, with an empty state directory, joins:
//! the time until the two share every task and both are `Running`, and the changelog records
//! each restored (B's are the tasks it takes over; A's are replayed for tasks it kept). Both
//! process a second round of N updates; then B leaves cleanly: the time from B's shutdown
//! call (which includes B's own final commit and leave) until A runs every task again, and
//! what A restored for the tasks it got back (B's updates since) and for those it kept. Both
//! instances run in this process, each with its own state directory, as two machines would:
//! on the data directory's embedded broker, or with the global `--bootstrap-server` on a
//! Kafka cluster (Apache Kafka or `sluice broker`) through the `Cluster` seam, with topic
//! and application id suffixed by a run id.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, value_parser};
use sluice::log::cluster::{Cluster, ProducerSpec, TxnProducer};
use sluice::log::{Broker, ProducerRecord};
use sluice::runtime::AppConfig;
use sluice::runtime::app::{App, AppHandle, AppState};

use super::Progress;
use super::eos::{cluster_error, recreate};
use super::resume::{forget_group, latest_topology, runtime};
use crate::error::{CliError, CliResult};
use crate::output::{json_number, print_line};
use crate::{ClusterArgs, Open, with_broker};

const INPUT: &str = "perf-rebalance-in";
const APP: &str = "perf-rebalance";

/// Arguments of `perf rebalance`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"cluster\":\"embedded\",\"keys\":1000000,\"value_size\":100,\"partitions\":8,
   \"join\":{\"seconds_to_running\":..,\"restored_by_joiner\":..,\"restored_by_stayer\":..,
           \"tasks_kept_by_stayer\":..,\"tasks_opened_by_stayer\":..},
   \"leave\":{\"seconds_to_running\":..,\"restored_by_stayer\":..,
            \"tasks_kept_by_stayer\":..,\"tasks_opened_by_stayer\":..}}
restored_by_stayer counts changelog records replayed by the instance that was there all along: \
for the tasks it kept, and on leave for those it got back. tasks_kept_by_stayer counts the tasks \
it kept open across the generation change (state, position and processors kept); \
tasks_opened_by_stayer those it opened (offsets fetched, stores restored, processors created). \
cluster is \"embedded\" (the data directory's log) or \"kafka\" (--bootstrap-server). The data \
directory gets topic perf-rebalance-in (recreated) and the app's state under \
<data>/perf-rebalance-state. With --bootstrap-server the topic, the changelog and the group are \
on that Kafka cluster instead (and left there), named with a suffix unique to the run \
(perf-rebalance-in-<run>, application id perf-rebalance-<run>), and only the state is under <data>. \
On Kafka a member learns of a rebalance at its next heartbeat (every 3 s with the default 10 s \
session timeout), which adds up to 3 s to either seconds_to_running.")]
pub struct PerfRebalanceArgs {
    /// Distinct keys; each round writes every key once.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Bytes per value.
    #[arg(long, value_name = "B", default_value_t = 100, value_parser = value_parser!(u64).range(1..=1_000_000))]
    pub value_size: u64,
    /// Partitions of the input (tasks).
    #[arg(long, value_name = "P", default_value_t = 8, value_parser = value_parser!(i32).range(2..=1024))]
    pub partitions: i32,
}

/// The topic, application id and state directory of one run, and the backend's name.
struct Names {
    input: String,
    app: String,
    state: PathBuf,
    cluster: &'static str,
}

fn app(names: &Names, instance: &str) -> CliResult<App> {
    let config = AppConfig::default()
        .with_num_threads(1)
        .with_max_poll_records(10_000)
        .with_state_dir(names.state.join(instance));
    App::new(&names.app, latest_topology(&names.input)?, config).map_err(runtime)
}

/// Longest wait for one step; past it the benchmark fails instead of hanging.
const STEP_BOUND: Duration = Duration::from_secs(600);

/// Polls `done` until it holds; fails as soon as one of the instances is in Error, or after
/// [`STEP_BOUND`].
fn wait_for(handles: &[&AppHandle], mut done: impl FnMut() -> CliResult<bool>) -> CliResult {
    let started = Instant::now();
    while !done()? {
        if let Some(h) = handles.iter().find(|h| h.state() == AppState::Error) {
            return Err(CliError::Failed(format!(
                "an app instance failed: {}",
                h.error().unwrap_or_else(|| "no reason given".into())
            )));
        }
        if started.elapsed() > STEP_BOUND {
            return Err(CliError::Failed(format!(
                "the rebalance did not settle within {STEP_BOUND:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Whether the instances run, between them, every task exactly once, and each has some.
fn settled(handles: &[&AppHandle], tasks: usize) -> bool {
    let mut all = BTreeSet::new();
    let mut count = 0;
    for h in handles {
        let mine = h.tasks();
        if h.state() != AppState::Running || mine.is_empty() {
            return false;
        }
        count += mine.len();
        all.extend(mine);
    }
    count == tasks && all.len() == tasks
}

/// Whether `handle`'s group has committed every input partition to its end (false while
/// the instance is not `Running`).
fn caught_up(handle: &AppHandle) -> CliResult<bool> {
    handle.caught_up().map_err(runtime)
}

/// Writes every key once, with values of `fill`, through the seam's idempotent producer.
fn produce_round<C: Cluster>(
    cluster: &C,
    names: &Names,
    args: &PerfRebalanceArgs,
    fill: u8,
) -> CliResult {
    let mut producer = cluster
        .producer(&ProducerSpec::idempotent("perf-rebalance-input"))
        .map_err(cluster_error)?;
    let value = vec![fill; args.value_size as usize];
    let mut progress = Progress::new("rebalance: producing input");
    for i in 0..args.keys {
        let key = format!("key-{i:010}");
        let record = ProducerRecord::new(names.input.as_str(), value.clone()).with_key(key);
        producer.send(record).map_err(cluster_error)?;
        progress.tick(i + 1, args.keys);
    }
    producer.flush().map_err(cluster_error)?;
    producer.close().map_err(cluster_error)
}

/// Runs `perf rebalance`: on the data directory's log, or on the Kafka cluster of the
/// global `--bootstrap-server` (Apache Kafka or `sluice broker`).
pub fn run(data: &Path, args: &PerfRebalanceArgs, cluster: Option<&ClusterArgs>) -> CliResult {
    match cluster {
        None => on_embedded(data, args),
        Some(cluster) => on_kafka(data, args, cluster),
    }
}

fn on_embedded(data: &Path, args: &PerfRebalanceArgs) -> CliResult {
    let names = Names {
        input: INPUT.to_string(),
        app: APP.to_string(),
        state: data.join("perf-rebalance-state"),
        cluster: "embedded",
    };
    let line = with_broker(data, Open::CreateIfMissing, |broker| {
        clean_embedded(broker, args)?;
        bench(broker, args, &names)
    })?;
    print_line(&line)
}

/// Removes what an earlier run left on the embedded log: the topics (recreating the input)
/// and the group's committed offsets.
fn clean_embedded(broker: &Broker, args: &PerfRebalanceArgs) -> CliResult {
    let changelog = format!("{APP}-latest-changelog");
    if broker.topic_metadata(&changelog).is_ok() {
        broker.delete_topic(&changelog)?;
    }
    recreate(broker, INPUT, args.partitions)?;
    forget_group(broker, APP)
}

#[cfg(feature = "kafka")]
fn on_kafka(data: &Path, args: &PerfRebalanceArgs, cluster: &ClusterArgs) -> CliResult {
    use sluice::log::cluster::{InternalTopic, InternalTopicKind};
    let cluster = super::super::remote::connect(cluster)?.cluster;
    let run = format!("{:x}", sluice::log::now_ms());
    let names = Names {
        input: format!("{INPUT}-{run}"),
        app: format!("{APP}-{run}"),
        state: data.join("perf-rebalance-state"),
        cluster: "kafka",
    };
    // A plain input topic: delete cleanup, no time retention.
    let spec = InternalTopic {
        partitions: Some(args.partitions),
        kind: InternalTopicKind::Repartition,
    };
    cluster
        .create_internal_topic(&names.input, &spec)
        .map_err(cluster_error)?;
    std::fs::create_dir_all(data).map_err(CliError::io("creating the data directory"))?;
    let line = bench(&cluster, args, &names)?;
    print_line(&line)
}

#[cfg(not(feature = "kafka"))]
fn on_kafka(_data: &Path, _args: &PerfRebalanceArgs, _cluster: &ClusterArgs) -> CliResult {
    Err(super::super::no_kafka_feature())
}

/// The benchmark on a cluster whose input topic exists and is empty; returns the JSON line.
fn bench<C: Cluster>(cluster: &C, args: &PerfRebalanceArgs, names: &Names) -> CliResult<String> {
    if names.state.exists() {
        std::fs::remove_dir_all(&names.state)
            .map_err(CliError::io("removing old benchmark state"))?;
    }
    produce_round(cluster, names, args, b'a')?;
    let tasks = args.partitions as usize;

    let a = app(names, "a")?.start(cluster).map_err(runtime)?;
    wait_for(&[&a], || Ok(settled(&[&a], tasks) && caught_up(&a)?))?;
    let a_before_join = a.metrics();

    let joined = Instant::now();
    let b = app(names, "b")?.start(cluster).map_err(runtime)?;
    wait_for(&[&a, &b], || Ok(settled(&[&a, &b], tasks)))?;
    let join_seconds = joined.elapsed().as_secs_f64();
    let join_by_b = b.metrics().records_restored;
    let a_after_join = a.metrics();
    let join_by_a = a_after_join.records_restored - a_before_join.records_restored;
    let join_kept = a_after_join.tasks_retained - a_before_join.tasks_retained;
    let join_reopened = a_after_join.tasks_opened - a_before_join.tasks_opened;

    produce_round(cluster, names, args, b'b')?;
    wait_for(
        &[&a, &b],
        || Ok(settled(&[&a, &b], tasks) && caught_up(&a)?),
    )?;
    let a_before_leave = a.metrics();

    let left = Instant::now();
    b.shutdown().map_err(runtime)?;
    wait_for(&[&a], || Ok(settled(&[&a], tasks)))?;
    let leave_seconds = left.elapsed().as_secs_f64();
    let a_after_leave = a.metrics();
    let leave_by_a = a_after_leave.records_restored - a_before_leave.records_restored;
    let leave_kept = a_after_leave.tasks_retained - a_before_leave.tasks_retained;
    let leave_opened = a_after_leave.tasks_opened - a_before_leave.tasks_opened;
    wait_for(&[&a], || caught_up(&a))?;
    a.shutdown().map_err(runtime)?;

    let s = |x: f64| json_number(x, 3);
    Ok(format!(
        "{{\"cluster\":\"{}\",\"keys\":{},\"value_size\":{},\"partitions\":{},\"join\":{{\"seconds_to_running\":{},\"restored_by_joiner\":{},\"restored_by_stayer\":{},\"tasks_kept_by_stayer\":{},\"tasks_opened_by_stayer\":{}}},\"leave\":{{\"seconds_to_running\":{},\"restored_by_stayer\":{},\"tasks_kept_by_stayer\":{},\"tasks_opened_by_stayer\":{}}}}}",
        names.cluster,
        args.keys,
        args.value_size,
        args.partitions,
        s(join_seconds),
        join_by_b,
        join_by_a,
        join_kept,
        join_reopened,
        s(leave_seconds),
        leave_by_a,
        leave_kept,
        leave_opened,
    ))
}
