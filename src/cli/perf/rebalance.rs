//! `sluice perf rebalance`: what a rebalance costs an exactly-once app. A "latest value per
//! key" app (one key-value store with a changelog) runs as instance A over N keys on P
//! partitions until caught up. Then a second instance B, with an empty state directory, joins:
//! the time until the two share every task and both are `Running`, and the changelog records
//! each restored (B's are the tasks it takes over; A's are replayed for tasks it kept). Both
//! process a second round of N updates; then B leaves cleanly: the time from B's shutdown
//! call (which includes B's own final commit and leave) until A runs every task again, and what A restored for the tasks it got back (B's updates since) and for
//! those it kept. Both instances run in this process on one embedded broker, each with its
//! own state directory, as two machines would.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, value_parser};
use sluice_log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use sluice_runtime::AppConfig;
use sluice_runtime::app::{App, AppHandle, AppState};

use super::Progress;
use super::resume::{forget_group, latest_topology, runtime};
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{json_number, print_line};

const INPUT: &str = "perf-rebalance-in";
const APP: &str = "perf-rebalance";

/// Arguments of `perf rebalance`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"keys\":1000000,\"partitions\":8,
   \"join\":{\"seconds_to_running\":..,\"restored_by_joiner\":..,\"restored_by_stayer\":..,
           \"tasks_kept_by_stayer\":..,\"tasks_opened_by_stayer\":..},
   \"leave\":{\"seconds_to_running\":..,\"restored_by_stayer\":..,
            \"tasks_kept_by_stayer\":..,\"tasks_opened_by_stayer\":..}}
restored_by_stayer counts changelog records replayed by the instance that was there all along: \
for the tasks it kept, and on leave for those it got back. tasks_kept_by_stayer counts the tasks \
it kept open across the generation change (state, position and processors kept); \
tasks_opened_by_stayer those it opened (offsets fetched, stores restored, processors created). The data directory gets topic \
perf-rebalance-in (recreated) and the app's state under <data>/perf-rebalance-state.")]
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

fn app(data: &Path, instance: &str) -> CliResult<App> {
    let config = AppConfig::default()
        .with_num_threads(1)
        .with_max_poll_records(10_000)
        .with_state_dir(data.join("perf-rebalance-state").join(instance));
    App::new(APP, latest_topology(INPUT)?, config).map_err(runtime)
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

fn produce_round(broker: &Broker, args: &PerfRebalanceArgs, fill: u8) -> CliResult {
    let producer = Producer::new(broker, ProducerConfig::default())?;
    let value = vec![fill; args.value_size as usize];
    let mut progress = Progress::new("rebalance: producing input");
    for i in 0..args.keys {
        let key = format!("key-{i:010}");
        producer.send(ProducerRecord::new(INPUT, value.clone()).with_key(key))?;
        progress.tick(i + 1, args.keys);
    }
    producer.flush()?;
    Ok(())
}

/// Runs `perf rebalance`.
pub fn run(data: &Path, args: &PerfRebalanceArgs) -> CliResult {
    let broker = Broker::open(data, BrokerConfig::default())?;
    for topic in [INPUT.to_string(), format!("{APP}-latest-changelog")] {
        if broker.topic_metadata(&topic).is_ok() {
            broker.delete_topic(&topic)?;
        }
    }
    forget_group(&broker, APP)?;
    let state = data.join("perf-rebalance-state");
    if state.exists() {
        std::fs::remove_dir_all(&state).map_err(CliError::io("removing old benchmark state"))?;
    }
    broker.create_topic(
        INPUT,
        TopicConfig::default().with_partitions(args.partitions),
    )?;
    produce_round(&broker, args, b'a')?;
    let tasks = args.partitions as usize;
    let caught_up = || -> CliResult<bool> { Ok(broker.group_caught_up(APP, &[INPUT])?) };

    let a = app(data, "a")?.start(&broker).map_err(runtime)?;
    wait_for(&[&a], || Ok(settled(&[&a], tasks) && caught_up()?))?;
    let a_before_join = a.metrics();

    let joined = Instant::now();
    let b = app(data, "b")?.start(&broker).map_err(runtime)?;
    wait_for(&[&a, &b], || Ok(settled(&[&a, &b], tasks)))?;
    let join_seconds = joined.elapsed().as_secs_f64();
    let join_by_b = b.metrics().records_restored;
    let a_after_join = a.metrics();
    let join_by_a = a_after_join.records_restored - a_before_join.records_restored;
    let join_kept = a_after_join.tasks_retained - a_before_join.tasks_retained;
    let join_reopened = a_after_join.tasks_opened - a_before_join.tasks_opened;

    produce_round(&broker, args, b'b')?;
    wait_for(&[&a, &b], || Ok(settled(&[&a, &b], tasks) && caught_up()?))?;
    let a_before_leave = a.metrics();

    let left = Instant::now();
    b.shutdown().map_err(runtime)?;
    wait_for(&[&a], || Ok(settled(&[&a], tasks)))?;
    let leave_seconds = left.elapsed().as_secs_f64();
    let a_after_leave = a.metrics();
    let leave_by_a = a_after_leave.records_restored - a_before_leave.records_restored;
    let leave_kept = a_after_leave.tasks_retained - a_before_leave.tasks_retained;
    let leave_opened = a_after_leave.tasks_opened - a_before_leave.tasks_opened;
    wait_for(&[&a], caught_up)?;
    a.shutdown().map_err(runtime)?;
    broker.close()?;

    let s = |x: f64| json_number(x, 3);
    print_line(&format!(
        "{{\"keys\":{},\"value_size\":{},\"partitions\":{},\"join\":{{\"seconds_to_running\":{},\"restored_by_joiner\":{},\"restored_by_stayer\":{},\"tasks_kept_by_stayer\":{},\"tasks_opened_by_stayer\":{}}},\"leave\":{{\"seconds_to_running\":{},\"restored_by_stayer\":{},\"tasks_kept_by_stayer\":{},\"tasks_opened_by_stayer\":{}}}}}",
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
