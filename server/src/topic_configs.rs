//! Topic configs by their Kafka names: applying the ones CreateTopics carries to a
//! [`TopicConfig`], and listing a topic's (or the broker's defaults) for DescribeConfigs.
//!
//! sluice honours `cleanup.policy`, `retention.ms`, `retention.bytes`, `segment.bytes`,
//! `segment.ms`, `index.interval.bytes`, `max.message.bytes`, `delete.retention.ms`, and its
//! own `sluice.fsync` (always | commit | never | interval:MS). Other Kafka topic configs
//! (replication, compression, timestamps and the like) are accepted and ignored, with a log
//! line, as they change nothing on one node; an unknown name is INVALID_CONFIG.

use sluice_log::{CleanupPolicy, Error, FsyncPolicy, TopicConfig};

/// Kafka topic configs that mean nothing on one node without tiered storage; accepted so
/// that tools which always send them keep working.
const IGNORED: &[&str] = &[
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "message.downconversion.enable",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

fn bad(key: &'static str, value: &str, reason: &str) -> Error {
    Error::InvalidConfig {
        key,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn number<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T, Error> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(key, value, "not a number"))
}

/// Applies one `name = value` to `config`. `None` values leave the default.
pub fn apply(config: &mut TopicConfig, name: &str, value: Option<&str>) -> Result<(), Error> {
    let Some(value) = value else {
        return Ok(());
    };
    match name {
        "cleanup.policy" => {
            config.cleanup = match value.trim() {
                "delete" => CleanupPolicy::Delete,
                "compact" => CleanupPolicy::Compact,
                _ => {
                    return Err(bad(
                        "cleanup.policy",
                        value,
                        "sluice supports `delete` or `compact` (not both)",
                    ));
                }
            }
        }
        "retention.ms" => {
            let ms: i64 = number("retention.ms", value)?;
            config.retention_ms = (ms >= 0).then_some(ms);
        }
        "retention.bytes" => {
            let bytes: i64 = number("retention.bytes", value)?;
            config.retention_bytes = u64::try_from(bytes).ok();
        }
        "segment.bytes" => config.segment_bytes = number("segment.bytes", value)?,
        "segment.ms" => config.segment_ms = number("segment.ms", value)?,
        "index.interval.bytes" => {
            config.index_interval_bytes = number("index.interval.bytes", value)?
        }
        "max.message.bytes" => config.max_message_bytes = number("max.message.bytes", value)?,
        "delete.retention.ms" => config.delete_retention_ms = number("delete.retention.ms", value)?,
        "sluice.fsync" => {
            config.fsync = value.parse::<FsyncPolicy>().map_err(|_| {
                bad(
                    "sluice.fsync",
                    value,
                    "always, commit, never or interval:MS",
                )
            })?
        }
        ignored if IGNORED.contains(&ignored) => {
            tracing::info!(
                config = ignored,
                value,
                "topic config accepted and ignored (it has no effect on one node)"
            );
        }
        _ => {
            return Err(Error::InvalidConfig {
                key: "topic config",
                value: name.to_string(),
                reason: "not a topic config Kafka or sluice knows".into(),
            });
        }
    }
    Ok(())
}

/// A topic's configs as `(name, value, is_default)`, sorted by name.
pub fn describe(config: &TopicConfig) -> Vec<(&'static str, String, bool)> {
    let default = TopicConfig::default();
    let ms = |v: Option<i64>| v.map_or("-1".to_string(), |v| v.to_string());
    let bytes = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    vec![
        (
            "cleanup.policy",
            config.cleanup.to_string(),
            config.cleanup == default.cleanup,
        ),
        (
            "delete.retention.ms",
            config.delete_retention_ms.to_string(),
            config.delete_retention_ms == default.delete_retention_ms,
        ),
        (
            "index.interval.bytes",
            config.index_interval_bytes.to_string(),
            config.index_interval_bytes == default.index_interval_bytes,
        ),
        (
            "max.message.bytes",
            config.max_message_bytes.to_string(),
            config.max_message_bytes == default.max_message_bytes,
        ),
        (
            "retention.bytes",
            bytes(config.retention_bytes),
            config.retention_bytes == default.retention_bytes,
        ),
        (
            "retention.ms",
            ms(config.retention_ms),
            config.retention_ms == default.retention_ms,
        ),
        (
            "segment.bytes",
            config.segment_bytes.to_string(),
            config.segment_bytes == default.segment_bytes,
        ),
        (
            "segment.ms",
            config.segment_ms.to_string(),
            config.segment_ms == default.segment_ms,
        ),
        (
            "sluice.fsync",
            config.fsync.to_string(),
            config.fsync == default.fsync,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_apply_and_describe_back() -> Result<(), Error> {
        let mut config = TopicConfig::default();
        apply(&mut config, "cleanup.policy", Some("compact"))?;
        apply(&mut config, "retention.ms", Some("-1"))?;
        apply(&mut config, "segment.bytes", Some("1048576"))?;
        apply(&mut config, "sluice.fsync", Some("never"))?;
        apply(&mut config, "min.insync.replicas", Some("2"))?;
        apply(&mut config, "retention.bytes", None)?;
        assert_eq!(config.cleanup, CleanupPolicy::Compact);
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.segment_bytes, 1 << 20);
        let described = describe(&config);
        assert!(described.contains(&("segment.bytes", "1048576".into(), false)));
        assert!(described.contains(&("retention.ms", "-1".into(), false)));
        assert!(described.contains(&("index.interval.bytes", "4096".into(), true)));
        assert!(apply(&mut config, "no.such.config", Some("1")).is_err());
        assert!(apply(&mut config, "segment.bytes", Some("big")).is_err());
        assert!(apply(&mut config, "cleanup.policy", Some("compact,delete")).is_err());
        Ok(())
    }
}
