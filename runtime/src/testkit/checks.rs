//! The harness's checks, each naming the anomaly class it finds: output per key against
//! the model (lost writes, duplicates, wrong or reordered values, which is where an aborted
//! read shows), committed input offsets against the log end (inconsistent offsets), and a
//! store's contents in RocksDB and in its changelog against the model's.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_log::cluster::{Cluster, ClusterConsumer, ConsumerSpec, OffsetAt};
use sluice_log::{ConsumerRecord, TopicPartition};

use super::harness::TopicSpec;
use crate::error::{Error, Result};
use crate::state::{StateDb, StoreName, WriteOverlay};

/// Something the run did that exactly-once forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// A key's output lacks values the model has (in order otherwise).
    LostWrite {
        /// The key.
        key: String,
        /// Model output.
        expected: String,
        /// Actual output.
        actual: String,
    },
    /// A key's output repeats values (in order otherwise).
    Duplicate {
        /// The key.
        key: String,
        /// Model output.
        expected: String,
        /// Actual output.
        actual: String,
    },
    /// A key's output differs from the model otherwise: wrong values, order, or output
    /// of aborted work.
    WrongOutput {
        /// The key.
        key: String,
        /// Model output.
        expected: String,
        /// Actual output.
        actual: String,
    },
    /// Committed input offsets that are not the end of the input.
    InconsistentOffsets {
        /// The input partition.
        partition: i32,
        /// The group's committed offset.
        committed: Option<i64>,
        /// The partition's end.
        end: i64,
    },
    /// A store's final contents differ from the model's.
    StoreMismatch {
        /// Where: `RocksDB` or `changelog`.
        place: &'static str,
        /// Model contents.
        expected: String,
        /// Actual contents.
        actual: String,
    },
    /// The harness itself could not run the scenario (e.g. the app failed).
    HarnessError(String),
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Anomaly::LostWrite {
                key,
                expected,
                actual,
            } => write!(
                f,
                "lost write for key {key}: expected {expected}, got {actual}"
            ),
            Anomaly::Duplicate {
                key,
                expected,
                actual,
            } => write!(
                f,
                "duplicate for key {key}: expected {expected}, got {actual}"
            ),
            Anomaly::WrongOutput {
                key,
                expected,
                actual,
            } => write!(
                f,
                "wrong output for key {key}: expected {expected}, got {actual}"
            ),
            Anomaly::InconsistentOffsets {
                partition,
                committed,
                end,
            } => write!(
                f,
                "inconsistent offsets: partition {partition} committed {committed:?}, end {end}"
            ),
            Anomaly::StoreMismatch {
                place,
                expected,
                actual,
            } => write!(
                f,
                "store mismatch in {place}: expected {expected}, got {actual}"
            ),
            Anomaly::HarnessError(e) => write!(f, "harness error: {e}"),
        }
    }
}

/// Every committed record of `topic`, each partition read_committed from its log start to
/// its high watermark, in offset order. An open transaction holds the reader back: it waits
/// up to `wait` for the transaction to end (the cluster aborts one a crashed instance left
/// once its timeout passes).
pub(super) fn read_committed<C: Cluster>(
    cluster: &C,
    topic: &str,
    partitions: i32,
    wait: Duration,
) -> Result<Vec<ConsumerRecord>> {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let tp = TopicPartition::new(topic, p);
        let start = cluster
            .list_offset(&tp, OffsetAt::Earliest)
            .map_err(Error::cluster)?;
        let end = cluster
            .list_offset(&tp, OffsetAt::Latest)
            .map_err(Error::cluster)?;
        starts.push((tp.clone(), start));
        ends.push((tp, end));
    }
    let mut consumer = cluster
        .consumer(&ConsumerSpec::read_committed("sluice-harness-reader"))
        .map_err(Error::cluster)?;
    consumer.assign(&starts).map_err(Error::cluster)?;
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    for (tp, end) in &ends {
        while consumer.position(tp).map_err(Error::cluster)? < *end {
            out.extend(
                consumer
                    .poll(Duration::from_millis(20))
                    .map_err(Error::cluster)?,
            );
            if Instant::now() > deadline {
                return Err(Error::IllegalState(format!(
                    "{topic}-{} does not read to its end {end} within {wait:?}: a transaction stays open",
                    tp.partition
                )));
            }
        }
    }
    Ok(out)
}

fn is_subsequence<T: PartialEq>(short: &[T], long: &[T]) -> bool {
    let mut it = long.iter();
    short.iter().all(|s| it.any(|l| l == s))
}

pub(super) fn check_outputs<C: Cluster, K: Ord + Clone + Debug, V: PartialEq + Clone + Debug>(
    cluster: &C,
    topic: &str,
    spec: &TopicSpec<K, V>,
    expected: &BTreeMap<K, Vec<V>>,
    wait: Duration,
) -> Result<Vec<Anomaly>> {
    let mut actual: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for r in read_committed(cluster, topic, spec.partitions, wait)? {
        let key = spec
            .keys
            .deserialize(r.key.as_deref().unwrap_or_default())?;
        let value = spec.values.deserialize_nullable(r.value.as_deref())?;
        actual.entry(key).or_default().push(value);
    }
    let mut anomalies = Vec::new();
    let empty = Vec::new();
    let keys: std::collections::BTreeSet<&K> = expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let want = expected.get(key).unwrap_or(&empty);
        let got = actual.get(key).unwrap_or(&empty);
        if want == got {
            continue;
        }
        let (key, expected, actual) = (format!("{key:?}"), format!("{want:?}"), format!("{got:?}"));
        anomalies.push(if got.len() < want.len() && is_subsequence(got, want) {
            Anomaly::LostWrite {
                key,
                expected,
                actual,
            }
        } else if got.len() > want.len() && is_subsequence(want, got) {
            Anomaly::Duplicate {
                key,
                expected,
                actual,
            }
        } else {
            Anomaly::WrongOutput {
                key,
                expected,
                actual,
            }
        });
    }
    Ok(anomalies)
}

pub(super) fn check_offsets<C: Cluster, K, V>(
    cluster: &C,
    group: &str,
    topic: &str,
    input: &TopicSpec<K, V>,
) -> Result<Vec<Anomaly>> {
    let partitions: Vec<TopicPartition> = (0..input.partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let mut anomalies = Vec::new();
    let committed_offsets = cluster
        .committed_offsets(group, &partitions)
        .map_err(Error::cluster)?;
    for (tp, committed) in committed_offsets {
        let end = cluster
            .list_offset(&tp, OffsetAt::Latest)
            .map_err(Error::cluster)?;
        if committed.unwrap_or(0) != end {
            anomalies.push(Anomaly::InconsistentOffsets {
                partition: tp.partition,
                committed,
                end,
            });
        }
    }
    Ok(anomalies)
}

/// A store's contents, in the instance's RocksDB at `state_dir` and in its changelog
/// (`spec.name` is the store; `changelog` its topic), against the model's.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_store<
    C: Cluster,
    K: Ord + Clone + Debug + 'static,
    V: PartialEq + Clone + Debug + 'static,
>(
    cluster: &C,
    state_dir: &Path,
    changelog: &str,
    spec: &TopicSpec<K, V>,
    expected: &BTreeMap<K, V>,
    wait: Duration,
) -> Result<Vec<Anomaly>> {
    let store = spec.name.as_str();
    let mut anomalies = Vec::new();
    let db = StateDb::open(&state_dir.join("rocksdb"))?;
    let mut local = BTreeMap::new();
    for p in 0..spec.partitions {
        let kv = db.kv_store(
            &StoreName::new(store, p),
            spec.keys.clone(),
            spec.values.clone(),
        )?;
        let nothing_written = WriteOverlay::default();
        for entry in kv.all(&nothing_written)? {
            let (key, value) = entry?;
            local.insert(key, value);
        }
    }
    let mut logged = BTreeMap::new();
    for r in read_committed(cluster, changelog, spec.partitions, wait)? {
        let key = spec
            .keys
            .deserialize(r.key.as_deref().unwrap_or_default())?;
        match r.value.as_deref() {
            Some(v) => {
                logged.insert(key, spec.values.deserialize(v)?);
            }
            None => {
                logged.remove(&key);
            }
        }
    }
    for (place, actual) in [("RocksDB", local), ("changelog", logged)] {
        if &actual != expected {
            anomalies.push(Anomaly::StoreMismatch {
                place,
                expected: format!("{expected:?}"),
                actual: format!("{actual:?}"),
            });
        }
    }
    Ok(anomalies)
}
