//! A short pass of the protocol fuzzer (the long runs are the `fuzz_frames` example): mutated
//! frames of real clients never panic the server. `FUZZ_ITERATIONS` sets the count (default
//! 20,000).

#[path = "../fuzz/driver.rs"]
mod driver;
#[path = "../fuzz/mutate.rs"]
mod mutate;

use std::path::Path;

#[test]
fn mutated_client_frames_never_panic_the_server() {
    let iterations = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crashes = tempfile::tempdir().expect("tempdir");
    let report = driver::run(iterations, 0xc1, &root.join("fuzz/seeds"), crashes.path());
    assert_eq!(report.executions, iterations);
    assert_eq!(
        report.panics, 0,
        "frames that panicked: {:?}",
        report.crash_frames
    );
    // Both kinds of outcome happen: the mutations are neither all rejected nor all accepted.
    assert!(report.responses > 0 && report.closed > 0, "{report:?}");
}
