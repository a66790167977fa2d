//! `sluice produce TOPIC`: one record per line of stdin, as Kafka's console producer, with an
//! optional key separator and the acknowledged `partition<TAB>offset` of each record.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use bytes::Bytes;
use clap::Args;
use clap::builder::NonEmptyStringValueParser;
use sluice::log::{
    Broker, DeliveryFuture, Error as LogError, Producer, ProducerConfig, ProducerRecord,
    validate_topic_name,
};

use super::error::{CliError, CliResult};
use super::output::{stdout, write_err};
use super::{Open, with_broker};

/// Arguments of `produce`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each line of stdin (without its trailing \\n or \\r\\n) becomes one record; an empty line is a \
record with an empty value. The command sends everything, waits for every acknowledgement at \
end of input and fails (exit 1) if any record could not be written.

With --bootstrap-server the records go to that Kafka cluster through an idempotent producer \
(acks=all), to the partitions the embedded producer would choose (murmur2 of the key; one \
partition picked at start for keyless records); offsets print whenever the input pauses.

Example:
  printf 'k1:hello\\nk2:world\\n' | sluice produce orders --key-separator : --print-offsets")]
pub struct ProduceArgs {
    /// The topic to write to (it must exist).
    pub topic: String,
    /// Split each line at the first SEP: the part before is the key, the rest the value. A
    /// line without SEP gets a null key and is all value. Without this flag keys are null.
    #[arg(long, value_name = "SEP", value_parser = NonEmptyStringValueParser::new())]
    pub key_separator: Option<String>,
    /// Write every record to this partition. Otherwise keyed records go where Kafka's murmur2
    /// partitioner puts their key, and keyless ones to one partition chosen at start.
    #[arg(long, value_name = "P")]
    pub partition: Option<i32>,
    /// Print `partition<TAB>offset` on stdout for each record once it is acknowledged, in
    /// input order.
    #[arg(long)]
    pub print_offsets: bool,
}

/// Runs `produce`.
pub fn run(data: &Path, args: &ProduceArgs) -> CliResult {
    validate_topic_name(&args.topic)?;
    with_broker(data, Open::MustExist, |broker| produce(broker, args))
}

fn produce(broker: &Broker, args: &ProduceArgs) -> CliResult {
    let partitions = broker.partition_count(&args.topic)?;
    if let Some(p) = args.partition
        && !(0..partitions).contains(&p)
    {
        return Err(LogError::UnknownPartition {
            topic: args.topic.clone(),
            partition: p,
            partitions,
        }
        .into());
    }
    let producer = Producer::new(broker, ProducerConfig::default())?;
    // Acknowledgements are awaited in input order on another thread, so offsets print as soon
    // as they are known while stdin is still being read; the bounded channel keeps memory flat.
    let (tx, rx) = mpsc::sync_channel::<DeliveryFuture>(16 * 1024);
    let print = args.print_offsets;
    let acks = thread::Builder::new()
        .name("sluice-produce-acks".into())
        .spawn(move || await_acks(rx, print))
        .map_err(CliError::io("spawning a thread"))?;

    let sent = send_lines(&producer, args, &tx);
    drop(tx);
    producer.flush()?;
    let acked = acks
        .join()
        .map_err(|_| CliError::Failed("the acknowledgement thread panicked".into()))?;
    producer.close()?;
    // A failed acknowledgement explains a failed send, so it is reported first.
    let count = acked?;
    sent?;
    tracing::info!(topic = %args.topic, records = count, "produced");
    Ok(())
}

/// Reads stdin and sends each line; stops early when the acknowledgement side has failed.
fn send_lines(
    producer: &Producer,
    args: &ProduceArgs,
    tx: &mpsc::SyncSender<DeliveryFuture>,
) -> CliResult {
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut input = io::stdin().lock();
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(CliError::io("reading stdin"))?;
        if n == 0 {
            return Ok(());
        }
        let line = strip_newline(&line);
        let (key, value) = match separator {
            Some(sep) => split_key(line, sep),
            None => (None, line),
        };
        let mut record = ProducerRecord::new(args.topic.as_str(), Bytes::copy_from_slice(value));
        if let Some(key) = key {
            record = record.with_key(Bytes::copy_from_slice(key));
        }
        if let Some(p) = args.partition {
            record = record.with_partition(p);
        }
        let delivery = producer.send(record)?;
        if tx.send(delivery).is_err() {
            // The acknowledgement thread stopped: it holds the reason.
            return Ok(());
        }
    }
}

/// Waits for each record's acknowledgement in order, printing its offset if asked. Returns
/// how many were acknowledged, or the first failure.
fn await_acks(rx: mpsc::Receiver<DeliveryFuture>, print: bool) -> CliResult<u64> {
    let mut out = stdout();
    let mut count = 0u64;
    loop {
        let delivery = match rx.try_recv() {
            Ok(d) => d,
            Err(mpsc::TryRecvError::Empty) => {
                // Nothing queued: show what is printed so far before blocking.
                out.flush().map_err(write_err)?;
                match rx.recv() {
                    Ok(d) => d,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        let metadata = delivery.wait()?;
        count += 1;
        if print {
            writeln!(out, "{}\t{}", metadata.partition, metadata.offset).map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)?;
    Ok(count)
}

/// The line without its trailing `\n` and then `\r`.
pub(crate) fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits at the first `sep`: `(Some(key), value)`, or `(None, line)` without a separator.
pub(crate) fn split_key<'a>(line: &'a [u8], sep: &[u8]) -> (Option<&'a [u8]>, &'a [u8]) {
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(split_key(b"k:v:w", b":"), (Some(&b"k"[..]), &b"v:w"[..]));
        assert_eq!(split_key(b"k::v", b"::"), (Some(&b"k"[..]), &b"v"[..]));
        assert_eq!(split_key(b":v", b":"), (Some(&b""[..]), &b"v"[..]));
        assert_eq!(split_key(b"plain", b":"), (None, &b"plain"[..]));
    }

    #[test]
    fn newlines_are_stripped() {
        assert_eq!(strip_newline(b"a\r\n"), b"a");
        assert_eq!(strip_newline(b"a\n"), b"a");
        assert_eq!(strip_newline(b"a"), b"a");
        assert_eq!(strip_newline(b"a\r"), b"a");
    }
}
