//! The command line: the top-level parser (`sluice [--data DIR] COMMAND`), opening and closing
//! the data directory's embedded broker, and dispatch to the subcommands in [`topic`],
//! [`produce`], [`consume`], [`group`] and [`perf`].

pub mod broker;
pub mod consume;
pub mod error;
pub mod group;
pub mod isolation;
pub mod output;
pub mod perf;
pub mod produce;
pub mod topic;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use sluice_log::{Broker, BrokerConfig};

use error::{CliError, CliResult};

const ABOUT: &str = "sluice: exactly-once stream processing on a built-in partitioned log";

const LONG_ABOUT: &str = "\
sluice: exactly-once stream processing on a built-in partitioned log.

This tool works on the embedded log in a data directory, modelled on Kafka's command-line \
tools. Each invocation opens the directory, does its work and closes it cleanly; only one \
process may have a data directory open at a time. `sluice broker` keeps it open and serves it \
to any Kafka client over Kafka's wire protocol.";

const EXAMPLES: &str = "\
Examples:
  sluice broker --listen 127.0.0.1:9092
  sluice topic create orders --partitions 3
  printf 'k1:hello\\nk2:world\\n' | sluice produce orders --key-separator : --print-offsets
  sluice consume orders --from-beginning --print-key --print-offset
  sluice consume orders --group billing --from-beginning
  sluice group describe billing
  sluice perf produce --topic bench --records 1000000 --record-size 100
  sluice perf produce --topic bench --records 1000000 --record-size 100 --transactional --txn-records 1000
  sluice perf eos --records 2000000 --keys 10000
  sluice perf resume --keys 10000000
  sluice perf rebalance --keys 1000000 --partitions 8

Logs go to stderr at level warn; set RUST_LOG (e.g. RUST_LOG=info) for more.
User errors (bad names, unknown topics, invalid values) exit with code 2, failures with 1.";

/// The `sluice` command line.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Data directory of the embedded log. It is created by `topic create` and `perf produce`;
    /// an existing non-empty directory without sluice data (no `meta/` inside) is refused.
    #[arg(
        long,
        global = true,
        env = "SLUICE_DATA",
        default_value = "./sluice-data",
        value_name = "DIR"
    )]
    pub data: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Write one record per line of stdin to a topic.
    Produce(produce::ProduceArgs),
    /// Print a topic's records to stdout, one per line (alone or in a consumer group).
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups (members, committed offsets, lag) and reset their
    /// offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Benchmarks: print one JSON line of figures each.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
    /// Serve the data directory's log to Kafka clients over Kafka's wire protocol, until
    /// SIGTERM or SIGINT.
    Broker(broker::BrokerArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> CliResult {
    let data = cli.data.as_path();
    match cli.command {
        Command::Topic(cmd) => topic::run(data, cmd),
        Command::Produce(args) => produce::run(data, &args),
        Command::Consume(args) => consume::run(data, &args),
        Command::Group(cmd) => group::run(data, cmd),
        Command::Perf(cmd) => perf::run(data, cmd),
        Command::Broker(args) => broker::run(data, &args),
    }
}

/// Whether a command may create the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Create the directory when it is missing (commands that create topics).
    CreateIfMissing,
    /// The directory must exist (commands that need a topic anyway).
    MustExist,
}

/// Opens the broker on `dir`, runs `f`, then closes the broker cleanly whatever `f` returned.
/// The first error wins.
pub fn with_broker<T>(
    dir: &Path,
    open: Open,
    f: impl FnOnce(&Broker) -> CliResult<T>,
) -> CliResult<T> {
    check_data_dir(dir, open)?;
    let broker = Broker::open(dir, BrokerConfig::default())?;
    let result = f(&broker);
    let closed = broker.close();
    let value = result?;
    closed?;
    Ok(value)
}

/// Refuses a data directory that is missing (when it must exist), not a directory, or a
/// non-empty directory that holds no sluice data: the broker removes directories that look
/// like stray partitions (`NAME-N`), so pointing it at, say, a home directory would be harmful.
pub(crate) fn check_data_dir(dir: &Path, open: Open) -> CliResult {
    let shown = dir.display();
    if !dir.exists() {
        return match open {
            Open::CreateIfMissing => Ok(()),
            Open::MustExist => Err(CliError::Usage(format!(
                "no sluice data directory at {shown} (create a topic first, or pass --data / set SLUICE_DATA)"
            ))),
        };
    }
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "data directory {shown} exists but is not a directory"
        )));
    }
    if dir.join("meta").is_dir() {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir).map_err(CliError::io("listing the data directory"))?;
    if entries.next().is_some() {
        return Err(CliError::Usage(format!(
            "refusing to use {shown} as a data directory: it is not empty and holds no sluice data (no meta/ inside); pass an empty or new directory with --data"
        )));
    }
    Ok(())
}
