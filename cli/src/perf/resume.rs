//! `sluice perf resume`: how fast an exactly-once app resumes after kill -9 with a large
//! state, and proof that it does not restore it all. A child process (this command with
//! `--child`) runs a "latest value per key" app over N records of B bytes (about N * (B +
//! 14) bytes of RocksDB state, and as much changelog), then keeps processing a trickle of
//! updates; the parent SIGKILLs it mid-stream. The parent then restarts the app on the
//! same broker and state: time to `Running` and to the input's end committed, and the
//! changelog records replayed (only what the last commits had not applied). For
//! comparison, the same restart with the state directory wiped: a full restore.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, value_parser};
use sluice::log::{
    Broker, BrokerConfig, OffsetSpec, Producer, ProducerConfig, ProducerRecord, TopicConfig,
};
use sluice::runtime::AppConfig;
use sluice::runtime::app::{App, AppHandle, AppState};
use sluice::runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice::runtime::serde::{BytesSerde, StringSerde};
use sluice::runtime::topology::{StoreSpec, Topology, TopologyBuilder};

use super::Progress;
use crate::error::{CliError, CliResult};
use crate::output::{json_number, print_line};

const INPUT: &str = "perf-resume-in";
const APP: &str = "perf-resume";

/// Arguments of `perf resume`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one JSON line, e.g.
  {\"keys\":10000000,\"value_size\":100,\"state_bytes\":..,\"changelog_records\":..,
   \"resume\":{\"seconds_to_running\":..,\"seconds_to_caught_up\":..,\"records_restored\":..},
   \"full_restore\":{\"seconds_to_running\":..,\"records_restored\":..}}
The data directory gets topic perf-resume-in (recreated) and the app's state under \
<data>/perf-resume-state.")]
pub struct PerfResumeArgs {
    /// Distinct keys, one record each (the state holds all of them).
    #[arg(long, value_name = "N", default_value_t = 10_000_000, value_parser = value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Bytes per value.
    #[arg(long, value_name = "B", default_value_t = 100, value_parser = value_parser!(u64).range(1..=1_000_000))]
    pub value_size: u64,
    /// Partitions of the input (tasks).
    #[arg(long, value_name = "P", default_value_t = 4, value_parser = value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Run as the child that gets killed (internal).
    #[arg(long, hide = true)]
    pub child: bool,
}

/// Forgets what an earlier run of the benchmark committed for `group` (offsets of a topic
/// since recreated would make the app look caught up before it has read anything).
pub(super) fn forget_group(broker: &Broker, group: &str) -> CliResult {
    for (_, result) in broker.delete_groups(&[group]) {
        match result {
            Ok(()) | Err(sluice::log::Error::GroupIdNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Keeps the latest value of each key.
#[derive(Debug)]
pub(super) struct Latest;

impl Processor<String, Vec<u8>> for Latest {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Vec<u8>>,
        record: Record<String, Vec<u8>>,
    ) -> ProcessResult {
        ctx.kv_store::<String, Vec<u8>>("latest")?
            .put(&record.key, &record.value)?;
        Ok(())
    }
}

/// The "latest value per key" app over `input`: one key-value store, `latest`.
pub(super) fn latest_topology(input: &str) -> CliResult<Topology> {
    let fail = |e: sluice::runtime::topology::TopologyError| CliError::Failed(e.to_string());
    let mut b = TopologyBuilder::new();
    b.add_source::<String, Vec<u8>>("in", &[input], StringSerde, BytesSerde)
        .map_err(fail)?;
    b.add_processor("keep-latest", &["in"], || Latest)
        .map_err(fail)?;
    b.add_state_store(
        StoreSpec::key_value::<String, Vec<u8>>("latest", StringSerde, BytesSerde),
        &["keep-latest"],
    )
    .map_err(fail)?;
    b.build().map_err(fail)
}

pub(super) fn runtime(e: sluice::runtime::Error) -> CliError {
    CliError::Failed(e.to_string())
}

fn app(data: &Path) -> CliResult<App> {
    let config = AppConfig::default()
        .with_num_threads(2)
        .with_max_poll_records(10_000)
        .with_state_dir(data.join("perf-resume-state"));
    App::new(APP, latest_topology(INPUT)?, config).map_err(runtime)
}

fn caught_up(broker: &Broker) -> CliResult<bool> {
    Ok(broker.group_caught_up(APP, &[INPUT])?)
}

fn wait(handle: &AppHandle, mut done: impl FnMut() -> CliResult<bool>) -> CliResult {
    while !done()? {
        if handle.state() == AppState::Error {
            return Err(CliError::Failed(handle.error().unwrap_or_default()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Runs `perf resume`.
pub fn run(data: &Path, args: &PerfResumeArgs) -> CliResult {
    if args.child {
        return child(data, args);
    }
    let line = parent(data, args)?;
    print_line(&line)
}

/// The child: builds the state, says so on stdout, then processes a trickle until killed.
fn child(data: &Path, args: &PerfResumeArgs) -> CliResult {
    let broker = Broker::open(data, BrokerConfig::default())?;
    let handle = app(data)?.start(&broker).map_err(runtime)?;
    wait(&handle, || caught_up(&broker))?;
    println!("caught-up");
    let producer = Producer::new(&broker, ProducerConfig::default())?;
    let value = vec![b'y'; args.value_size as usize];
    for i in 0u64.. {
        let key = format!("key-{:010}", (i * 7919) % args.keys);
        producer.send(ProducerRecord::new(INPUT, value.clone()).with_key(key))?;
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn parent(data: &Path, args: &PerfResumeArgs) -> CliResult<String> {
    let state = data.join("perf-resume-state");
    {
        let broker = Broker::open(data, BrokerConfig::default())?;
        for topic in [INPUT.to_string(), format!("{APP}-latest-changelog")] {
            if broker.topic_metadata(&topic).is_ok() {
                broker.delete_topic(&topic)?;
            }
        }
        forget_group(&broker, APP)?;
        broker.create_topic(
            INPUT,
            TopicConfig::default().with_partitions(args.partitions),
        )?;
        let producer = Producer::new(&broker, ProducerConfig::default())?;
        let value = vec![b'x'; args.value_size as usize];
        let mut progress = Progress::new("resume: producing input");
        for i in 0..args.keys {
            let key = format!("key-{i:010}");
            producer.send(ProducerRecord::new(INPUT, value.clone()).with_key(key))?;
            progress.tick(i + 1, args.keys);
        }
        producer.flush()?;
        broker.close()?;
    }
    if state.exists() {
        std::fs::remove_dir_all(&state).map_err(CliError::io("removing old benchmark state"))?;
    }
    let exe = std::env::current_exe().map_err(CliError::io("finding this executable"))?;
    let mut child = Command::new(exe)
        .arg("--data")
        .arg(data)
        .args(["perf", "resume", "--child"])
        .arg("--keys")
        .arg(args.keys.to_string())
        .arg("--value-size")
        .arg(args.value_size.to_string())
        .arg("--partitions")
        .arg(args.partitions.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(CliError::io("starting the child"))?;
    let built = Instant::now();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CliError::Failed("no child stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line == "caught-up" => {}
        other => {
            let _ = child.kill();
            return Err(CliError::Failed(format!(
                "the child did not build the state: {other:?}"
            )));
        }
    }
    let build_seconds = built.elapsed().as_secs_f64();
    // Let it process updates for a while, then kill -9 it mid-stream.
    std::thread::sleep(Duration::from_millis(700));
    child.kill().map_err(CliError::io("killing the child"))?;
    let _ = child.wait();
    let state_bytes = dir_bytes(&state);

    let broker = Broker::open(data, BrokerConfig::default())?;
    let changelog = format!("{APP}-latest-changelog");
    let changelog_records: i64 = (0..args.partitions)
        .map(|p| {
            broker
                .list_offsets(&changelog, p, OffsetSpec::Latest)
                .map(|l| l.map_or(0, |l| l.offset))
        })
        .sum::<Result<i64, _>>()?;
    let restart = |label: &str| -> CliResult<(f64, f64, u64)> {
        let started = Instant::now();
        let handle = app(data)?.start(&broker).map_err(runtime)?;
        wait(&handle, || Ok(handle.state() == AppState::Running))?;
        let running = started.elapsed().as_secs_f64();
        wait(&handle, || caught_up(&broker))?;
        let caught = started.elapsed().as_secs_f64();
        let restored = handle.metrics().records_restored;
        handle.shutdown().map_err(runtime)?;
        let _ = label;
        Ok((running, caught, restored))
    };
    let (resume_running, resume_caught, resume_restored) = restart("resume")?;
    std::fs::remove_dir_all(&state).map_err(CliError::io("wiping the state"))?;
    let (full_running, _, full_restored) = restart("full restore")?;
    broker.close()?;
    let s = |x: f64| json_number(x, 3);
    Ok(format!(
        "{{\"keys\":{},\"value_size\":{},\"build_seconds\":{},\"state_bytes\":{},\"changelog_offsets\":{},\"resume\":{{\"seconds_to_running\":{},\"seconds_to_caught_up\":{},\"records_restored\":{}}},\"full_restore\":{{\"seconds_to_running\":{},\"records_restored\":{}}}}}",
        args.keys,
        args.value_size,
        s(build_seconds),
        state_bytes,
        changelog_records,
        s(resume_running),
        s(resume_caught),
        resume_restored,
        s(full_running),
        full_restored,
    ))
}
