//! The `sluice` command-line tool (docs/architecture.md §5): topic administration, a console
//! producer and consumer, groups, transactions, `sluice broker` and the benchmarks, on the
//! embedded log of a data directory. Run `sluice --help` for the commands.
//!
//! This file: the top-level parser (`sluice [--data DIR] COMMAND`), opening and closing
//! the data directory's embedded broker, and dispatch to the subcommands in [`topic`],
//! [`produce`], [`consume`], [`group`] and [`perf`]. With `--bootstrap-server` the topic,
//! produce, consume and group commands run against a Kafka cluster instead, in `remote`
//! (the `kafka` feature).

mod broker;
mod consume;
mod error;
mod group;
mod isolation;
mod output;
mod perf;
mod produce;
#[cfg(feature = "kafka")]
mod remote;
mod topic;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, value_parser};
use sluice::log::{Broker, BrokerConfig};
use tracing_subscriber::EnvFilter;

use error::{CliError, CliResult};

const ABOUT: &str = "sluice: exactly-once stream processing on a built-in partitioned log";

const LONG_ABOUT: &str = "\
sluice: exactly-once stream processing on a built-in partitioned log.

This tool works on the embedded log in a data directory, modelled on Kafka's command-line \
tools. Each invocation opens the directory, does its work and closes it cleanly; only one \
process may have a data directory open at a time. `sluice broker` keeps it open and serves it \
to any Kafka client over Kafka's wire protocol.

With --bootstrap-server HOST:PORT the topic, produce, consume and group commands (and `perf \
eos`, `perf rebalance`) work on that Kafka cluster instead, a running `sluice broker` or Apache Kafka, through \
librdkafka; --data is not used then. -X KEY=VALUE (repeatable) and --command-config FILE pass \
librdkafka properties for the connection (security.protocol, sasl.mechanism, ...).";

const EXAMPLES: &str = "\
Examples:
  sluice broker --listen 127.0.0.1:9092
  sluice topic create orders --partitions 3
  printf 'k1:hello\\nk2:world\\n' | sluice produce orders --key-separator : --print-offsets
  sluice consume orders --from-beginning --print-key --print-offset
  sluice consume orders --group billing --from-beginning
  sluice group describe billing
  sluice --bootstrap-server 127.0.0.1:9092 topic create orders --partitions 3
  sluice --bootstrap-server 127.0.0.1:9092 consume orders --group billing --from-beginning
  sluice --bootstrap-server kafka:9093 -X security.protocol=SSL -X ssl.ca.location=ca.pem topic list
  sluice --bootstrap-server kafka:9093 --command-config client.properties group list
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

    /// Work on this Kafka cluster (Apache Kafka, or a running `sluice broker`) instead of the
    /// data directory: `HOST:PORT[,HOST:PORT...]`, as Kafka's tools take it. For the topic,
    /// produce, consume and group commands, and `perf eos` and `perf rebalance`.
    #[arg(
        long,
        global = true,
        env = "SLUICE_BOOTSTRAP_SERVER",
        value_name = "HOST:PORT"
    )]
    pub bootstrap_server: Option<String>,

    /// A librdkafka property for the connection to --bootstrap-server (as kcat's -X), e.g.
    /// `-X security.protocol=SSL`; repeatable, and later ones win over --command-config.
    /// Give it before the command (`sluice -X k=v topic list`).
    // Not global: clap keeps only the occurrences of one level (before or after the
    // subcommand) of a repeated global flag, which would drop properties silently.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub property: Vec<(String, String)>,

    /// A file of librdkafka properties for the connection to --bootstrap-server, one
    /// `key=value` a line (`#` and `!` start comments), as Kafka tools' --command-config.
    #[arg(long, global = true, value_name = "FILE")]
    pub command_config: Option<PathBuf>,

    /// With --bootstrap-server: how long a call to the cluster (connecting, metadata, admin
    /// requests, offsets, joining a group) waits before it fails.
    #[arg(
        long,
        global = true,
        value_name = "MS",
        default_value_t = 30_000,
        value_parser = value_parser!(u64).range(1..)
    )]
    pub request_timeout_ms: u64,

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
    let cluster = ClusterArgs::from_cli(&cli)?;
    let data = cli.data.as_path();
    match (cli.command, cluster) {
        (Command::Perf(cmd), cluster) => perf::run(data, cmd, cluster.as_ref()),
        (Command::Broker(_), Some(_)) => Err(CliError::Usage(
            "`sluice broker` serves the data directory; --bootstrap-server (or SLUICE_BOOTSTRAP_SERVER) does not apply to it".into(),
        )),
        (Command::Broker(args), None) => broker::run(data, &args),
        (command, Some(cluster)) => on_cluster(&cluster, command),
        (Command::Topic(cmd), None) => topic::run(data, cmd),
        (Command::Produce(args), None) => produce::run(data, &args),
        (Command::Consume(args), None) => consume::run(data, &args),
        (Command::Group(cmd), None) => group::run(data, cmd),
    }
}

/// Runs a topic, produce, consume or group command on a Kafka cluster.
#[cfg(feature = "kafka")]
fn on_cluster(cluster: &ClusterArgs, command: Command) -> CliResult {
    remote::run(cluster, command)
}

/// Without the `kafka` feature there is no Kafka client.
#[cfg(not(feature = "kafka"))]
fn on_cluster(_cluster: &ClusterArgs, _command: Command) -> CliResult {
    Err(no_kafka_feature())
}

/// The usage error of `--bootstrap-server` in a build without the `kafka` feature.
#[cfg(not(feature = "kafka"))]
pub(crate) fn no_kafka_feature() -> CliError {
    CliError::Usage(
        "--bootstrap-server needs sluice built with the `kafka` feature (on by default; this build left it out): rebuild with `--features kafka`, or drop --bootstrap-server / SLUICE_BOOTSTRAP_SERVER to use the data directory".into(),
    )
}

/// How to reach a Kafka cluster: `--bootstrap-server`, the librdkafka properties of
/// `--command-config` and `-X` (in that order, later ones winning), and the request timeout.
#[derive(Clone)]
pub struct ClusterArgs {
    /// `HOST:PORT[,HOST:PORT...]`.
    pub bootstrap: String,
    /// librdkafka properties, in the order given.
    pub properties: Vec<(String, String)>,
    /// How long a call to the cluster waits.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for ClusterArgs {
    /// Property values may be secrets (passwords): only their keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.properties.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ClusterArgs")
            .field("bootstrap", &self.bootstrap)
            .field("properties", &keys)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl ClusterArgs {
    /// The cluster the command line names, if any. Properties without --bootstrap-server
    /// are refused: they would be silently ignored.
    fn from_cli(cli: &Cli) -> CliResult<Option<Self>> {
        let Some(bootstrap) = cli.bootstrap_server.as_deref() else {
            if !cli.property.is_empty() || cli.command_config.is_some() {
                return Err(CliError::Usage(
                    "-X and --command-config set properties of the connection to a Kafka cluster: they need --bootstrap-server".into(),
                ));
            }
            return Ok(None);
        };
        let bootstrap = bootstrap.trim();
        if bootstrap.is_empty() {
            return Err(CliError::Usage(
                "--bootstrap-server is empty: give HOST:PORT[,HOST:PORT...]".into(),
            ));
        }
        let mut properties = Vec::new();
        if let Some(path) = &cli.command_config {
            properties.extend(read_properties(path)?);
        }
        properties.extend(cli.property.iter().cloned());
        Ok(Some(Self {
            bootstrap: bootstrap.to_string(),
            properties,
            request_timeout: Duration::from_millis(cli.request_timeout_ms),
        }))
    }
}

/// Parses `-X KEY=VALUE`.
fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Reads a `--command-config` file: `key=value` lines; blank lines and lines starting with
/// `#` or `!` are skipped.
fn read_properties(path: &Path) -> CliResult<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read --command-config {}: {e}",
            path.display()
        ))
    })?;
    let mut properties = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = parse_property(line).map_err(|reason| {
            CliError::Usage(format!(
                "--command-config {} line {}: {reason}",
                path.display(),
                n + 1
            ))
        })?;
        properties.push((key, value.trim().to_string()));
    }
    Ok(properties)
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_parser_is_consistent() {
        // Catches a subcommand flag that clashes with a global one (--bootstrap-server, -X).
        Cli::command().debug_assert();
    }

    #[test]
    fn cluster_flags_parse_anywhere_and_properties_keep_their_order() -> CliResult {
        let cli = Cli::try_parse_from([
            "sluice",
            "-X",
            "security.protocol=SSL",
            "-X",
            "sasl.password=x=y",
            "perf",
            "eos",
            "--records",
            "1",
            "--keys",
            "1",
            "--bootstrap-server",
            "a:1,b:2",
            "--request-timeout-ms",
            "1500",
        ])
        .map_err(|e| CliError::Usage(e.to_string()))?;
        let cluster = ClusterArgs::from_cli(&cli)?
            .ok_or_else(|| CliError::Failed("no cluster parsed".into()))?;
        assert_eq!(cluster.bootstrap, "a:1,b:2");
        assert_eq!(
            cluster.properties,
            vec![
                ("security.protocol".to_string(), "SSL".to_string()),
                ("sasl.password".to_string(), "x=y".to_string()),
            ]
        );
        assert_eq!(cluster.request_timeout, Duration::from_millis(1500));
        assert!(
            !format!("{cluster:?}").contains("x=y"),
            "secrets stay hidden"
        );
        // After the command -X is refused, not dropped.
        assert!(Cli::try_parse_from(["sluice", "topic", "list", "-X", "a=b"]).is_err());
        Ok(())
    }

    #[cfg(not(feature = "kafka"))]
    #[test]
    fn without_the_kafka_feature_bootstrap_server_is_a_usage_error() -> CliResult {
        let cli = Cli::try_parse_from(["sluice", "--bootstrap-server", "a:1", "topic", "list"])
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let error = run(cli).err();
        assert!(
            error
                .as_ref()
                .is_some_and(|e| e.exit_code() == 2 && e.to_string().contains("`kafka` feature")),
            "{error:?}"
        );
        Ok(())
    }

    #[test]
    fn properties_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_property("a.b= c"),
            Ok(("a.b".to_string(), " c".to_string()))
        );
        assert!(parse_property("a.b").is_err());
        assert!(parse_property("=v").is_err());
    }

    #[test]
    fn command_config_files_skip_comments_and_name_bad_lines() -> CliResult {
        let dir = tempfile::tempdir().map_err(CliError::io("creating a temp dir"))?;
        let path = dir.path().join("client.properties");
        std::fs::write(
            &path,
            "# a comment\n! another\n\nsecurity.protocol = SASL_SSL\nsasl.mechanism=PLAIN\n",
        )
        .map_err(CliError::io("writing the file"))?;
        assert_eq!(
            read_properties(&path)?,
            vec![
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("sasl.mechanism".to_string(), "PLAIN".to_string()),
            ]
        );
        std::fs::write(&path, "ok=1\nbroken\n").map_err(CliError::io("writing the file"))?;
        let error = read_properties(&path).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("line 2")),
            "{error:?}"
        );
        Ok(())
    }
}
