//! The model behind `tests/compaction.rs`: the producers of a random history (plain,
//! idempotent, two transactional ids) writing to a compacted topic, what each record became
//! (committed, aborted), what the log must read as after compaction, and the checks.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use sluice_log::batch::{BatchBuilder, Compression, split_batches};
use sluice_log::{
    Broker, Consumer, ConsumerConfig, IsolationLevel, ProducerIdAndEpoch, TopicPartition,
};

pub const TOPIC: &str = "changelog";
pub const DAY_MS: i64 = 86_400_000;
/// Record timestamps lie this far in the past, so a zero delete retention has passed.
pub const AGE_MS: i64 = 10_000;

/// (key index, tombstone?) for each record of a batch.
pub type Records = Vec<(u8, bool)>;

#[derive(Debug, Clone)]
pub enum Op {
    /// A non-transactional batch, from the idempotent producer or from none.
    Put {
        records: Records,
        idempotent: bool,
        compression: Compression,
    },
    /// A keyless record, which compaction never removes.
    Keyless,
    /// A transactional batch of producer `txn`, opening its transaction if none is open.
    TxnSend {
        txn: usize,
        records: Records,
    },
    /// Ends `txn`'s open transaction, if any.
    TxnEnd {
        txn: usize,
        commit: bool,
    },
    Flush,
    Compact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Committed,
    Aborted,
    Open(usize),
}

/// One record as produced.
#[derive(Debug, Clone)]
pub struct Produced {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub fate: Fate,
}

/// A record as read back: offset, key, value.
pub type Row = (i64, Option<Bytes>, Option<Bytes>);

/// The broker-side producers of a history and what they wrote.
pub struct Writer {
    pub broker: Broker,
    pub idempotent: ProducerIdAndEpoch,
    pub idempotent_seq: i32,
    pub txns: Vec<(String, ProducerIdAndEpoch, i32, bool)>, // id, producer, next seq, open
    pub model: Vec<Produced>,
    pub next_value: usize,
}

pub fn tp() -> TopicPartition {
    TopicPartition::new(TOPIC, 0)
}

pub fn key(k: u8) -> Bytes {
    Bytes::from(format!("key-{k}"))
}

impl Writer {
    pub fn new(broker: Broker) -> Self {
        let idempotent = broker.init_producer_id().expect("init producer id");
        let txns = (0..2)
            .map(|i| {
                let id = format!("tx-{i}");
                let producer = broker
                    .init_transactions(&id, Duration::from_secs(600))
                    .expect("init transactions");
                (id, producer, 0, false)
            })
            .collect();
        Self {
            broker,
            idempotent,
            idempotent_seq: 0,
            txns,
            model: Vec::new(),
            next_value: 0,
        }
    }

    pub fn value(&mut self) -> Bytes {
        self.next_value += 1;
        Bytes::from(format!("v{:05}-{}", self.next_value, "x".repeat(24)))
    }

    /// Builds and produces one batch (transactional for `txn`, else idempotent or not);
    /// records it in the model.
    pub fn produce(
        &mut self,
        rows: Vec<(Option<Bytes>, Option<Bytes>)>,
        txn: Option<usize>,
        idempotent: bool,
        compression: Compression,
    ) {
        let timestamp = sluice_log::now_ms() - AGE_MS;
        let n = rows.len() as i32;
        let mut builder = BatchBuilder::new().with_compression(compression);
        let fate = match txn {
            Some(t) => {
                let (id, producer, seq, open) = &mut self.txns[t];
                if !*open {
                    self.broker
                        .add_partitions_to_txn(id, *producer, &[tp()])
                        .expect("add partitions");
                    *open = true;
                }
                builder = builder
                    .with_producer(producer.producer_id, producer.epoch, *seq)
                    .with_transactional(true);
                *seq += n;
                Fate::Open(t)
            }
            None if idempotent => {
                let p = self.idempotent;
                builder = builder.with_producer(p.producer_id, p.epoch, self.idempotent_seq);
                self.idempotent_seq += n;
                Fate::Committed
            }
            None => Fate::Committed,
        };
        for (k, v) in &rows {
            builder.append(timestamp, k.as_deref(), v.as_deref(), &[]);
        }
        let outcome = self
            .broker
            .produce(TOPIC, 0, builder.build().expect("build"))
            .expect("produce");
        for (i, (key, value)) in rows.into_iter().enumerate() {
            self.model.push(Produced {
                offset: outcome.base_offset + i as i64,
                key,
                value,
                fate,
            });
        }
    }

    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Put {
                records,
                idempotent,
                compression,
            } => {
                let rows = self.rows(records);
                self.produce(rows, None, *idempotent, *compression);
            }
            Op::Keyless => {
                let value = self.value();
                self.produce(vec![(None, Some(value))], None, false, Compression::None);
            }
            Op::TxnSend { txn, records } => {
                let rows = self.rows(records);
                self.produce(rows, Some(*txn), false, Compression::None);
            }
            Op::TxnEnd { txn, commit } => self.end(*txn, *commit),
            Op::Flush => {
                self.broker.flush_partition(TOPIC, 0).expect("flush");
            }
            Op::Compact => {
                self.broker
                    .run_compaction()
                    .expect("compaction mid-history");
            }
        }
    }

    pub fn rows(&mut self, records: &Records) -> Vec<(Option<Bytes>, Option<Bytes>)> {
        records
            .iter()
            .map(|&(k, tombstone)| {
                let value = if tombstone { None } else { Some(self.value()) };
                (Some(key(k)), value)
            })
            .collect()
    }

    pub fn end(&mut self, txn: usize, commit: bool) {
        let (id, producer, seq, open) = &mut self.txns[txn];
        if !*open {
            return;
        }
        *producer = self
            .broker
            .end_txn(id, *producer, commit)
            .expect("end transaction");
        *seq = 0;
        *open = false;
        let fate = if commit {
            Fate::Committed
        } else {
            Fate::Aborted
        };
        for record in self.model.iter_mut().filter(|r| r.fate == Fate::Open(txn)) {
            record.fate = fate;
        }
    }

    /// Two big non-transactional batches: the first seals whatever segment holds the end
    /// of the history, the second seals the first's; then a flush moves the recovery point
    /// over all of it. Returns the base offset of the (only) batch in the active segment.
    pub fn seal_history(&mut self, segment_bytes: u64) -> i64 {
        let filler = Bytes::from(vec![b'f'; segment_bytes as usize - 150]);
        for _ in 0..2 {
            let row = (Some(Bytes::from("filler")), Some(filler.clone()));
            self.produce(vec![row], None, false, Compression::None);
        }
        self.broker.flush_partition(TOPIC, 0).expect("flush");
        self.model.last().map_or(0, |r| r.offset)
    }
}

/// What the whole log must read as once everything below `cleaned_end` was compacted.
pub fn expected(model: &[Produced], cleaned_end: i64, tombstones_expired: bool) -> Vec<Row> {
    let committed = || model.iter().filter(|r| r.fate == Fate::Committed);
    let mut newest: HashMap<&Bytes, i64> = HashMap::new();
    for r in committed().filter(|r| r.offset < cleaned_end) {
        if let Some(k) = &r.key {
            newest.insert(k, r.offset);
        }
    }
    committed()
        .filter(|r| {
            r.offset >= cleaned_end
                || match &r.key {
                    None => true,
                    Some(k) => {
                        newest.get(k) == Some(&r.offset)
                            && !(r.value.is_none() && tombstones_expired)
                    }
                }
        })
        .map(|r| (r.offset, r.key.clone(), r.value.clone()))
        .collect()
}

/// Every data record from `from` on, as a Kafka client reads it: control batches dropped and,
/// under read_committed, the records of aborted transactions too.
pub fn read_log(broker: &Broker, from: i64, isolation: IsolationLevel) -> Vec<Row> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let data = broker
            .read_isolated(TOPIC, 0, offset, 8 * 1024, isolation)
            .expect("read");
        if data.records.is_empty() {
            return out;
        }
        for batch in split_batches(data.records).expect("split batches") {
            let h = *batch.header();
            offset = batch.last_offset() + 1;
            let aborted = data.aborted_transactions.iter().any(|a| {
                a.producer_id == h.producer_id
                    && a.first_offset <= h.base_offset
                    && h.base_offset <= a.last_offset
            });
            if h.is_control() || (h.is_transactional() && aborted) {
                continue;
            }
            for r in batch.records().expect("records") {
                let r = r.expect("record");
                if r.offset >= from {
                    out.push((r.offset, r.key, r.value));
                }
            }
        }
    }
}

/// Checks the compacted log against the model (see the module doc).
pub fn check(broker: &Broker, model: &[Produced], cleaned_end: i64, tombstones_expired: bool) {
    let want = expected(model, cleaned_end, tombstones_expired);
    let info = broker.topic_metadata(TOPIC).expect("metadata").partitions[0];
    assert_eq!(
        info.last_stable_offset, info.log_end_offset,
        "no transaction may look open"
    );
    for isolation in [
        IsolationLevel::ReadCommitted,
        IsolationLevel::ReadUncommitted,
    ] {
        let got = read_log(broker, info.log_start_offset, isolation);
        let aborted: Vec<i64> = model
            .iter()
            .filter(|r| r.fate == Fate::Aborted)
            .map(|r| r.offset)
            .collect();
        assert!(
            got.iter().all(|(o, _, _)| !aborted.contains(o)),
            "{isolation:?} returned aborted data"
        );
        assert_eq!(got, want, "{isolation:?} read of the compacted log");
    }
    // The newest committed value of every key, as a read_committed consumer sees it.
    let mut latest: HashMap<Bytes, Option<Bytes>> = HashMap::new();
    for r in model.iter().filter(|r| r.fate == Fate::Committed) {
        if let Some(k) = &r.key {
            latest.insert(k.clone(), r.value.clone());
        }
    }
    if tombstones_expired {
        latest.retain(|_, v| v.is_some());
    }
    let mut consumer = Consumer::new(broker, ConsumerConfig::default());
    consumer.assign(vec![tp()]).expect("assign");
    let mut seen: HashMap<Bytes, Option<Bytes>> = HashMap::new();
    loop {
        let records = consumer.poll(Duration::from_millis(20)).expect("poll");
        if records.is_empty() {
            break;
        }
        for r in records {
            if let Some(k) = r.key {
                seen.insert(k, r.value);
            }
        }
    }
    assert_eq!(seen, latest, "newest committed value per key");
    // A read may start at any offset, in a gap or not: it finds the next survivor.
    for from in info.log_start_offset..=info.log_end_offset {
        let next_kept = want.iter().map(|(o, _, _)| *o).find(|&o| o >= from);
        assert_eq!(
            first_data_offset(broker, from),
            next_kept,
            "first record read from offset {from}"
        );
    }
}

/// The offset of the first data record at or after `from`, reading batch by batch.
pub fn first_data_offset(broker: &Broker, from: i64) -> Option<i64> {
    let mut offset = from;
    loop {
        let data = broker.read(TOPIC, 0, offset, 1).expect("read");
        if data.records.is_empty() {
            return None;
        }
        for batch in split_batches(data.records).expect("split") {
            offset = batch.last_offset() + 1;
            if batch.header().is_control() {
                continue;
            }
            let found = batch
                .records()
                .expect("records")
                .map(|r| r.expect("record").offset)
                .find(|&o| o >= from);
            if found.is_some() {
                return found;
            }
        }
    }
}

/// A new idempotent batch and a new committed transaction are accepted after a reopen:
/// producer state was rebuilt from the compacted log.
pub fn producers_carry_on(broker: &Broker, writer: &Writer) {
    let mut b = BatchBuilder::new().with_producer(
        writer.idempotent.producer_id,
        writer.idempotent.epoch,
        writer.idempotent_seq,
    );
    b.append(sluice_log::now_ms(), Some(b"after"), Some(b"reopen"), &[]);
    broker
        .produce(TOPIC, 0, b.build().expect("build"))
        .expect("the idempotent producer's next sequence is accepted");
    let producer = broker
        .init_transactions("tx-0", Duration::from_secs(600))
        .expect("init transactions again");
    broker
        .add_partitions_to_txn("tx-0", producer, &[tp()])
        .expect("add");
    let mut b = BatchBuilder::new()
        .with_producer(producer.producer_id, producer.epoch, 0)
        .with_transactional(true);
    b.append(sluice_log::now_ms(), Some(b"after"), Some(b"txn"), &[]);
    broker
        .produce(TOPIC, 0, b.build().expect("build"))
        .expect("transactional produce");
    broker.end_txn("tx-0", producer, true).expect("commit");
    let info = broker.topic_metadata(TOPIC).expect("metadata").partitions[0];
    assert_eq!(info.last_stable_offset, info.log_end_offset);
}

pub fn topic_dir(data: &Path) -> std::path::PathBuf {
    data.join(format!("{TOPIC}-0"))
}

/// Removes the `newest` newest producer snapshots: what losing them (they are written
/// without fsync) to a power cut does. Recovery falls back to older ones or the log start.
pub fn remove_snapshots(data: &Path, newest: usize) {
    let mut snapshots: Vec<_> = std::fs::read_dir(topic_dir(data))
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "snapshot"))
        .collect();
    snapshots.sort();
    for path in snapshots.iter().rev().take(newest) {
        std::fs::remove_file(path).expect("remove snapshot");
    }
}
