//! `sluice broker`: serves the data directory's log over Kafka's wire protocol until SIGTERM
//! or SIGINT, then shuts down cleanly (stop accepting, finish requests in flight, flush and
//! close the log). The directory stays locked while it runs: other `sluice` commands on it
//! are refused.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Args;
use sluice::log::{Broker, BrokerConfig, FsyncPolicy, TopicConfig};
use sluice::server::{Server, ServerConfig};

use super::error::{CliError, CliResult};

/// `sluice broker` flags, named after the Kafka broker settings they mirror.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Address to listen on. Loopback by default: pass 0.0.0.0:9092 to serve the network.
    /// Port 0 picks a free port (printed on the first line of stdout).
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub listen: SocketAddr,

    /// The address clients are told to connect to (advertised.listeners), when it differs
    /// from --listen (behind NAT, in a container).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_listener: Option<String>,

    /// Create a topic when a client asks for its metadata (auto.create.topics.enable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub auto_create_topics: bool,

    /// Partitions of auto-created topics and of CreateTopics asking for the default
    /// (num.partitions).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub num_partitions: i32,

    /// fsync policy of new topics unless their config sets sluice.fsync: always, commit
    /// (before acks=all produces and transaction commits are acknowledged), never, or
    /// interval:MS.
    #[arg(long, default_value = "commit", value_name = "POLICY")]
    pub default_fsync: FsyncPolicy,

    /// Largest record batch accepted, in bytes (message.max.bytes).
    #[arg(long, default_value_t = (1 << 20) + 12, value_name = "BYTES")]
    pub message_max_bytes: usize,

    /// Most bytes one Fetch response carries, in bytes (fetch.max.bytes): a client asking
    /// for more gets this much (the first batch found always goes out whole, as in Kafka).
    #[arg(long, default_value_t = 55 << 20, value_name = "BYTES")]
    pub fetch_max_bytes: usize,

    /// Largest request accepted, in bytes (socket.request.max.bytes).
    #[arg(long, default_value_t = 100 << 20, value_name = "BYTES")]
    pub max_request_bytes: usize,

    /// Close connections idle for this long, in ms (connections.max.idle.ms).
    #[arg(long, default_value_t = 600_000, value_name = "MS")]
    pub connections_max_idle_ms: u64,

    /// Connections accepted from one IP address (max.connections.per.ip).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_connections_per_ip: usize,

    /// How long a joining consumer group waits for more members before its first
    /// rebalance, in ms (group.initial.rebalance.delay.ms).
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub group_initial_rebalance_delay_ms: u64,

    /// Write the first frames of each API and version received to DIR (seeds for the
    /// protocol fuzzer).
    #[arg(long, value_name = "DIR", hide = true)]
    pub capture_frames: Option<std::path::PathBuf>,
}

/// Runs the broker until a signal.
pub fn run(data: &Path, args: &BrokerArgs) -> CliResult {
    super::check_data_dir(data, super::Open::CreateIfMissing)?;
    let mut config = ServerConfig::default()
        .with_auto_create_topics(args.auto_create_topics)
        .with_num_partitions(args.num_partitions)
        .with_message_max_bytes(args.message_max_bytes)
        .with_max_request_bytes(args.max_request_bytes)
        .with_fetch_max_bytes(args.fetch_max_bytes)
        .with_connections_max_idle(Duration::from_millis(args.connections_max_idle_ms))
        .with_max_connections_per_ip(args.max_connections_per_ip)
        .with_topic_defaults(TopicConfig::default().with_fsync(args.default_fsync));
    if let Some(dir) = &args.capture_frames {
        config = config.with_capture_dir(dir);
    }
    if args.num_partitions < 1 {
        return Err(CliError::Usage(format!(
            "--num-partitions {} must be at least 1",
            args.num_partitions
        )));
    }
    if let Some(advertised) = &args.advertised_listener {
        let (host, port) = advertised
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_string(), p)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--advertised-listener {advertised:?} is not HOST:PORT"
                ))
            })?;
        config = config.with_advertised_listener(host, port);
    }
    let broker_config = BrokerConfig::default().with_group_initial_rebalance_delay(
        Duration::from_millis(args.group_initial_rebalance_delay_ms),
    );
    let broker = Broker::open(data, broker_config)?;
    let server = match Server::bind(broker.clone(), args.listen, config) {
        Ok(server) => server,
        Err(e) => {
            let _ = broker.close();
            return Err(CliError::Failed(e.to_string()));
        }
    };
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "sluice broker listening on {} (data {})",
        server.local_addr(),
        data.display()
    )
    .and_then(|()| stdout.flush())
    .map_err(CliError::io("writing to stdout"))?;
    let signal = wait_for_signal();
    tracing::info!(signal = %signal, "shutting down: finishing requests in flight");
    // Parked JoinGroup / SyncGroup calls are answered now, not at the end of the grace.
    broker.close_classic_groups();
    server.shutdown(Duration::from_secs(30));
    broker.close()?;
    tracing::info!("broker closed cleanly");
    Ok(())
}

/// Blocks until SIGTERM or SIGINT; returns its name.
fn wait_for_signal() -> &'static str {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for signals; serving until killed");
            loop {
                std::thread::park();
            }
        }
    };
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    })
}
