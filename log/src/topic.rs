//! Topic names, per-topic configuration, the durability policy and the cleanup policy, with
//! their validation and their persisted (JSON) form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not
/// `.` or `..`. Runs before any path is built from the name, so `../etc` never reaches the
/// filesystem.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not allowed")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("it is longer than 249 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidTopicName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A topic and a partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// When appended data is forced to disk with fsync.
///
/// | policy | survives a process crash (kill -9) | survives power loss |
/// |---|---|---|
/// | `always` | every acknowledged write | every acknowledged write |
/// | `commit` | every acknowledged write | committed transactions, and non-transactional writes acknowledged with acks=all |
/// | `interval:MS` | every acknowledged write | writes older than about MS ms |
/// | `never` | every acknowledged write | only what the OS happened to write back; rolled segments are fsynced |
///
/// Every policy hands each batch to the OS (`write`) before it is acknowledged, so a process
/// crash never loses an acknowledged write. Power loss keeps only fsynced bytes; recovery then
/// truncates the log at the first torn batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fsync before each produce is acknowledged.
    Always,
    /// fsync the partitions of a transaction before its commit point, and a
    /// non-transactional produce before it is acknowledged when it asks for acks=all. The
    /// default.
    #[default]
    Commit,
    /// fsync from a background thread every so often.
    Interval(Duration),
    /// Leave write-back to the OS.
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Commit => f.write_str("commit"),
            Self::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            Self::Never => f.write_str("never"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidConfig {
            key: "fsync",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        match s {
            "always" => Ok(Self::Always),
            "commit" => Ok(Self::Commit),
            "never" => Ok(Self::Never),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .ok_or_else(|| bad("expected always, commit, never or interval:MS"))?;
                let ms: u64 = ms
                    .parse()
                    .map_err(|_| bad("interval:MS needs a whole number of milliseconds"))?;
                if ms == 0 {
                    return Err(bad("the interval must be at least 1 ms (or use always)"));
                }
                Ok(Self::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl Serialize for FsyncPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What happens to old data of a topic (Kafka's `cleanup.policy`).
///
/// `delete` removes whole sealed segments by age and size (`retention_ms`,
/// `retention_bytes`); `compact` keeps the newest record of every key instead (changelogs,
/// `__consumer_offsets`), drops tombstones after `delete_retention_ms` and removes the data
/// of aborted transactions. Retention does not apply to compacted topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Delete old segments by time and size. The default.
    #[default]
    Delete,
    /// Keep the newest record per key.
    Compact,
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Delete => f.write_str("delete"),
            Self::Compact => f.write_str("compact"),
        }
    }
}

impl FromStr for CleanupPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "delete" => Ok(Self::Delete),
            "compact" => Ok(Self::Compact),
            _ => Err(Error::InvalidConfig {
                key: "cleanup",
                value: s.to_string(),
                reason: "expected delete or compact".to_string(),
            }),
        }
    }
}

impl Serialize for CleanupPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CleanupPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A topic's settings; Kafka's names in brackets. Build with `Default` and the `with_*`
/// methods.
///
/// ```
/// use sluice_log::topic::{FsyncPolicy, TopicConfig};
/// let config = TopicConfig::default()
///     .with_partitions(3)
///     .with_retention_ms(Some(60_000))
///     .with_fsync(FsyncPolicy::Always);
/// assert_eq!(config.partitions, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicConfig {
    /// Number of partitions; can only grow.
    pub partitions: i32,
    /// Delete old segments or compact the log (`cleanup.policy`). Default delete.
    pub cleanup: CleanupPolicy,
    /// Under `compact`: how long a tombstone (a record with a null value) stays readable
    /// before compaction may drop it, counted from its batch's newest timestamp
    /// (`delete.retention.ms`). Default 1 day.
    pub delete_retention_ms: i64,
    /// Under `delete`: delete sealed segments whose newest record is older than this
    /// (`retention.ms`); `None` keeps them forever. Default 7 days.
    pub retention_ms: Option<i64>,
    /// Under `delete`: delete the oldest sealed segments while a partition is larger than this
    /// (`retention.bytes`); `None` for no limit (the default).
    pub retention_bytes: Option<u64>,
    /// Roll to a new segment at this size (`segment.bytes`). Default 1 GiB.
    pub segment_bytes: u64,
    /// Roll to a new segment after this age (`segment.ms`). Default 7 days.
    pub segment_ms: i64,
    /// Bytes between sparse index entries (`index.interval.bytes`). Default 4096.
    pub index_interval_bytes: u64,
    /// Largest batch accepted (`max.message.bytes`). Default 1 MiB + 12.
    pub max_message_bytes: usize,
    /// When data is fsynced.
    pub fsync: FsyncPolicy,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            partitions: 1,
            cleanup: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            index_interval_bytes: 4096,
            max_message_bytes: (1 << 20) + 12,
            fsync: FsyncPolicy::Commit,
        }
    }
}

impl TopicConfig {
    /// Sets the partition count.
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }
    /// Sets the cleanup policy.
    pub fn with_cleanup(mut self, cleanup: CleanupPolicy) -> Self {
        self.cleanup = cleanup;
        self
    }
    /// Sets how long tombstones survive compaction.
    pub fn with_delete_retention_ms(mut self, ms: i64) -> Self {
        self.delete_retention_ms = ms;
        self
    }
    /// Sets time retention (`None`: forever).
    pub fn with_retention_ms(mut self, retention_ms: Option<i64>) -> Self {
        self.retention_ms = retention_ms;
        self
    }
    /// Sets size retention (`None`: unbounded).
    pub fn with_retention_bytes(mut self, retention_bytes: Option<u64>) -> Self {
        self.retention_bytes = retention_bytes;
        self
    }
    /// Sets the segment size at which the log rolls.
    pub fn with_segment_bytes(mut self, segment_bytes: u64) -> Self {
        self.segment_bytes = segment_bytes;
        self
    }
    /// Sets the segment age at which the log rolls.
    pub fn with_segment_ms(mut self, segment_ms: i64) -> Self {
        self.segment_ms = segment_ms;
        self
    }
    /// Sets the sparse index interval.
    pub fn with_index_interval_bytes(mut self, bytes: u64) -> Self {
        self.index_interval_bytes = bytes;
        self
    }
    /// Sets the largest accepted batch.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }
    /// Sets the durability policy.
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = fsync;
        self
    }

    /// Checks every value's range; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &str| {
            Err(Error::InvalidConfig {
                key,
                value,
                reason: reason.to_string(),
            })
        };
        if self.partitions < 1 {
            return bad(
                "partitions",
                self.partitions.to_string(),
                "must be at least 1",
            );
        }
        if self.delete_retention_ms < 0 {
            return bad(
                "delete_retention_ms",
                self.delete_retention_ms.to_string(),
                "must be at least 0",
            );
        }
        if let Some(ms) = self.retention_ms
            && ms < 1
        {
            return bad(
                "retention_ms",
                ms.to_string(),
                "must be at least 1 (or unset)",
            );
        }
        if self.segment_bytes < 1024 || self.segment_bytes > u64::from(u32::MAX) {
            return bad(
                "segment_bytes",
                self.segment_bytes.to_string(),
                "must be between 1024 and 4294967295",
            );
        }
        if self.segment_ms < 1 {
            return bad(
                "segment_ms",
                self.segment_ms.to_string(),
                "must be at least 1",
            );
        }
        if self.index_interval_bytes < 1 {
            return bad("index_interval_bytes", "0".into(), "must be at least 1");
        }
        if self.max_message_bytes < crate::batch::HEADER_LEN {
            return bad(
                "max_message_bytes",
                self.max_message_bytes.to_string(),
                "must hold at least a batch header (61 bytes)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_round_trips_through_text() {
        for text in ["always", "commit", "never", "interval:250"] {
            let policy: FsyncPolicy = text.parse().unwrap_or(FsyncPolicy::Never);
            assert_eq!(policy.to_string(), text);
        }
        assert!("interval:0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }

    #[test]
    fn cleanup_policy_round_trips_and_old_configs_load() {
        for text in ["delete", "compact"] {
            let policy: CleanupPolicy = text.parse().unwrap_or_default();
            assert_eq!(policy.to_string(), text);
        }
        assert!("compact,delete".parse::<CleanupPolicy>().is_err());
        let config = TopicConfig::default()
            .with_cleanup(CleanupPolicy::Compact)
            .with_delete_retention_ms(0);
        let json = serde_json::to_string(&config).unwrap_or_default();
        assert!(json.contains("\"cleanup\":\"compact\""), "{json}");
        let back: Option<TopicConfig> = serde_json::from_str(&json).ok();
        assert_eq!(back, Some(config));
        // A config written before compaction existed.
        let old: Option<TopicConfig> = serde_json::from_str(r#"{"partitions":2}"#).ok();
        let old = old.unwrap_or_default();
        assert_eq!(
            (old.partitions, old.cleanup, old.delete_retention_ms),
            (2, CleanupPolicy::Delete, DAY_MS)
        );
        assert!(
            TopicConfig::default()
                .with_delete_retention_ms(-1)
                .validate()
                .is_err()
        );
    }
}
