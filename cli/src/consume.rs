//! `sluice consume TOPIC`: prints records to stdout one per line, as Kafka's console
//! consumer, from the log end (default), the log start or a given offset, until a record
//! count or an idle timeout is reached. With `--group` it is a member of a consumer group:
//! it starts at the group's committed offsets and commits what it printed.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, value_parser};
use sluice::log::{
    Broker, Consumer, ConsumerConfig, ConsumerRecord, Error as LogError, OffsetReset,
    TopicPartition, validate_topic_name,
};

use super::error::{CliError, CliResult};
use super::group::validate_group;
use super::isolation::{self, Isolation};
use super::output::{Out, stdout, write_err};
use super::{Open, with_broker};

/// Arguments of `consume`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: one line per record, `[partition<TAB>][offset<TAB>][key<TAB>]value`, the optional \
fields as asked for. A null key or a null value (tombstone) prints as an empty string; bytes \
that are not UTF-8 print as U+FFFD. Without --from-beginning or --offset only records written \
after the start are shown.

With --group G the consumer joins group G, which assigns it the topic's partitions. Each \
partition starts at the group's committed offset; a partition the group has no offset for \
starts at the log end, or at the log start with --from-beginning. After printing the records \
of each poll, and on exit, the consumer commits the offset after the last record printed, so \
the next `consume --group G` carries on where this one stopped (see `sluice group`).

With --bootstrap-server the same flags work on a Kafka cluster: alone, the consumer reads the \
partitions directly (the end is the high watermark); with --group it is a member of a classic \
consumer group (range assignor), and the idle timeout starts once the group has assigned it \
partitions (a Kafka broker delays a new group's first assignment by \
group.initial.rebalance.delay.ms, 3 s by default).

Examples:
  sluice consume orders --from-beginning --print-key --print-offset
  sluice consume orders --partition 2 --offset 100 --max-records 10
  sluice consume orders --group billing --from-beginning
  sluice --bootstrap-server 127.0.0.1:9092 consume orders --from-beginning --max-records 10")]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Start at the first record still in each partition instead of the log end. With
    /// --group, only partitions the group has no committed offset for start there.
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Read only this partition (default: every partition of the topic). Not with --group.
    #[arg(long, value_name = "P")]
    pub partition: Option<i32>,
    /// Start at this offset of the partition given with --partition. An offset outside the
    /// partition's [log start, log end] is an error. Not with --group.
    #[arg(long, value_name = "O", value_parser = value_parser!(i64).range(0..))]
    pub offset: Option<i64>,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    pub max_records: Option<u64>,
    /// Print each record's key (null prints as empty) before its value.
    #[arg(long)]
    pub print_key: bool,
    /// Print each record's offset before its key and value.
    #[arg(long)]
    pub print_offset: bool,
    /// Print each record's partition first.
    #[arg(long)]
    pub print_partition: bool,
    /// Exit when no record has arrived for this many milliseconds; 0 waits forever.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Consume as a member of consumer group G: start at the group's committed offsets and
    /// commit the offsets of the records printed (after each poll and on exit).
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t, help = isolation::HELP)]
    pub isolation: Isolation,
}

/// Runs `consume`.
pub fn run(data: &Path, args: &ConsumeArgs) -> CliResult {
    check_args(args)?;
    with_broker(data, Open::MustExist, |broker| {
        let mut consumer = match &args.group {
            Some(group) => subscribed(broker, args, group)?,
            None => assigned(broker, args)?,
        };
        let result = print_records(&mut consumer, args);
        // Leave the group whatever happened; the first error wins.
        let left = match args.group {
            Some(_) => consumer.unsubscribe().map_err(CliError::from),
            None => Ok(()),
        };
        result.and(left)
    })
}

/// Refuses flag combinations that make no sense, before anything is opened.
pub(crate) fn check_args(args: &ConsumeArgs) -> CliResult {
    validate_topic_name(&args.topic)?;
    if let Some(group) = &args.group {
        validate_group(group)?;
        if args.partition.is_some() || args.offset.is_some() {
            return Err(CliError::Usage(
                "--group cannot be used with --partition or --offset: the group assigns the partitions and each starts at the group's committed offset (use `sluice group reset-offsets` to move them)".into(),
            ));
        }
    }
    if args.offset.is_some() && args.partition.is_none() {
        return Err(CliError::Usage(
            "--offset needs --partition: an offset belongs to one partition".into(),
        ));
    }
    Ok(())
}

/// A consumer in `group`, subscribed to the topic.
fn subscribed(broker: &Broker, args: &ConsumeArgs, group: &str) -> CliResult<Consumer> {
    // Fail on an unknown topic rather than wait for it to appear.
    broker.partition_count(&args.topic)?;
    let reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let config = ConsumerConfig::default()
        .with_group_id(group)
        .with_auto_offset_reset(reset)
        .with_isolation(args.isolation.into());
    let mut consumer = Consumer::new(broker, config);
    consumer.subscribe(&[args.topic.as_str()], ())?;
    Ok(consumer)
}

/// A consumer assigned the partitions asked for, at the position asked for.
fn assigned(broker: &Broker, args: &ConsumeArgs) -> CliResult<Consumer> {
    let count = broker.partition_count(&args.topic)?;
    let partitions: Vec<TopicPartition> = match args.partition {
        Some(p) if (0..count).contains(&p) => vec![TopicPartition::new(args.topic.as_str(), p)],
        Some(p) => {
            return Err(LogError::UnknownPartition {
                topic: args.topic.clone(),
                partition: p,
                partitions: count,
            }
            .into());
        }
        None => (0..count)
            .map(|p| TopicPartition::new(args.topic.as_str(), p))
            .collect(),
    };
    // A given offset must be valid; otherwise a position lost to retention restarts at the
    // log start.
    let reset = if args.offset.is_some() {
        OffsetReset::None
    } else {
        OffsetReset::Earliest
    };
    let config = ConsumerConfig::default()
        .with_auto_offset_reset(reset)
        .with_isolation(args.isolation.into());
    let mut consumer = Consumer::new(broker, config);
    consumer.assign(partitions.clone())?;
    for tp in &partitions {
        match args.offset {
            Some(offset) => consumer.seek(tp, offset)?,
            None if args.from_beginning => consumer.seek_to_beginning(tp)?,
            None => consumer.seek_to_end(tp)?,
        }
    }
    Ok(consumer)
}

/// The poll loop: prints records until --max-records or the idle timeout. In a group it
/// commits after each poll's records are printed and flushed, and once more at the end.
fn print_records(consumer: &mut Consumer, args: &ConsumeArgs) -> CliResult {
    let commit = args.group.is_some();
    let idle_limit = (args.timeout_ms > 0).then(|| Duration::from_millis(args.timeout_ms));
    let mut out = stdout();
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    while args.max_records.is_none_or(|max| printed < max) {
        let wait = match idle_limit {
            Some(limit) => {
                let left = limit.saturating_sub(last_record.elapsed());
                if left.is_zero() {
                    break;
                }
                left
            }
            None => Duration::from_secs(1),
        };
        let records = consumer.poll(wait)?;
        if records.is_empty() {
            continue;
        }
        last_record = Instant::now();
        let room = args.max_records.map_or(usize::MAX, |max| {
            usize::try_from(max - printed).unwrap_or(usize::MAX)
        });
        let shown = records.len().min(room);
        for record in &records[..shown] {
            write_record(&mut out, record, args).map_err(write_err)?;
        }
        printed += shown as u64;
        out.flush().map_err(write_err)?;
        if commit {
            // Records returned but not printed are read again by the group's next consumer.
            rewind(consumer, &records[shown..])?;
            consumer.commit_sync()?;
        }
    }
    out.flush().map_err(write_err)?;
    if commit {
        consumer.commit_sync()?;
    }
    tracing::info!(topic = %args.topic, records = printed, "consumed");
    Ok(())
}

/// Moves each partition of `unprinted` back to its first record there.
fn rewind(consumer: &mut Consumer, unprinted: &[ConsumerRecord]) -> CliResult {
    let mut done: Vec<i32> = Vec::new();
    for record in unprinted {
        if !done.contains(&record.partition) {
            done.push(record.partition);
            let tp = TopicPartition::new(record.topic.as_ref(), record.partition);
            consumer.seek(&tp, record.offset)?;
        }
    }
    Ok(())
}

/// Writes `[partition\t][offset\t][key\t]value\n`.
pub(crate) fn write_record(
    out: &mut Out,
    record: &ConsumerRecord,
    args: &ConsumeArgs,
) -> std::io::Result<()> {
    if args.print_partition {
        write!(out, "{}\t", record.partition)?;
    }
    if args.print_offset {
        write!(out, "{}\t", record.offset)?;
    }
    if args.print_key {
        out.write_all(lossy(record.key.as_deref()).as_bytes())?;
        out.write_all(b"\t")?;
    }
    out.write_all(lossy(record.value.as_deref()).as_bytes())?;
    out.write_all(b"\n")
}

/// Bytes as text: invalid UTF-8 becomes U+FFFD, null becomes empty.
fn lossy(bytes: Option<&[u8]>) -> Cow<'_, str> {
    bytes.map_or(Cow::Borrowed(""), String::from_utf8_lossy)
}
