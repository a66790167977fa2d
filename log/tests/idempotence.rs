//! Idempotent producers, as a property: random histories of two producers with new sends,
//! retries of recent and old batches, sequence gaps, reordered in-flight batches, epoch bumps,
//! sends from fenced epochs, and clean and crash restarts of the broker. A model predicts
//! each response; at the end the log must hold each logical batch exactly once, in order.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;
use sluice_log::batch::{BatchHeader, split_batches};
use sluice_log::{Broker, Error, TopicConfig};

#[derive(Debug, Clone)]
enum Event {
    Send { producer: usize, records: usize },
    Retry { producer: usize, back: usize },
    Gap { producer: usize, gap: i32 },
    Reorder { producer: usize },
    BumpEpoch { producer: usize },
    StaleEpoch { producer: usize },
    Restart { clean: bool },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => (0usize..2, 1usize..5).prop_map(|(producer, records)| Event::Send { producer, records }),
        4 => (0usize..2, 0usize..8).prop_map(|(producer, back)| Event::Retry { producer, back }),
        2 => (0usize..2, 1i32..4).prop_map(|(producer, gap)| Event::Gap { producer, gap }),
        2 => (0usize..2).prop_map(|producer| Event::Reorder { producer }),
        1 => (0usize..2).prop_map(|producer| Event::BumpEpoch { producer }),
        2 => (0usize..2).prop_map(|producer| Event::StaleEpoch { producer }),
        1 => any::<bool>().prop_map(|clean| Event::Restart { clean }),
    ]
}

/// A batch the model knows is in the log.
#[derive(Debug, Clone)]
struct Logged {
    epoch: i16,
    records: i32,
    base: i64,
    bytes: Bytes,
}

#[derive(Debug, Default)]
struct ProducerModel {
    pid: i64,
    epoch: i16,
    next_seq: i32,
    /// The epoch of this producer's newest batch in the log: what the broker knows.
    broker_epoch: Option<i16>,
    /// Batches in the log, oldest first.
    logged: Vec<Logged>,
}

struct Harness {
    broker: Broker,
    _dirs: Vec<tempfile::TempDir>,
    dir: PathBuf,
    producers: Vec<ProducerModel>,
    log_end: i64,
    /// (pid, epoch, seq) of every batch in log order.
    log: Vec<(i64, i16, i32)>,
    counter: u64,
}

impl Harness {
    fn batch(&mut self, producer: usize, epoch: i16, seq: i32, records: usize) -> Bytes {
        let pid = self.producers[producer].pid;
        let values: Vec<Vec<u8>> = (0..records)
            .map(|_| {
                self.counter += 1;
                format!("p{producer}-{}", self.counter).into_bytes()
            })
            .collect();
        common::batch(&values, Some((pid, epoch, seq)), 7)
    }

    fn expect_append(&mut self, producer: usize, bytes: Bytes) -> Result<(), TestCaseError> {
        let header = BatchHeader::parse(&bytes).expect("header");
        let out = self.broker.produce("t", 0, bytes.clone());
        let out = match out {
            Ok(out) => out,
            Err(e) => return Err(TestCaseError::fail(format!("expected an append, got {e}"))),
        };
        prop_assert!(!out.duplicate);
        prop_assert_eq!(out.base_offset, self.log_end);
        let records = header.record_count;
        self.log_end = out.last_offset + 1;
        let p = &mut self.producers[producer];
        p.broker_epoch = Some(header.producer_epoch);
        p.next_seq = header.base_sequence + records;
        p.logged.push(Logged {
            epoch: header.producer_epoch,
            records,
            base: out.base_offset,
            bytes,
        });
        self.log
            .push((p.pid, header.producer_epoch, header.base_sequence));
        Ok(())
    }

    fn expect_out_of_order(&self, bytes: Bytes, want_expected: i32) -> Result<(), TestCaseError> {
        match self.broker.produce("t", 0, bytes) {
            Err(Error::OutOfOrderSequence { expected, .. }) => {
                prop_assert_eq!(expected, want_expected);
                Ok(())
            }
            other => Err(TestCaseError::fail(format!(
                "expected OutOfOrderSequence, got {other:?}"
            ))),
        }
    }

    fn apply(&mut self, event: Event) -> Result<(), TestCaseError> {
        match event {
            Event::Send { producer, records } => {
                let (epoch, seq) = (
                    self.producers[producer].epoch,
                    self.producers[producer].next_seq,
                );
                let bytes = self.batch(producer, epoch, seq, records);
                self.expect_append(producer, bytes)?;
            }
            Event::Retry { producer, back } => {
                let p = &self.producers[producer];
                let current: Vec<&Logged> =
                    p.logged.iter().filter(|l| l.epoch == p.epoch).collect();
                let Some(target) = current
                    .len()
                    .checked_sub(back + 1)
                    .map(|i| current[i].clone())
                else {
                    return Ok(());
                };
                let result = self.broker.produce("t", 0, target.bytes.clone());
                if back < 5 {
                    let out =
                        result.map_err(|e| TestCaseError::fail(format!("retry failed: {e}")))?;
                    prop_assert!(out.duplicate, "a retry was appended again");
                    prop_assert_eq!(out.base_offset, target.base);
                    prop_assert_eq!(out.last_offset, target.base + i64::from(target.records) - 1);
                } else {
                    // Older than the five remembered batches: not recognisable, and not next.
                    let next = p.next_seq;
                    prop_assert!(
                        matches!(result, Err(Error::OutOfOrderSequence { expected, .. }) if expected == next),
                        "an old retry gave {:?}",
                        result
                    );
                }
            }
            Event::Gap { producer, gap } => {
                let p = &self.producers[producer];
                let (epoch, next) = (p.epoch, p.next_seq);
                let expected = if p.broker_epoch == Some(epoch) {
                    next
                } else {
                    0
                };
                let bytes = self.batch(producer, epoch, next + gap, 1);
                self.expect_out_of_order(bytes, expected)?;
            }
            Event::Reorder { producer } => {
                let p = &self.producers[producer];
                let (epoch, next) = (p.epoch, p.next_seq);
                let expected = if p.broker_epoch == Some(epoch) {
                    next
                } else {
                    0
                };
                let first = self.batch(producer, epoch, next, 2);
                let second = self.batch(producer, epoch, next + 2, 1);
                self.expect_out_of_order(second.clone(), expected)?;
                self.expect_append(producer, first)?;
                self.expect_append(producer, second)?;
            }
            Event::BumpEpoch { producer } => {
                let p = &mut self.producers[producer];
                p.epoch += 1;
                p.next_seq = 0;
            }
            Event::StaleEpoch { producer } => {
                let p = &self.producers[producer];
                let Some(current) = p.broker_epoch.filter(|e| *e > 0) else {
                    return Ok(());
                };
                let bytes = self.batch(producer, current - 1, 0, 1);
                match self.broker.produce("t", 0, bytes) {
                    Err(Error::ProducerFenced {
                        epoch,
                        current_epoch,
                        ..
                    }) => {
                        prop_assert_eq!(epoch, current - 1);
                        prop_assert_eq!(current_epoch, current);
                    }
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "expected ProducerFenced, got {other:?}"
                        )));
                    }
                }
            }
            Event::Restart { clean } => {
                let next = tempfile::tempdir().expect("tempdir");
                if clean {
                    self.broker.close().expect("close");
                    common::copy_dir(&self.dir, next.path());
                } else {
                    common::copy_dir(&self.dir, next.path());
                }
                self.dir = next.path().to_path_buf();
                self.broker = common::quiet_broker(&self.dir);
                self._dirs.push(next);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(96)))]
    #[test]
    fn each_logical_batch_is_in_the_log_exactly_once_and_in_order(
        events in prop::collection::vec(event(), 1..80),
    ) {
        let first = tempfile::tempdir().expect("tempdir");
        let broker = common::quiet_broker(first.path());
        broker.create_topic("t", TopicConfig::default().with_segment_bytes(1024)).expect("create");
        let producers = (0..2)
            .map(|_| ProducerModel { pid: broker.init_producer_id().expect("pid").producer_id, ..Default::default() })
            .collect();
        let mut h = Harness {
            broker,
            dir: first.path().to_path_buf(),
            _dirs: vec![first],
            producers,
            log_end: 0,
            log: Vec::new(),
            counter: 0,
        };
        for event in events {
            h.apply(event)?;
        }
        // The log holds exactly the model's batches, in order, with contiguous offsets.
        let mut in_log = Vec::new();
        let mut offset = 0;
        while offset < h.log_end {
            let bytes = h.broker.read("t", 0, offset, 1 << 20).expect("read").records;
            for batch in split_batches(bytes).expect("split") {
                let hd = batch.header();
                prop_assert_eq!(hd.base_offset, offset);
                in_log.push((hd.producer_id, hd.producer_epoch, hd.base_sequence));
                offset = batch.last_offset() + 1;
            }
        }
        prop_assert_eq!(in_log, h.log);
    }
}

#[test]
fn a_producer_id_the_broker_never_handed_out_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::quiet_broker(dir.path());
    broker
        .create_topic("t", TopicConfig::default())
        .expect("create");
    let result = broker.produce(
        "t",
        0,
        common::batch(&[b"v".to_vec()], Some((123_456, 0, 0)), 1),
    );
    assert!(
        matches!(
            result,
            Err(Error::UnknownProducerId {
                producer_id: 123_456
            })
        ),
        "{result:?}"
    );
}

#[test]
fn producer_ids_are_never_reused_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first: Vec<i64> = {
        let broker = common::quiet_broker(dir.path());
        (0..3)
            .map(|_| broker.init_producer_id().expect("pid").producer_id)
            .collect()
    };
    let broker = common::quiet_broker(dir.path());
    let next = broker.init_producer_id().expect("pid").producer_id;
    assert!(
        first.iter().all(|&p| p < next),
        "{next} reuses one of {first:?}"
    );
}
