//! `sluice --bootstrap-server HOST:PORT produce TOPIC`: one record per line of stdin to a
//! topic on a Kafka cluster, through sluice-kafka's idempotent producer (acks=all).
//!
//! Every record is sent to a partition chosen here, as the embedded producer chooses it:
//! Kafka's murmur2 of the key, or for keyless records one partition picked at start (or
//! `--partition`), so each acknowledgement's partition is known. Lines are read on a thread
//! of their own; whenever no more input is waiting (or 10 000 records are in flight) the
//! producer is flushed and the offsets printed in input order.

use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::thread;

use bytes::Bytes;
use sluice::kafka::{KafkaDelivery, KafkaProducer};
use sluice::log::cluster::{Delivery as _, ProducerSpec};
use sluice::log::{ProducerRecord, partition_for_key, validate_topic_name};

use super::{ClusterArgs, Remote, connect};
use crate::error::{CliError, CliResult};
use crate::output::{Out, stdout, write_err};
use crate::produce::{ProduceArgs, split_key, strip_newline};

/// Records in flight before the producer is flushed even though input keeps coming.
const FLUSH_EVERY: usize = 10_000;

/// Runs `produce` on the cluster.
pub fn run(args: &ClusterArgs, produce: &ProduceArgs) -> CliResult {
    validate_topic_name(&produce.topic)?;
    let remote = connect(args)?;
    let partitions = remote.partition_count(&produce.topic)?;
    if let Some(p) = produce.partition {
        remote.check_partition(&produce.topic, p, partitions)?;
    }
    let keyless = produce
        .partition
        .unwrap_or_else(|| start_partition(partitions));
    let mut producer = KafkaProducer::new(
        remote.cluster.config(),
        &ProducerSpec::idempotent("sluice-console-producer"),
    )
    .map_err(remote.fail())?;

    // Lines arrive on a channel, so a pause in the input can be told from more to come.
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(16 * 1024);
    thread::Builder::new()
        .name("sluice-produce-stdin".into())
        .spawn(move || read_lines(&tx))
        .map_err(CliError::io("spawning a thread"))?;

    let mut out = stdout();
    let mut pending: Vec<(i32, KafkaDelivery)> = Vec::new();
    let mut count = 0u64;
    let separator = produce.key_separator.as_deref().map(str::as_bytes);
    loop {
        let line = match rx.try_recv() {
            Ok(line) => Some(line),
            Err(mpsc::TryRecvError::Empty) => {
                // No input waiting: settle what was sent before blocking on more.
                count += settle(&remote, &mut producer, &mut pending, produce, &mut out)?;
                rx.recv().ok()
            }
            Err(mpsc::TryRecvError::Disconnected) => None,
        };
        let Some(line) = line else { break };
        let line = line.map_err(CliError::io("reading stdin"))?;
        let (key, value) = match separator {
            Some(sep) => split_key(&line, sep),
            None => (None, line.as_slice()),
        };
        let partition = match (produce.partition, key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => keyless,
        };
        let mut record = ProducerRecord::new(produce.topic.as_str(), Bytes::copy_from_slice(value))
            .with_partition(partition);
        if let Some(key) = key {
            record = record.with_key(Bytes::copy_from_slice(key));
        }
        let delivery = producer.send_tracked(&record).map_err(remote.fail())?;
        pending.push((partition, delivery));
        if pending.len() >= FLUSH_EVERY {
            count += settle(&remote, &mut producer, &mut pending, produce, &mut out)?;
        }
    }
    count += settle(&remote, &mut producer, &mut pending, produce, &mut out)?;
    producer.close().map_err(remote.fail())?;
    tracing::info!(topic = %produce.topic, records = count, "produced");
    Ok(())
}

/// Flushes the producer, then prints `partition<TAB>offset` of each pending record (if
/// asked) in input order. Returns how many were acknowledged; the first failure fails it.
fn settle(
    remote: &Remote,
    producer: &mut KafkaProducer,
    pending: &mut Vec<(i32, KafkaDelivery)>,
    produce: &ProduceArgs,
    out: &mut Out,
) -> CliResult<u64> {
    if pending.is_empty() {
        return Ok(0);
    }
    producer.flush().map_err(remote.fail())?;
    let count = pending.len() as u64;
    for (partition, delivery) in pending.drain(..) {
        let offset = delivery.offset().map_err(remote.fail())?;
        if produce.print_offsets {
            writeln!(out, "{partition}\t{offset}").map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)?;
    Ok(count)
}

/// Reads stdin line by line (without the line end) until its end, a read error, or the
/// receiver going away.
fn read_lines(tx: &mpsc::SyncSender<io::Result<Vec<u8>>>) {
    let mut input = io::stdin().lock();
    loop {
        let mut line = Vec::with_capacity(256);
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                let end = strip_newline(&line).len();
                line.truncate(end);
                if tx.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// The partition of keyless records: one per run, varying between runs.
fn start_partition(partitions: i32) -> i32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    i32::try_from(nanos % partitions.max(1).unsigned_abs()).unwrap_or(0)
}
