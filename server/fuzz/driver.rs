//! The protocol fuzz loop: mutated frames through the server's decoder and dispatcher
//! ([`sluice_server::FrameHandler`]) over a real broker on a temporary directory. It counts
//! panics (anywhere, blocking pool included, through a panic hook), keeps the frames that
//! caused them, and samples the process's RSS. JoinGroup and SyncGroup frames are decoded
//! but not dispatched: they wait for other members by design, and thousands of fuzzed
//! members would only fill the blocking pool; the conformance suites exercise them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_log::{Broker, BrokerConfig, TopicConfig};
use sluice_server::{FrameHandler, FrameOutcome, ServerConfig};

use super::mutate::{Rng, load_seeds, mutate};

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub executions: u64,
    pub responses: u64,
    pub closed: u64,
    pub timed_out: u64,
    /// Responses the server could not encode: a handler set a field its version lacks.
    pub encode_errors: Vec<String>,
    pub panics: usize,
    pub max_rss_kib: u64,
    pub crash_frames: Vec<PathBuf>,
    pub seconds: f64,
}

/// The process's resident set, in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn fresh_handler(dir: &std::path::Path) -> (Broker, FrameHandler) {
    let broker = Broker::open(
        dir,
        BrokerConfig::default().with_group_initial_rebalance_delay(Duration::ZERO),
    )
    .expect("open broker");
    for (name, partitions) in [("fuzz-a", 1), ("fuzz-b", 3), ("orders", 2)] {
        let _ = broker.create_topic(
            name,
            TopicConfig::default()
                .with_partitions(partitions)
                .with_fsync(sluice_log::FsyncPolicy::Never),
        );
    }
    let handler = FrameHandler::new(
        broker.clone(),
        ServerConfig::default()
            .with_auto_create_topics(false)
            .with_worker_threads(1),
    )
    .expect("handler");
    (broker, handler)
}

/// Runs `iterations` mutated frames from the seeds in `seeds_dir`, from generator `seed`.
/// Crash frames are written to `crash_dir`.
pub fn run(
    iterations: u64,
    seed: u64,
    seeds_dir: &std::path::Path,
    crash_dir: &std::path::Path,
) -> Report {
    let seeds = load_seeds(seeds_dir);
    assert!(!seeds.is_empty(), "no seeds in {}", seeds_dir.display());
    let apis: Vec<(i16, i16, i16)> = sluice_server::versions::SUPPORTED
        .iter()
        .map(|&(api, min, max)| (api as i16, min, max))
        .collect();
    let panics = Arc::new(AtomicUsize::new(0));
    let hook_count = Arc::clone(&panics);
    std::panic::set_hook(Box::new(move |info| {
        hook_count.fetch_add(1, Ordering::SeqCst);
        eprintln!("fuzz: panic: {info}");
    }));
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let started = Instant::now();
    let mut dir = tempfile::tempdir().expect("tempdir");
    let (mut broker, mut handler) = fresh_handler(dir.path());
    for i in 0..iterations {
        if i > 0 && i % 250_000 == 0 {
            // A fresh broker now and then keeps the data directory small.
            drop(handler);
            let _ = broker.close();
            dir = tempfile::tempdir().expect("tempdir");
            (broker, handler) = fresh_handler(dir.path());
        }
        let frame = mutate(&mut rng, &seeds, &apis);
        let before = panics.load(Ordering::SeqCst);
        let waits = frame.len() >= 2 && matches!(i16::from_be_bytes([frame[0], frame[1]]), 11 | 14);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if waits {
                match sluice_server::codec::decode_request(Bytes::from(frame.clone())) {
                    Ok(_) => FrameOutcome::NoResponse,
                    Err(e) => FrameOutcome::Closed(e),
                }
            } else {
                handler.handle(Bytes::from(frame.clone()), Duration::from_millis(20))
            }
        }));
        report.executions += 1;
        match outcome {
            Ok(FrameOutcome::Response(_) | FrameOutcome::NoResponse) => report.responses += 1,
            Ok(FrameOutcome::Closed(sluice_server::codec::FrameError::Encode {
                api,
                version,
                reason,
            })) => {
                report.closed += 1;
                if report.encode_errors.len() < 20 {
                    report
                        .encode_errors
                        .push(format!("{api:?} v{version}: {reason}"));
                }
            }
            Ok(FrameOutcome::Closed(_)) => report.closed += 1,
            Ok(FrameOutcome::TimedOut) => report.timed_out += 1,
            Err(_) => {}
        }
        if panics.load(Ordering::SeqCst) > before {
            let _ = std::fs::create_dir_all(crash_dir);
            let path = crash_dir.join(format!("crash-{seed}-{i}.bin"));
            let _ = std::fs::write(&path, &frame);
            report.crash_frames.push(path);
        }
        if i % 10_000 == 0 {
            report.max_rss_kib = report.max_rss_kib.max(rss_kib());
        }
    }
    report.max_rss_kib = report.max_rss_kib.max(rss_kib());
    drop(handler);
    let _ = broker.close();
    let _ = std::panic::take_hook();
    report.panics = panics.load(Ordering::SeqCst);
    report.seconds = started.elapsed().as_secs_f64();
    report
}
