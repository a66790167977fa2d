//! `make demo`: the embedded log end to end. Creates a topic, produces keyed records with the
//! idempotent producer, consumes them back, shows that a retried batch is not appended twice,
//! restarts the broker to show that everything persisted, and prints what happened.
//!
//! Run with `cargo run --release --example log_demo [DATA_DIR]` (default: a temporary dir).

use std::error::Error;
use std::time::Duration;

use sluice::log::batch::BatchBuilder;
use sluice::prelude::*;

fn main() -> Result<(), Box<dyn Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    println!("sluice log demo: data directory {}", dir.display());

    let broker = Broker::open(&dir, BrokerConfig::default())?;
    if broker.topic_metadata("page-views").is_err() {
        broker.create_topic("page-views", TopicConfig::default().with_partitions(3))?;
        println!("created topic page-views with 3 partitions");
    }

    // Keyed records: each user's views land on one partition (Kafka's murmur2), in order.
    let producer = Producer::new(&broker, ProducerConfig::default())?;
    let views = [
        ("alice", "/home"),
        ("bob", "/cart"),
        ("alice", "/search?q=rust"),
        ("carol", "/home"),
        ("bob", "/checkout"),
        ("alice", "/product/42"),
    ];
    let mut deliveries = Vec::new();
    for (user, page) in views {
        deliveries.push((
            user,
            page,
            producer.send(ProducerRecord::new("page-views", page).with_key(user))?,
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
    let mut consumer = Consumer::new(&broker, ConsumerConfig::default());
    consumer.assign(
        (0..3)
            .map(|p| TopicPartition::new("page-views", p))
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
    }
    println!("consumed {seen} records");
    drop(consumer);

    // An idempotent retry: the same batch sent twice is acknowledged twice, stored once.
    let id = broker.init_producer_id()?;
    let mut batch = BatchBuilder::new().with_producer(id.producer_id, id.epoch, 0);
    batch.append(sluice::log::now_ms(), Some(b"dave"), Some(b"/retry"), &[]);
    let batch = batch.build()?;
    let first = broker.produce("page-views", 0, batch.clone())?;
    let retry = broker.produce("page-views", 0, batch)?;
    println!(
        "idempotence: first send at offset {}, retry acknowledged at offset {} (duplicate: {})",
        first.base_offset, retry.base_offset, retry.duplicate
    );

    // Restart: the log recovers from its files.
    let before: Vec<i64> = broker
        .topic_metadata("page-views")?
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    broker.close()?;
    drop(broker);
    let broker = Broker::open(&dir, BrokerConfig::default())?;
    let after: Vec<i64> = broker
        .topic_metadata("page-views")?
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
