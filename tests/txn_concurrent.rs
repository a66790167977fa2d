//! The same checker on truly concurrent clients: threads run transactional producers (some
//! killed and replaced mid-transaction, so zombies race their successors), a plain
//! idempotent producer and read_committed / read_uncommitted readers at once, on one broker.
//! The history is merged from per-thread logs in the order of a shared sequence counter.

mod checker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checker::{Event, FinalState, History, Outcome, check, read_all, render};
use sluice::log::{
    Broker, BrokerConfig, Consumer, ConsumerConfig, IsolationLevel, Producer, ProducerConfig,
    ProducerRecord, TopicConfig, TopicPartition,
};

const PARTITIONS: i32 = 3;

/// How long a reader may take to read to the end of the log once the writers are done
/// before the test fails as hung (it normally takes a few polls).
const CATCH_UP_GUARD: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Log {
    seq: AtomicU64,
    events: Mutex<Vec<(u64, Event)>>,
}

impl Log {
    fn push(&self, event: Event) {
        let at = self.seq.fetch_add(1, Ordering::SeqCst);
        self.events.lock().expect("log lock").push((at, event));
    }
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("c", p)
}

/// Whether `consumer` has read every partition to its end as its isolation level sees it
/// (the last stable offset under read_committed, the high watermark otherwise).
fn caught_up(broker: &Broker, consumer: &mut Consumer, committed: bool) -> bool {
    let info = broker.topic_metadata("c").expect("meta");
    info.partitions.iter().all(|p| {
        let end = if committed {
            p.last_stable_offset
        } else {
            p.high_watermark
        };
        consumer.position(&tp(p.partition)).expect("position") >= end
    })
}

fn txn_worker(broker: Broker, log: Arc<Log>, worker: u64, rounds: u64) {
    let id = format!("worker-{worker}");
    let config = ProducerConfig::default()
        .with_transactional_id(id)
        .with_linger_ms(0);
    let mut producer = Producer::new(&broker, config.clone()).expect("producer");
    producer.init_transactions().expect("init");
    for round in 0..rounds {
        let txn = worker * 1_000_000 + round;
        producer.begin_transaction().expect("begin");
        let mut sent = Vec::new();
        for i in 0..(1 + round % 4) {
            let p = ((round + i) % PARTITIONS as u64) as i32;
            let value = format!("w{worker}-t{round}-{i}");
            sent.push((
                p,
                value.clone(),
                producer
                    .send(ProducerRecord::new("c", value).with_partition(p))
                    .expect("send"),
            ));
        }
        match round % 5 {
            // Killed mid-transaction: a new instance takes over; the zombie then tries to commit.
            4 => {
                let _ = producer.flush();
                for (p, value, d) in sent {
                    if d.wait().is_ok() {
                        log.push(Event::TxnWrite {
                            txn,
                            partition: p,
                            value,
                        });
                    }
                }
                let successor = Producer::new(&broker, config.clone()).expect("producer");
                successor.init_transactions().expect("init");
                log.push(Event::CommitAsked { txn });
                let zombie = producer.commit_transaction();
                log.push(Event::Ended {
                    txn,
                    outcome: if zombie.is_ok() {
                        Outcome::Committed
                    } else {
                        Outcome::Aborted
                    },
                });
                producer = successor;
            }
            r => {
                let commit = r != 2;
                if commit {
                    log.push(Event::CommitAsked { txn });
                }
                let ended = if commit {
                    producer.commit_transaction()
                } else {
                    producer.abort_transaction()
                };
                for (p, value, d) in sent {
                    if d.wait().is_ok() {
                        log.push(Event::TxnWrite {
                            txn,
                            partition: p,
                            value,
                        });
                    }
                }
                let outcome = match ended {
                    Ok(()) if commit => Outcome::Committed,
                    Ok(()) => Outcome::Aborted,
                    Err(_) => Outcome::Unknown,
                };
                log.push(Event::Ended { txn, outcome });
            }
        }
    }
}

#[test]
fn concurrent_clients_keep_every_guarantee() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(
        dir.path(),
        BrokerConfig::default().with_flush_check_interval(Duration::from_millis(10)),
    )
    .expect("open");
    broker
        .create_topic(
            "c",
            TopicConfig::default()
                .with_partitions(PARTITIONS)
                .with_segment_bytes(8192),
        )
        .expect("create");
    let log = Arc::new(Log::default());
    let writers_done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3u32)
        .map(|r| {
            let (broker, log, writers_done) =
                (broker.clone(), Arc::clone(&log), Arc::clone(&writers_done));
            std::thread::spawn(move || {
                let committed = r != 2;
                let isolation = if committed {
                    IsolationLevel::ReadCommitted
                } else {
                    IsolationLevel::ReadUncommitted
                };
                let mut consumer =
                    Consumer::new(&broker, ConsumerConfig::default().with_isolation(isolation));
                consumer
                    .assign((0..PARTITIONS).map(tp).collect())
                    .expect("assign");
                let mut catch_up_by = None;
                loop {
                    if writers_done.load(Ordering::SeqCst) {
                        // Read on until the final log is read (up to its end as this
                        // reader's isolation level sees it), so the last writes are read
                        // during the run too; a hang guard, not a timing assertion.
                        let deadline =
                            *catch_up_by.get_or_insert_with(|| Instant::now() + CATCH_UP_GUARD);
                        if caught_up(&broker, &mut consumer, committed) {
                            break;
                        }
                        assert!(
                            Instant::now() < deadline,
                            "reader {r} (read_committed: {committed}) did not reach the end of \
                             the log within {CATCH_UP_GUARD:?} of the writers finishing"
                        );
                    }
                    let records = consumer.poll(Duration::from_millis(5)).expect("poll");
                    if !records.is_empty() {
                        let records = records
                            .into_iter()
                            .map(|rec| {
                                (
                                    rec.partition,
                                    rec.offset,
                                    String::from_utf8_lossy(&rec.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect();
                        log.push(Event::Poll {
                            reader: r,
                            committed,
                            records,
                        });
                    }
                }
            })
        })
        .collect();
    let plain = {
        let (broker, log) = (broker.clone(), Arc::clone(&log));
        std::thread::spawn(move || {
            let producer = Producer::new(&broker, ProducerConfig::default().with_linger_ms(0))
                .expect("producer");
            for i in 0..1000 {
                let p = i % PARTITIONS;
                let value = format!("plain-{i}");
                if producer
                    .send(ProducerRecord::new("c", value.clone()).with_partition(p))
                    .and_then(|d| d.wait())
                    .is_ok()
                {
                    log.push(Event::PlainWrite {
                        partition: p,
                        value,
                    });
                }
            }
        })
    };
    let workers: Vec<_> = (0..3u64)
        .map(|w| {
            let (broker, log) = (broker.clone(), Arc::clone(&log));
            std::thread::spawn(move || txn_worker(broker, log, w, 150))
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    plain.join().expect("plain");
    writers_done.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("reader");
    }
    let mut events = std::mem::take(&mut *log.events.lock().expect("lock"));
    events.sort_by_key(|(at, _)| *at);
    let history = History {
        events: events.into_iter().map(|(_, e)| e).collect(),
    };
    let end = FinalState {
        committed: read_all(&broker, "c", PARTITIONS, IsolationLevel::ReadCommitted),
        uncommitted: read_all(&broker, "c", PARTITIONS, IsolationLevel::ReadUncommitted),
        group_offsets: Default::default(),
    };
    let anomalies = check(&history, &end);
    assert!(anomalies.is_empty(), "{anomalies:#?}\n{}", render(&history));
    let info = broker.topic_metadata("c").expect("meta");
    assert!(
        info.partitions
            .iter()
            .all(|p| p.last_stable_offset == p.high_watermark)
    );
}
