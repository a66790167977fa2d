//! The broker's topic registry: topics with their configs and partitions, persisted as one
//! JSON file per topic under `<data>/meta/topics/`. Creating a topic makes its partition
//! directories first and writes the config last, so the config file is the commit point;
//! deleting removes the config first. On open, partition directories no config accounts for
//! are leftovers of an interrupted create or delete and are removed. New partitions that
//! would pass the process's open-file limit are refused before anything is created
//! (`open_files`).

mod open_files;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::storage::Partition;
use crate::topic::{TopicConfig, validate_topic_name};
use crate::util::{AppendSignal, write_atomically};

/// A topic: its config and its partitions.
#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) name: String,
    pub(crate) config: RwLock<TopicConfig>,
    pub(crate) partitions: RwLock<Vec<Arc<Partition>>>,
}

impl TopicState {
    pub(crate) fn partition(&self, id: i32) -> Result<Arc<Partition>> {
        let partitions = self.partitions.read();
        usize::try_from(id)
            .ok()
            .and_then(|i| partitions.get(i))
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name.clone(),
                partition: id,
                partitions: partitions.len() as i32,
            })
    }
}

/// All topics of one data directory.
#[derive(Debug)]
pub(crate) struct TopicRegistry {
    data_dir: PathBuf,
    meta_dir: PathBuf,
    signal: Arc<AppendSignal>,
    topics: RwLock<HashMap<String, Arc<TopicState>>>,
    /// Serializes create / delete / alter so their file steps do not interleave.
    admin: parking_lot::Mutex<()>,
}

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Whether `dir` is a directory holding nothing but files a partition writes, so that
/// removing it as a leftover can never take anything else with it.
fn holds_only_log_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().all(|entry| {
        let Ok(entry) = entry else { return false };
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str());
        path.is_file()
            && (matches!(
                ext,
                Some("log" | "index" | "timeindex" | "snapshot" | "txnindex" | "tmp" | "cleaned")
            ) || path
                .file_name()
                .is_some_and(|n| n == "recovery-point" || n == "log-start-offset"))
    })
}

/// The directory for a new partition, emptied of anything an interrupted delete left there.
fn fresh_partition_dir(data_dir: &Path, topic: &str, partition: i32) -> Result<PathBuf> {
    let dir = partition_dir(data_dir, topic, partition);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => tracing::warn!(dir = %dir.display(), "removed stale data of a new partition"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("clearing", dir, e)),
    }
    Ok(dir)
}

impl TopicRegistry {
    /// Loads every topic's config and opens (recovers) its partitions.
    pub(crate) fn open(data_dir: &Path, signal: Arc<AppendSignal>) -> Result<Self> {
        let meta_dir = data_dir.join("meta").join("topics");
        std::fs::create_dir_all(&meta_dir).map_err(|e| Error::io("creating", &meta_dir, e))?;
        let mut topics = HashMap::new();
        for entry in std::fs::read_dir(&meta_dir).map_err(|e| Error::io("listing", &meta_dir, e))? {
            let path = entry
                .map_err(|e| Error::io("listing", &meta_dir, e))?
                .path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if validate_topic_name(name).is_err() {
                tracing::warn!(file = %path.display(), "ignoring a config file that names no valid topic");
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
            let config: TopicConfig =
                serde_json::from_str(&text).map_err(|e| Error::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            config.validate().map_err(|e| Error::CorruptMetadata {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let mut partitions = Vec::with_capacity(config.partitions as usize);
            for p in 0..config.partitions {
                let dir = partition_dir(data_dir, name, p);
                partitions.push(Arc::new(Partition::open(
                    &dir,
                    name,
                    p,
                    config.clone(),
                    Arc::clone(&signal),
                )?));
            }
            topics.insert(
                name.to_string(),
                Arc::new(TopicState {
                    name: name.to_string(),
                    config: RwLock::new(config),
                    partitions: RwLock::new(partitions),
                }),
            );
        }
        let registry = Self {
            data_dir: data_dir.to_path_buf(),
            meta_dir,
            signal,
            topics: RwLock::new(topics),
            admin: parking_lot::Mutex::new(()),
        };
        registry.remove_leftover_dirs()?;
        Ok(registry)
    }

    fn remove_leftover_dirs(&self) -> Result<()> {
        let topics = self.topics.read();
        let entries = std::fs::read_dir(&self.data_dir)
            .map_err(|e| Error::io("listing", &self.data_dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((topic, partition)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(partition) = partition.parse::<i32>() else {
                continue;
            };
            let owned = topics
                .get(topic)
                .is_some_and(|t| partition < t.partitions.read().len() as i32);
            if !owned && validate_topic_name(topic).is_ok() && holds_only_log_files(&entry.path()) {
                tracing::warn!(dir = %entry.path().display(), "removing a partition directory no topic owns");
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| Error::io("removing", entry.path(), e))?;
            }
        }
        Ok(())
    }

    fn config_path(&self, topic: &str) -> PathBuf {
        self.meta_dir.join(format!("{topic}.json"))
    }

    fn persist(&self, topic: &str, config: &TopicConfig) -> Result<()> {
        let path = self.config_path(topic);
        let json = serde_json::to_vec_pretty(config).map_err(|e| Error::CorruptMetadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&path, &json).map_err(|e| Error::io("writing", path, e))
    }

    pub(crate) fn get(&self, topic: &str) -> Result<Arc<TopicState>> {
        self.topics
            .read()
            .get(topic)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                topic: topic.to_string(),
            })
    }

    pub(crate) fn all(&self) -> Vec<Arc<TopicState>> {
        let mut all: Vec<_> = self.topics.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub(crate) fn create(&self, topic: &str, config: TopicConfig) -> Result<()> {
        validate_topic_name(topic)?;
        config.validate()?;
        let _admin = self.admin.lock();
        if self.topics.read().contains_key(topic) {
            return Err(Error::TopicExists {
                topic: topic.to_string(),
            });
        }
        open_files::check(topic, config.partitions, config.partitions)?;
        let partitions = self.open_new_partitions(topic, 0..config.partitions, &config)?;
        self.persist(topic, &config)?;
        tracing::info!(topic, partitions = config.partitions, "created topic");
        self.topics.write().insert(
            topic.to_string(),
            Arc::new(TopicState {
                name: topic.to_string(),
                config: RwLock::new(config),
                partitions: RwLock::new(partitions),
            }),
        );
        Ok(())
    }

    /// Creates empty partitions `ids` of `topic` in fresh directories.
    fn open_new_partitions(
        &self,
        topic: &str,
        ids: std::ops::Range<i32>,
        config: &TopicConfig,
    ) -> Result<Vec<Arc<Partition>>> {
        ids.map(|p| {
            let dir = fresh_partition_dir(&self.data_dir, topic, p)?;
            let signal = Arc::clone(&self.signal);
            Ok(Arc::new(Partition::open(
                &dir,
                topic,
                p,
                config.clone(),
                signal,
            )?))
        })
        .collect()
    }

    pub(crate) fn delete(&self, topic: &str) -> Result<()> {
        validate_topic_name(topic)?;
        let _admin = self.admin.lock();
        let state = self.get(topic)?;
        let path = self.config_path(topic);
        std::fs::remove_file(&path).map_err(|e| Error::io("removing", path, e))?;
        self.topics.write().remove(topic);
        for partition in state.partitions.read().iter() {
            partition.delete()?;
        }
        tracing::info!(topic, "deleted topic");
        Ok(())
    }

    pub(crate) fn increase_partitions(&self, topic: &str, requested: i32) -> Result<()> {
        validate_topic_name(topic)?;
        let _admin = self.admin.lock();
        let state = self.get(topic)?;
        let current = state.partitions.read().len() as i32;
        if requested < current {
            return Err(Error::InvalidPartitions {
                topic: topic.to_string(),
                current,
                requested,
                reason: "partitions can only grow",
            });
        }
        if requested == current {
            return Err(Error::InvalidPartitions {
                topic: topic.to_string(),
                current,
                requested,
                reason: "the topic already has that many partitions",
            });
        }
        open_files::check(topic, requested, requested - current)?;
        let config = state.config.read().clone().with_partitions(requested);
        let added = self.open_new_partitions(topic, current..requested, &config)?;
        self.persist(topic, &config)?;
        *state.config.write() = config;
        state.partitions.write().extend(added);
        tracing::info!(
            topic,
            from = current,
            to = requested,
            "increased partitions"
        );
        Ok(())
    }
}
