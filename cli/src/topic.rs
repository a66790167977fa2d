//! `sluice topic create|list|describe|alter|delete`: topic administration, as Kafka's
//! `kafka-topics.sh`.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use sluice::log::topic::CleanupPolicy;
use sluice::log::{Broker, FsyncPolicy, TopicConfig, TopicMetadata, validate_topic_name};

use super::error::{CliError, CliResult};
use super::output::{print_line, stdout, table, write_err};
use super::{Open, with_broker};

/// The `topic` subcommands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List the topics, one name per line, sorted.
    List {
        /// Also list the broker's internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        include_internal: bool,
    },
    /// Show a topic's settings and, per partition, its offsets and size on disk.
    #[command(
        after_help = "Columns: PARTITION, LOG-START (first offset still in the log), LOG-END (next \
offset to be written), HIGH-WATERMARK (offsets below it are readable), LAST-STABLE (the last \
stable offset: the first offset of the oldest open transaction, or the high watermark when none \
is open; read_committed consumers read up to it), DURABLE (offsets below it are fsynced), \
SIZE-BYTES (all segments), SEGMENTS. Offsets count transaction markers too.

With --bootstrap-server, LOG-END, DURABLE, SIZE-BYTES and SEGMENTS print `-` (a Kafka client \
sees only the high watermark, not the leader's log end or its files), as do Fsync and the \
configs the cluster does not report (Fsync is `sluice broker`'s topic config sluice.fsync)."
    )]
    Describe {
        /// The topic.
        name: String,
    },
    /// Add partitions to a topic. Partitions can only grow; existing records stay where they are.
    Alter {
        /// The topic.
        name: String,
        /// The new total number of partitions (more than it has now).
        #[arg(long, value_name = "N")]
        partitions: i32,
    },
    /// Delete a topic and all its records.
    Delete {
        /// The topic.
        name: String,
    },
}

/// Arguments of `topic create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The topic: 1 to 249 characters of ASCII letters, digits, '.', '_' and '-' (not `.` or `..`).
    pub name: String,
    /// Number of partitions; can be raised later with `topic alter`, never lowered.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub partitions: i32,
    /// What happens to old records (cleanup.policy): `delete` removes whole old segments by
    /// age and size (--retention-ms, --retention-bytes); `compact` keeps the newest record of
    /// every key instead, for changelogs and tables (tombstones, records with a null value,
    /// are dropped a day after they are written), and ignores the retention flags. Default:
    /// delete (with --bootstrap-server: the cluster's default).
    #[arg(long, value_name = "POLICY")]
    pub cleanup: Option<String>,
    /// Delete sealed segments whose newest record is older than this (retention.ms); -1 keeps
    /// records forever. Default: 7 days.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub retention_ms: Option<i64>,
    /// Delete the oldest sealed segments while a partition is larger than this
    /// (retention.bytes); -1 for no limit. Default: no limit.
    #[arg(long, value_name = "B", allow_negative_numbers = true)]
    pub retention_bytes: Option<i64>,
    /// Roll to a new segment file at this size (segment.bytes), 1024 to 4294967295. Default: 1 GiB.
    #[arg(long, value_name = "B")]
    pub segment_bytes: Option<u64>,
    /// When appended data is fsynced: `always` (before each acknowledgement), `commit` (a
    /// transaction's partitions before its commit, and a non-transactional write before its
    /// acks=all acknowledgement), `interval:MS` (in the background every MS ms) or `never`
    /// (left to the OS). Every policy survives a process crash; only fsynced data survives
    /// power loss. Default: commit. With --bootstrap-server it is sent as the topic config
    /// `sluice.fsync`, which only `sluice broker` knows (Apache Kafka refuses it).
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<String>,
}

/// Runs a `topic` subcommand.
pub fn run(data: &Path, cmd: TopicCommand) -> CliResult {
    match cmd {
        TopicCommand::Create(args) => {
            let config = config_from(&args)?;
            validate_topic_name(&args.name)?;
            with_broker(data, Open::CreateIfMissing, |broker| {
                broker.create_topic(&args.name, config.clone())?;
                print_line(&format!(
                    "Created topic {} with {} partition{}.",
                    args.name,
                    config.partitions,
                    plural(config.partitions)
                ))
            })
        }
        TopicCommand::List { include_internal } => {
            if !data.exists() {
                return Ok(());
            }
            with_broker(data, Open::MustExist, |broker| {
                let mut out = stdout();
                for topic in broker
                    .metadata()
                    .into_iter()
                    .filter(|t| include_internal || !t.internal)
                {
                    writeln!(out, "{}", topic.name).map_err(write_err)?;
                }
                out.flush().map_err(write_err)
            })
        }
        TopicCommand::Describe { name } => {
            validate_topic_name(&name)?;
            with_broker(data, Open::MustExist, |broker| {
                let text = describe(&broker.topic_metadata(&name)?);
                let mut out = stdout();
                out.write_all(text.as_bytes()).map_err(write_err)?;
                out.flush().map_err(write_err)
            })
        }
        TopicCommand::Alter { name, partitions } => {
            validate_topic_name(&name)?;
            with_broker(data, Open::MustExist, |broker| {
                alter(broker, &name, partitions)
            })
        }
        TopicCommand::Delete { name } => {
            validate_topic_name(&name)?;
            with_broker(data, Open::MustExist, |broker| {
                broker.delete_topic(&name)?;
                print_line(&format!("Deleted topic {name}."))
            })
        }
    }
}

fn alter(broker: &Broker, name: &str, partitions: i32) -> CliResult {
    let before = broker.partition_count(name)?;
    broker.create_partitions(name, partitions)?;
    print_line(&format!(
        "Topic {name} now has {partitions} partitions (was {before})."
    ))
}

pub(crate) fn plural(n: i32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Builds the topic config from the flags; the log validates the ranges.
fn config_from(args: &CreateArgs) -> CliResult<TopicConfig> {
    let fsync: FsyncPolicy = args.fsync.as_deref().unwrap_or("commit").parse()?;
    let cleanup: CleanupPolicy = args.cleanup.as_deref().unwrap_or("delete").parse()?;
    let mut config = TopicConfig::default()
        .with_partitions(args.partitions)
        .with_cleanup(cleanup)
        .with_fsync(fsync);
    if let Some(ms) = args.retention_ms {
        config = config.with_retention_ms((ms != -1).then_some(ms));
    }
    if let Some(bytes) = args.retention_bytes {
        let limit = match bytes {
            -1 => None,
            b => Some(u64::try_from(b).map_err(|_| {
                CliError::Usage(format!(
                    "invalid --retention-bytes {b}: must be -1 (no limit) or a size in bytes"
                ))
            })?),
        };
        config = config.with_retention_bytes(limit);
    }
    if let Some(bytes) = args.segment_bytes {
        config = config.with_segment_bytes(bytes);
    }
    config.validate()?;
    Ok(config)
}

/// The `topic describe` text: two lines of settings, then a table of partitions.
fn describe(topic: &TopicMetadata) -> String {
    let c = &topic.config;
    let retention_ms = c
        .retention_ms
        .map_or("forever".to_string(), |ms| ms.to_string());
    let retention_bytes = c
        .retention_bytes
        .map_or("unlimited".to_string(), |b| b.to_string());
    let policy = match c.cleanup {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    };
    let view = TopicView {
        name: topic.name.clone(),
        fsync: c.fsync.to_string(),
        cleanup: cleanup_settings(
            policy,
            &retention_ms,
            &retention_bytes,
            &c.delete_retention_ms.to_string(),
        ),
        segment_bytes: c.segment_bytes.to_string(),
        segment_ms: c.segment_ms.to_string(),
        index_interval_bytes: c.index_interval_bytes.to_string(),
        max_message_bytes: c.max_message_bytes.to_string(),
        rows: topic
            .partitions
            .iter()
            .map(|p| {
                [
                    p.partition.to_string(),
                    p.log_start_offset.to_string(),
                    p.log_end_offset.to_string(),
                    p.high_watermark.to_string(),
                    p.last_stable_offset.to_string(),
                    p.durable_offset.to_string(),
                    p.size_bytes.to_string(),
                    p.segments.to_string(),
                ]
            })
            .collect(),
    };
    describe_view(&view)
}

/// What `topic describe` prints, as text cells: from the embedded log, or from a Kafka
/// cluster (which leaves some cells `-`).
#[derive(Debug)]
pub(crate) struct TopicView {
    pub name: String,
    pub fsync: String,
    /// The cleanup settings, from [`cleanup_settings`].
    pub cleanup: String,
    pub segment_bytes: String,
    pub segment_ms: String,
    pub index_interval_bytes: String,
    pub max_message_bytes: String,
    /// Per partition: PARTITION, LOG-START, LOG-END, HIGH-WATERMARK, LAST-STABLE, DURABLE,
    /// SIZE-BYTES, SEGMENTS.
    pub rows: Vec<[String; 8]>,
}

/// `cleanup.policy=compact delete.retention.ms=..` for a compacted topic, otherwise the
/// policy with its retention settings.
pub(crate) fn cleanup_settings(
    policy: &str,
    retention_ms: &str,
    retention_bytes: &str,
    delete_retention_ms: &str,
) -> String {
    if policy == "compact" {
        format!("cleanup.policy=compact delete.retention.ms={delete_retention_ms}")
    } else {
        format!(
            "cleanup.policy={policy} retention.ms={retention_ms} retention.bytes={retention_bytes}"
        )
    }
}

/// The `topic describe` text of `view`.
pub(crate) fn describe_view(view: &TopicView) -> String {
    let mut text = format!(
        "Topic: {}  Partitions: {}  Fsync: {}\n\
         Config: {} \
         segment.bytes={} segment.ms={} index.interval.bytes={} max.message.bytes={}\n",
        view.name,
        view.rows.len(),
        view.fsync,
        view.cleanup,
        view.segment_bytes,
        view.segment_ms,
        view.index_interval_bytes,
        view.max_message_bytes,
    );
    let header = [
        "PARTITION",
        "LOG-START",
        "LOG-END",
        "HIGH-WATERMARK",
        "LAST-STABLE",
        "DURABLE",
        "SIZE-BYTES",
        "SEGMENTS",
    ];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    rows.extend(view.rows.iter().map(|row| row.to_vec()));
    text.push_str(&table(&rows, 0));
    text
}
