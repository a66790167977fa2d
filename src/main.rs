//! The `sluice` command-line tool: topic administration, a console producer and consumer,
//! and the benchmarks, all on the embedded log of a data directory (docs/architecture.md §5). Run
//! `sluice --help` for the commands.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `sluice consume ... | head`: the reader has all it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let message = e.to_string().replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr at level `warn`, or as `RUST_LOG` says.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
