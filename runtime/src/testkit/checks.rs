//! The harness's checks, each naming the anomaly class it finds: output per key against
//! the model (lost writes, duplicates, wrong or reordered values, which is where an aborted
//! read shows), committed input offsets against the log end (inconsistent offsets), and a
//! store's contents in RocksDB and in its changelog against the model's.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use sluice_log::{
    Broker, Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, OffsetSpec,
    TopicPartition,
};

use super::harness::TopicSpec;
use crate::error::Result;
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

/// Every committed record of `topic`, partition by partition, up to each last stable offset.
pub(super) fn read_committed(
    broker: &Broker,
    topic: &str,
    partitions: i32,
) -> Result<Vec<ConsumerRecord>> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let tp = TopicPartition::new(topic, p);
        let end = broker
            .topic_metadata(topic)?
            .partitions
            .get(p as usize)
            .map_or(0, |m| m.last_stable_offset);
        let mut consumer = Consumer::new(
            broker,
            ConsumerConfig::default()
                .with_isolation(IsolationLevel::ReadCommitted)
                .with_auto_offset_reset(OffsetReset::Earliest),
        );
        consumer.assign(vec![tp.clone()])?;
        while consumer.position(&tp)? < end {
            let batch = consumer.poll(Duration::from_millis(20))?;
            if batch.is_empty() {
                break;
            }
            out.extend(batch);
        }
    }
    Ok(out)
}

fn is_subsequence<T: PartialEq>(short: &[T], long: &[T]) -> bool {
    let mut it = long.iter();
    short.iter().all(|s| it.any(|l| l == s))
}

pub(super) fn check_outputs<K: Ord + Clone + Debug, V: PartialEq + Clone + Debug>(
    broker: &Broker,
    spec: &TopicSpec<K, V>,
    expected: &BTreeMap<K, Vec<V>>,
) -> Result<Vec<Anomaly>> {
    let mut actual: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for r in read_committed(broker, &spec.name, spec.partitions)? {
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

pub(super) fn check_offsets<K, V>(
    broker: &Broker,
    group: &str,
    input: &TopicSpec<K, V>,
) -> Result<Vec<Anomaly>> {
    let partitions: Vec<TopicPartition> = (0..input.partitions)
        .map(|p| TopicPartition::new(input.name.clone(), p))
        .collect();
    let mut anomalies = Vec::new();
    for (tp, committed) in broker.offset_fetch(group, &partitions, false)? {
        let end = broker
            .list_offsets(&tp.topic, tp.partition, OffsetSpec::Latest)?
            .map_or(0, |l| l.offset);
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

pub(super) fn check_store<
    K: Ord + Clone + Debug + 'static,
    V: PartialEq + Clone + Debug + 'static,
>(
    broker: &Broker,
    state_dir: &Path,
    store: &str,
    spec: &TopicSpec<K, V>,
    expected: &BTreeMap<K, V>,
) -> Result<Vec<Anomaly>> {
    let mut anomalies = Vec::new();
    let db = StateDb::open(&state_dir.join("rocksdb"))?;
    let mut local = BTreeMap::new();
    for p in 0..spec.partitions {
        let kv = db.kv_store(
            &StoreName::new(store, p),
            spec.keys.clone(),
            spec.values.clone(),
        )?;
        local.extend(kv.all(&WriteOverlay::default())?);
    }
    let mut logged = BTreeMap::new();
    for r in read_committed(broker, &spec.name, spec.partitions)? {
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
