//! `sluice --bootstrap-server HOST:PORT topic create|list|describe|alter|delete`: topic
//! administration on a Kafka cluster, with the embedded command's flags and output.

use std::collections::BTreeMap;
use std::io::Write;

use sluice::kafka::rdkafka::error::RDKafkaErrorCode;
use sluice::kafka::{Created, KafkaClusterError, TopicSpec, is_internal_topic};
use sluice::log::topic::CleanupPolicy;
use sluice::log::{FsyncPolicy, validate_topic_name};

use super::{ClusterArgs, Remote, RemoteError, connect};
use crate::error::{CliError, CliResult};
use crate::output::{print_line, stdout, write_err};
use crate::topic::{CreateArgs, TopicCommand, TopicView, cleanup_settings, describe_view, plural};

/// Runs a `topic` subcommand on the cluster.
pub fn run(args: &ClusterArgs, cmd: TopicCommand) -> CliResult {
    match cmd {
        TopicCommand::Create(create) => {
            validate_topic_name(&create.name)?;
            let spec = spec_from(&create)?;
            let remote = connect(args)?;
            let created = remote
                .cluster
                .create_topic(&create.name, &spec)
                .map_err(|e| fsync_hint(&remote, &create, e))?;
            if created == Created::Existed {
                return Err(RemoteError::TopicExists {
                    topic: create.name,
                    bootstrap: remote.bootstrap,
                }
                .into());
            }
            print_line(&format!(
                "Created topic {} with {} partition{}.",
                create.name,
                spec.partitions,
                plural(spec.partitions)
            ))
        }
        TopicCommand::List { include_internal } => {
            let remote = connect(args)?;
            let topics = remote.cluster.list_topics().map_err(remote.fail())?;
            let mut out = stdout();
            for topic in topics
                .iter()
                .filter(|t| include_internal || !is_internal_topic(t))
            {
                writeln!(out, "{topic}").map_err(write_err)?;
            }
            out.flush().map_err(write_err)
        }
        TopicCommand::Describe { name } => {
            validate_topic_name(&name)?;
            let remote = connect(args)?;
            let text = describe_view(&describe(&remote, &name)?);
            let mut out = stdout();
            out.write_all(text.as_bytes()).map_err(write_err)?;
            out.flush().map_err(write_err)
        }
        TopicCommand::Alter { name, partitions } => {
            validate_topic_name(&name)?;
            let remote = connect(args)?;
            let before = remote.partition_count(&name)?;
            if partitions <= before {
                return Err(sluice::log::Error::InvalidPartitions {
                    topic: name,
                    current: before,
                    requested: partitions,
                    reason: if partitions < before {
                        "partitions can only grow"
                    } else {
                        "the topic already has that many partitions"
                    },
                }
                .into());
            }
            remote
                .cluster
                .create_partitions(&name, partitions)
                .map_err(remote.fail())?;
            print_line(&format!(
                "Topic {name} now has {partitions} partitions (was {before})."
            ))
        }
        TopicCommand::Delete { name } => {
            validate_topic_name(&name)?;
            let remote = connect(args)?;
            // Deleting an unknown topic is refused by the cluster; asking first gives the
            // same message as every other command.
            remote.partition_count(&name)?;
            remote.cluster.delete_topic(&name).map_err(remote.fail())?;
            print_line(&format!("Deleted topic {name}."))
        }
    }
}

/// A refused config when --fsync was given: most likely `sluice.fsync` on a cluster that
/// is not `sluice broker`, so the message says so.
fn fsync_hint(remote: &Remote, create: &CreateArgs, error: KafkaClusterError) -> CliError {
    if create.fsync.is_some() && error.code() == Some(RDKafkaErrorCode::InvalidConfig) {
        return CliError::Usage(format!(
            "{error} (cluster at {}): --fsync is sent as the topic config sluice.fsync, which only `sluice broker` knows",
            remote.bootstrap
        ));
    }
    remote.fail()(error)
}

/// The topic configs of `topic create`'s flags, by their Kafka names. Only flags given are
/// sent, so the cluster's defaults apply to the rest; `--fsync` becomes `sluice.fsync`.
fn spec_from(args: &CreateArgs) -> CliResult<TopicSpec> {
    if args.partitions < 1 {
        return Err(CliError::Usage(format!(
            "invalid --partitions {}: a topic needs at least 1",
            args.partitions
        )));
    }
    let mut spec = TopicSpec::new(args.partitions);
    if let Some(cleanup) = &args.cleanup {
        let policy: CleanupPolicy = cleanup.parse()?;
        let name = match policy {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        };
        spec = spec.with_config("cleanup.policy", name);
    }
    if let Some(ms) = args.retention_ms {
        spec = spec.with_config("retention.ms", ms.to_string());
    }
    if let Some(bytes) = args.retention_bytes {
        if bytes < -1 {
            return Err(CliError::Usage(format!(
                "invalid --retention-bytes {bytes}: must be -1 (no limit) or a size in bytes"
            )));
        }
        spec = spec.with_config("retention.bytes", bytes.to_string());
    }
    if let Some(bytes) = args.segment_bytes {
        spec = spec.with_config("segment.bytes", bytes.to_string());
    }
    if let Some(fsync) = &args.fsync {
        let policy: FsyncPolicy = fsync.parse()?;
        spec = spec.with_config("sluice.fsync", policy.to_string());
    }
    Ok(spec)
}

/// What `topic describe` shows of a topic on the cluster. The configs are the cluster's
/// (the topic's own and the defaults it inherits); LOG-END, DURABLE, SIZE-BYTES and
/// SEGMENTS are not known to a client.
fn describe(remote: &Remote, topic: &str) -> CliResult<TopicView> {
    let count = remote.partition_count(topic)?;
    let configs = remote.cluster.topic_configs(topic).map_err(remote.fail())?;
    let partitions: Vec<i32> = (0..count).collect();
    let stable = remote
        .cluster
        .last_stable_offsets(topic, &partitions)
        .map_err(remote.fail())?;
    let mut rows = Vec::with_capacity(partitions.len());
    for (&partition, stable) in partitions.iter().zip(stable) {
        let offsets = remote.offsets(topic, partition)?;
        rows.push([
            partition.to_string(),
            offsets.earliest.to_string(),
            UNKNOWN.to_string(),
            offsets.latest.to_string(),
            stable.to_string(),
            UNKNOWN.to_string(),
            UNKNOWN.to_string(),
            UNKNOWN.to_string(),
        ]);
    }
    let get = |key: &str| configs.get(key).cloned().unwrap_or_else(|| UNKNOWN.into());
    Ok(TopicView {
        name: topic.to_string(),
        fsync: get("sluice.fsync"),
        cleanup: cleanup_from(&configs),
        segment_bytes: get("segment.bytes"),
        segment_ms: get("segment.ms"),
        index_interval_bytes: get("index.interval.bytes"),
        max_message_bytes: get("max.message.bytes"),
        rows,
    })
}

/// What a client cannot know.
const UNKNOWN: &str = "-";

/// The cleanup settings line from Kafka's configs: a retention of -1 is `forever` and
/// `unlimited`, as the embedded path prints it.
fn cleanup_from(configs: &BTreeMap<String, String>) -> String {
    let get = |key: &str| configs.get(key).map(String::as_str).unwrap_or(UNKNOWN);
    let retention_ms = match get("retention.ms") {
        "-1" => "forever",
        ms => ms,
    };
    let retention_bytes = match get("retention.bytes") {
        "-1" => "unlimited",
        bytes => bytes,
    };
    cleanup_settings(
        get("cleanup.policy"),
        retention_ms,
        retention_bytes,
        get("delete.retention.ms"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_configs_print_as_the_embedded_path_does() {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "delete".to_string());
        configs.insert("retention.ms".to_string(), "-1".to_string());
        configs.insert("retention.bytes".to_string(), "-1".to_string());
        assert_eq!(
            cleanup_from(&configs),
            "cleanup.policy=delete retention.ms=forever retention.bytes=unlimited"
        );
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("delete.retention.ms".to_string(), "86400000".to_string());
        assert_eq!(
            cleanup_from(&configs),
            "cleanup.policy=compact delete.retention.ms=86400000"
        );
        assert_eq!(
            cleanup_from(&BTreeMap::new()),
            "cleanup.policy=- retention.ms=- retention.bytes=-"
        );
    }
}
