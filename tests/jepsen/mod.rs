//! The workload of `txn_jepsen`: logical clients driven one request at a time in an order
//! proptest chooses, against a real broker in a temporary directory, with faults. Every
//! acknowledged effect goes into the history; expectations that are not about the final log
//! (a zombie's write must be refused, a duplicated request must be recognised) are checked
//! on the spot and returned as violations.

#![allow(dead_code)]

mod crash;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use sluice::log::batch::BatchBuilder;
use sluice::log::{
    Broker, BrokerConfig, Consumer, ConsumerConfig, IsolationLevel, Producer, ProducerConfig,
    ProducerIdAndEpoch, TopicConfig, TopicPartition,
};

use crate::checker::{Event, History, Outcome};

const TOPIC: &str = "jt";
const PARTITIONS: i32 = 3;
const GROUP: &str = "g";
const MEMBERS_GROUP: &str = "m";
const RAW_ACTORS: usize = 2;

/// How a raw transaction step ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Commit,
    Abort,
    /// Left open for a later step to continue.
    Open,
}

/// One request (or fault) of the workload.
#[derive(Debug, Clone)]
pub enum Step {
    Raw {
        actor: usize,
        writes: Vec<i32>,
        offsets: bool,
        end: End,
    },
    Client {
        writes: Vec<i32>,
        offsets: bool,
        commit: bool,
    },
    Plain {
        partitions: Vec<i32>,
    },
    Poll {
        reader: usize,
    },
    Kill {
        actor: usize,
    },
    Zombie {
        actor: usize,
    },
    DelayedProduce {
        actor: usize,
    },
    DuplicateProduce {
        actor: usize,
    },
    DuplicateEnd {
        actor: usize,
    },
    Timeout {
        actor: usize,
    },
    Crash {
        power_loss: bool,
    },
    MemberJoin,
    MemberDies,
    StaleMemberCommit,
}

/// Steps, weighted towards transactions and polls.
pub fn step() -> impl Strategy<Value = Step> {
    let partitions = || prop::collection::vec(0..PARTITIONS, 0..4);
    let end = prop_oneof![Just(End::Commit), Just(End::Abort), Just(End::Open)];
    prop_oneof![
        8 => (0..RAW_ACTORS, partitions(), any::<bool>(), end)
            .prop_map(|(actor, writes, offsets, end)| Step::Raw { actor, writes, offsets, end }),
        3 => (partitions(), any::<bool>(), any::<bool>())
            .prop_map(|(writes, offsets, commit)| Step::Client { writes, offsets, commit }),
        3 => partitions().prop_map(|partitions| Step::Plain { partitions }),
        6 => (0usize..3).prop_map(|reader| Step::Poll { reader }),
        1 => (0..RAW_ACTORS).prop_map(|actor| Step::Kill { actor }),
        1 => (0..RAW_ACTORS).prop_map(|actor| Step::Zombie { actor }),
        1 => (0..RAW_ACTORS).prop_map(|actor| Step::DelayedProduce { actor }),
        1 => (0..RAW_ACTORS).prop_map(|actor| Step::DuplicateProduce { actor }),
        1 => (0..RAW_ACTORS).prop_map(|actor| Step::DuplicateEnd { actor }),
        1 => (0..RAW_ACTORS).prop_map(|actor| Step::Timeout { actor }),
        1 => any::<bool>().prop_map(|power_loss| Step::Crash { power_loss }),
        1 => Just(Step::MemberJoin),
        1 => Just(Step::MemberDies),
        1 => Just(Step::StaleMemberCommit),
    ]
}

#[derive(Debug)]
struct OpenTxn {
    txn: u64,
    partitions: BTreeSet<i32>,
    offsets: bool,
}

/// A transactional client driven through raw broker calls.
#[derive(Debug)]
struct Raw {
    name: String,
    id: ProducerIdAndEpoch,
    seqs: HashMap<i32, i32>,
    open: Option<OpenTxn>,
    last_batch: Option<(i32, Bytes)>,
    delayed: Option<(u64, i32, Bytes)>,
    /// The last end (identity used, commit?, answer), while nothing has happened since.
    last_end: Option<(ProducerIdAndEpoch, bool, ProducerIdAndEpoch)>,
    zombie: Option<ProducerIdAndEpoch>,
}

#[derive(Debug)]
struct Reader {
    id: u32,
    committed: bool,
    consumer: Consumer,
    positions: HashMap<i32, i64>,
}

/// A running workload.
#[derive(Debug)]
pub struct Workload {
    dirs: Vec<tempfile::TempDir>,
    dir: PathBuf,
    broker: Broker,
    history: History,
    violations: Vec<String>,
    raws: Vec<Raw>,
    client: Producer,
    plain: Producer,
    readers: Vec<Reader>,
    members: Vec<(String, i32)>,
    next_txn: u64,
    counter: u64,
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

fn open_broker(dir: &std::path::Path) -> Broker {
    let config = BrokerConfig::default()
        .with_flush_check_interval(Duration::from_millis(20))
        .with_retention_check_interval(Duration::from_secs(3600));
    Broker::open(dir, config).expect("open broker")
}

fn txn_batch(id: ProducerIdAndEpoch, seq: i32, value: &str) -> Bytes {
    let mut b = BatchBuilder::new()
        .with_producer(id.producer_id, id.epoch, seq)
        .with_transactional(true);
    b.append(1_000, None, Some(value.as_bytes()), &[]);
    b.build().expect("build")
}

fn new_reader(broker: &Broker, id: u32, committed: bool, positions: HashMap<i32, i64>) -> Reader {
    let isolation = if committed {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut consumer = Consumer::new(broker, ConsumerConfig::default().with_isolation(isolation));
    consumer
        .assign((0..PARTITIONS).map(tp).collect())
        .expect("assign");
    for (p, o) in &positions {
        consumer.seek(&tp(*p), *o).expect("seek");
    }
    Reader {
        id,
        committed,
        consumer,
        positions,
    }
}

fn client_producer(broker: &Broker) -> Producer {
    let producer = Producer::new(
        broker,
        ProducerConfig::default()
            .with_transactional_id("client")
            .with_linger_ms(0),
    )
    .expect("client producer");
    producer.init_transactions().expect("client init");
    producer
}

impl Workload {
    /// A fresh broker with the topic, the clients and the readers.
    pub fn start() -> Self {
        let first = tempfile::tempdir().expect("tempdir");
        let dir = first.path().to_path_buf();
        let broker = open_broker(&dir);
        broker
            .create_topic(
                TOPIC,
                TopicConfig::default()
                    .with_partitions(PARTITIONS)
                    .with_segment_bytes(4096),
            )
            .expect("create");
        let raws = (0..RAW_ACTORS)
            .map(|a| {
                let name = format!("raw-{a}");
                let id = broker
                    .init_transactions(&name, Duration::from_secs(60))
                    .expect("init");
                Raw {
                    name,
                    id,
                    seqs: HashMap::new(),
                    open: None,
                    last_batch: None,
                    delayed: None,
                    last_end: None,
                    zombie: None,
                }
            })
            .collect();
        let readers = (0..3)
            .map(|r| new_reader(&broker, r, r != 2, HashMap::new()))
            .collect();
        let client = client_producer(&broker);
        let plain = Producer::new(&broker, ProducerConfig::default().with_linger_ms(0))
            .expect("plain producer");
        Self {
            dirs: vec![first],
            dir,
            broker,
            history: History::default(),
            violations: Vec::new(),
            raws,
            client,
            plain,
            readers,
            members: Vec::new(),
            next_txn: 0,
            counter: 0,
        }
    }

    fn value(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    fn violation(&mut self, what: String) {
        self.violations.push(format!(
            "{what} (after {} events)",
            self.history.events.len()
        ));
    }

    /// The actor's instance is gone (fenced, killed, timed out): its open transaction is
    /// aborted; a new instance takes over.
    fn reinit(&mut self, a: usize, timeout: Duration) {
        if let Some(open) = self.raws[a].open.take() {
            self.history.push(Event::Ended {
                txn: open.txn,
                outcome: Outcome::Aborted,
            });
        }
        let raw = &mut self.raws[a];
        raw.id = self
            .broker
            .init_transactions(&raw.name, timeout)
            .expect("re-init");
        raw.seqs.clear();
        raw.last_end = None;
    }

    /// Runs one step.
    pub fn apply(&mut self, step: &Step) {
        match step {
            Step::Raw {
                actor,
                writes,
                offsets,
                end,
            } => self.raw(*actor, writes, *offsets, *end),
            Step::Client {
                writes,
                offsets,
                commit,
            } => self.client_txn(writes, *offsets, *commit),
            Step::Plain { partitions } => self.plain(partitions),
            Step::Poll { reader } => self.poll(*reader),
            Step::Kill { actor } => self.kill(*actor),
            Step::Zombie { actor } => self.zombie(*actor),
            Step::DelayedProduce { actor } => self.delayed(*actor),
            Step::DuplicateProduce { actor } => self.duplicate_produce(*actor),
            Step::DuplicateEnd { actor } => self.duplicate_end(*actor),
            Step::Timeout { actor } => self.timeout(*actor),
            Step::Crash { power_loss } => self.crash(*power_loss),
            Step::MemberJoin => self.member_join(),
            Step::MemberDies => {
                if !self.members.is_empty() {
                    self.members.remove(0);
                    self.history.push(Event::Fault {
                        what: "a group member died".into(),
                    });
                }
            }
            Step::StaleMemberCommit => self.stale_member_commit(),
        }
    }
}

mod steps;
