//! `make demo`: the embedded log end to end. Creates a topic, produces keyed records with the
//! idempotent producer, consumes them back, shows that a retried batch is not appended twice,
//! restarts the broker to show that everything persisted, and prints what happened.
//!
//! Run with `cargo run --release --example log_demo [DATA_DIR]` (default: a temporary dir).
//!
//! With `--bootstrap-servers HOST:PORT` it shows the same producing and consuming on that
//! Kafka cluster (Apache Kafka or `sluice broker`), through the clients of the `Cluster`
//! seam (the topic is `page-views-<run>`, so a rerun starts from an empty one). The
//! idempotent retry of a raw batch and the restart from the data directory are the
//! embedded log's own and are skipped there: a Kafka client retries inside librdkafka, and
//! a remote cluster's files are not this program's to reopen.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Backend, Names, OnCluster, Res, Target};
use sluice::log::batch::BatchBuilder;
use sluice::log::cluster::{
    ClusterConsumer, ConsumerSpec, Delivery, OffsetAt, ProducerSpec, TxnProducer,
};
use sluice::log::partition_for_key;
use sluice::prelude::*;

const TOPIC: &str = "page-views";
const PARTITIONS: i32 = 3;
const VIEWS: [(&str, &str); 6] = [
    ("alice", "/home"),
    ("bob", "/cart"),
    ("alice", "/search?q=rust"),
    ("carol", "/home"),
    ("bob", "/checkout"),
    ("alice", "/product/42"),
];
const USAGE: &str = "log_demo [DATA_DIR] [--bootstrap-servers HOST:PORT]";

fn main() -> Res<()> {
    let (mut dir, mut servers) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bootstrap-servers" => {
                let value = args.next();
                servers = Some(value.ok_or(format!(
                    "--bootstrap-servers needs HOST:PORT; usage: {USAGE}"
                ))?);
            }
            other if other.starts_with("--") => {
                return Err(format!("unknown option {other}; usage: {USAGE}").into());
            }
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
    Target::new(servers).run(&dir, LogDemo { dir: &dir })
}

/// The demo, on whichever cluster [`Target`] chose.
struct LogDemo<'a> {
    /// The embedded log's data directory.
    dir: &'a Path,
}

impl OnCluster for LogDemo<'_> {
    type Output = ();

    /// On a Kafka cluster: the same records produced and consumed through the seam.
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<()> {
        let topic = names.of(TOPIC);
        let config = TopicConfig::default().with_partitions(PARTITIONS);
        if cluster.create_topic_if_missing(&topic, &config)? {
            println!("created topic {topic} with {PARTITIONS} partitions");
        }
        produce_and_consume(cluster, &topic)?;
        println!(
            "the idempotent retry of a raw batch and the restart from the data directory run on the embedded log only"
        );
        println!("done");
        Ok(())
    }

    /// On the embedded log: its own clients, a raw idempotent retry, and a restart.
    fn run_embedded(self, broker: &Broker, _names: &Names) -> Res<()> {
        embedded(broker, self.dir)
    }
}

/// Produces the page views (each user's to the partition Kafka's default partitioner picks)
/// and consumes them back, with the seam's producer and consumer.
fn produce_and_consume<C: Backend>(cluster: &C, topic: &str) -> Res<()> {
    let mut producer = cluster.producer(&ProducerSpec::idempotent("log-demo"))?;
    let mut deliveries = Vec::new();
    for (user, page) in VIEWS {
        // The seam's delivery reports the offset only: the partition is set here, where the
        // producer would put the key (murmur2).
        let partition = partition_for_key(user.as_bytes(), PARTITIONS);
        let record = ProducerRecord::new(topic, page)
            .with_key(user)
            .with_partition(partition);
        deliveries.push((user, page, partition, producer.send_tracked(record)?));
    }
    producer.flush()?;
    for (user, page, partition, delivery) in deliveries {
        let offset = delivery.offset()?;
        println!("produced  {user:<6} {page:<16} -> partition {partition} offset {offset}");
    }
    producer.close()?;

    // Every partition from its start to its end.
    let mut consumer = cluster.consumer(&ConsumerSpec::read_committed("log-demo"))?;
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(topic, p);
        starts.push((tp.clone(), cluster.list_offset(&tp, OffsetAt::Earliest)?));
        let end = cluster.list_offset(&tp, OffsetAt::Latest)?;
        ends.push((tp, end));
    }
    consumer.assign(&starts)?;
    let mut seen = 0;
    for (tp, end) in &ends {
        while consumer.position(tp)? < *end {
            for r in consumer.poll(Duration::from_millis(200))? {
                seen += 1;
                print_consumed(&r);
            }
        }
    }
    println!("consumed {seen} records");
    Ok(())
}

fn print_consumed(r: &ConsumerRecord) {
    let key = r
        .key
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let value = r
        .value
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    println!(
        "consumed  {key:<6} {value:<16} <- partition {} offset {}",
        r.partition, r.offset
    );
}

/// The embedded log end to end, with its own clients.
fn embedded(broker: &Broker, dir: &Path) -> Res<()> {
    println!("sluice log demo: data directory {}", dir.display());
    if broker.topic_metadata(TOPIC).is_err() {
        broker.create_topic(TOPIC, TopicConfig::default().with_partitions(PARTITIONS))?;
        println!("created topic {TOPIC} with {PARTITIONS} partitions");
    }

    // Keyed records: each user's views land on one partition (Kafka's murmur2), in order.
    let producer = Producer::new(broker, ProducerConfig::default())?;
    let mut deliveries = Vec::new();
    for (user, page) in VIEWS {
        deliveries.push((
            user,
            page,
            producer.send(ProducerRecord::new(TOPIC, page).with_key(user))?,
        ));
    }
    for (user, page, delivery) in deliveries {
        let meta = delivery.wait()?;
        println!(
            "produced  {user:<6} {page:<16} -> partition {} offset {}",
            meta.partition, meta.offset
        );
    }
    producer.close()?;

    // Consume every partition from the beginning.
    let mut consumer = Consumer::new(broker, ConsumerConfig::default());
    consumer.assign(
        (0..PARTITIONS)
            .map(|p| TopicPartition::new(TOPIC, p))
            .collect(),
    )?;
    let mut seen = 0;
    loop {
        let records = consumer.poll(Duration::from_millis(200))?;
        if records.is_empty() {
            break;
        }
        for r in records {
            seen += 1;
            print_consumed(&r);
        }
    }
    println!("consumed {seen} records");
    drop(consumer);

    // An idempotent retry: the same batch sent twice is acknowledged twice, stored once.
    let id = broker.init_producer_id()?;
    let mut batch = BatchBuilder::new().with_producer(id.producer_id, id.epoch, 0);
    batch.append(sluice::log::now_ms(), Some(b"dave"), Some(b"/retry"), &[]);
    let batch = batch.build()?;
    let first = broker.produce(TOPIC, 0, batch.clone())?;
    let retry = broker.produce(TOPIC, 0, batch)?;
    println!(
        "idempotence: first send at offset {}, retry acknowledged at offset {} (duplicate: {})",
        first.base_offset, retry.base_offset, retry.duplicate
    );

    // Restart: the log recovers from its files.
    let before: Vec<i64> = broker
        .topic_metadata(TOPIC)?
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    broker.close()?; // every handle of it: the directory is free to open again
    let broker = Broker::open(dir, BrokerConfig::default())?;
    let after: Vec<i64> = broker
        .topic_metadata(TOPIC)?
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    println!("log end offsets before restart {before:?}, after {after:?}");
    if before != after {
        return Err("the log lost data across a restart".into());
    }
    broker.close()?;
    println!("done");
    Ok(())
}
