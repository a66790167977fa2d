//! The protocol fuzzer: `cargo run --release -p sluice-server --example fuzz_frames --
//! [ITERATIONS] [SEED]`. Mutates the frames captured from real clients in
//! `server/fuzz/seeds/` and feeds them to the server's decoder and dispatcher over a real
//! broker. Prints one JSON line (executions, outcomes, panics, max RSS) and exits non-zero on
//! any panic, keeping the frame that caused it in `target/fuzz-crashes/`.

#[path = "../fuzz/driver.rs"]
mod driver;
#[path = "../fuzz/mutate.rs"]
mod mutate;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0x5eed);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = driver::run(
        iterations,
        seed,
        &root.join("fuzz/seeds"),
        &root.join("../target/fuzz-crashes"),
    );
    println!(
        "{{\"executions\":{},\"responses\":{},\"closed\":{},\"timed_out\":{},\"panics\":{},\"max_rss_kib\":{},\"seconds\":{:.1},\"execs_per_sec\":{:.0}}}",
        report.executions,
        report.responses,
        report.closed,
        report.timed_out,
        report.panics,
        report.max_rss_kib,
        report.seconds,
        report.executions as f64 / report.seconds.max(1e-9)
    );
    if !report.encode_errors.is_empty() {
        eprintln!("responses that did not encode: {:?}", report.encode_errors);
        return ExitCode::FAILURE;
    }
    if report.panics > 0 {
        eprintln!("crash frames: {:?}", report.crash_frames);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
