//! `sluice group list|describe|reset-offsets`: consumer groups, as Kafka's
//! `kafka-consumer-groups.sh`: their members, committed offsets and lag, and moving a
//! group's committed offsets while none of its consumers runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand, value_parser};
use sluice::log::{Broker, OffsetSpec, TopicPartition, validate_topic_name};

use super::error::{CliError, CliResult};
use super::output::{stdout, table, write_err};
use super::{Open, with_broker};

/// The `group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the consumer groups (those with members or committed offsets), one per line,
    /// sorted.
    List,
    /// Show a group's members and, per partition, its committed offset and lag.
    #[command(after_help = "\
Output: a line with the group's generation and member count; the members, each with the \
partitions assigned to it; then one row per partition of every topic the group has committed \
offsets for. Columns: TOPIC, PARTITION, COMMITTED (the next offset the group will read; `-` \
when it has none for the partition), LOG-END (the partition's next offset to be written), LAG \
(LOG-END - COMMITTED; transaction markers count as records, as in Kafka).

With --bootstrap-server, Generation prints `-` (Kafka's DescribeGroups does not report it), \
LOG-END is each partition's high watermark (as kafka-consumer-groups.sh shows it), and only \
topics the cluster still has are listed.

Examples:
  sluice group describe billing
  sluice --bootstrap-server 127.0.0.1:9092 group describe billing")]
    Describe {
        /// The group.
        group: String,
    },
    /// Set a group's committed offsets for every partition of a topic.
    ResetOffsets(ResetArgs),
}

/// Arguments of `group reset-offsets`.
#[derive(Debug, Args)]
#[command(after_help = "\
Give exactly one of --to-earliest, --to-latest and --to-offset. The group must have no active \
members: stop its consumers first. Prints the new offset of each partition. With \
--bootstrap-server the end of a partition is its high watermark.

Examples:
  sluice group reset-offsets billing --topic orders --to-earliest
  sluice group reset-offsets billing --topic orders --to-offset 100")]
pub struct ResetArgs {
    /// The group.
    pub group: String,
    /// The topic whose partitions are reset (all of them).
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// Move to the first offset still in each partition (its log start).
    #[arg(long)]
    pub to_earliest: bool,
    /// Move to the end of each partition: only records written from now on will be read.
    #[arg(long)]
    pub to_latest: bool,
    /// Move every partition to offset N; a partition whose log starts after N, or ends
    /// before it, gets its log start or log end instead.
    #[arg(long, value_name = "N", value_parser = value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
}

/// Refuses an empty group id.
pub fn validate_group(group: &str) -> CliResult {
    if group.is_empty() {
        return Err(CliError::Usage("invalid group id: it is empty".into()));
    }
    Ok(())
}

/// Runs a `group` subcommand.
pub fn run(data: &Path, cmd: GroupCommand) -> CliResult {
    match cmd {
        GroupCommand::List => {
            if !data.exists() {
                return Ok(());
            }
            with_broker(data, Open::MustExist, |broker| {
                let mut out = stdout();
                for group in broker.list_groups() {
                    writeln!(out, "{group}").map_err(write_err)?;
                }
                out.flush().map_err(write_err)
            })
        }
        GroupCommand::Describe { group } => {
            validate_group(&group)?;
            with_broker(data, Open::MustExist, |broker| {
                let text = describe(broker, &group)?;
                let mut out = stdout();
                out.write_all(text.as_bytes()).map_err(write_err)?;
                out.flush().map_err(write_err)
            })
        }
        GroupCommand::ResetOffsets(args) => {
            validate_group(&args.group)?;
            validate_topic_name(&args.topic)?;
            let target = Target::from_args(&args)?;
            with_broker(data, Open::MustExist, |broker| {
                let text = reset(broker, &args, target)?;
                let mut out = stdout();
                out.write_all(text.as_bytes()).map_err(write_err)?;
                out.flush().map_err(write_err)
            })
        }
    }
}

/// The `group describe` text.
fn describe(broker: &Broker, group: &str) -> CliResult<String> {
    if !broker.list_groups().iter().any(|g| g == group) {
        return Err(CliError::Usage(format!(
            "unknown group `{group}`: it has no members and no committed offsets"
        )));
    }
    let description = broker.describe_group(group);
    let mut committed: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for (tp, offset) in broker.offset_fetch(group, &[], false)? {
        if let Some(offset) = offset {
            committed
                .entry(tp.topic)
                .or_default()
                .insert(tp.partition, offset);
        }
    }
    let mut ends = BTreeMap::new();
    for topic in committed.keys() {
        // A deleted topic keeps its committed offsets; it has no log end.
        if let Ok(meta) = broker.topic_metadata(topic) {
            let topic_ends = meta
                .partitions
                .iter()
                .map(|p| (p.partition, p.log_end_offset))
                .collect();
            ends.insert(topic.clone(), topic_ends);
        }
    }
    let view = GroupView {
        generation: description.generation.to_string(),
        members: description
            .members
            .into_iter()
            .map(|m| (m.member_id, m.partitions))
            .collect(),
        committed,
        ends,
    };
    Ok(describe_view(group, &view))
}

/// What `group describe` prints: from the embedded log or from a Kafka cluster.
#[derive(Debug)]
pub(crate) struct GroupView {
    /// The generation (`-` when unknown).
    pub generation: String,
    /// Each member's id and partitions.
    pub members: Vec<(String, Vec<TopicPartition>)>,
    /// Committed offsets by topic and partition.
    pub committed: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Each committed topic's partition ends (LOG-END); a topic missing here has none.
    pub ends: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// The `group describe` text of `view`.
pub(crate) fn describe_view(group: &str, view: &GroupView) -> String {
    let mut text = format!(
        "Group: {group}  Generation: {}  Members: {}\n",
        view.generation,
        view.members.len()
    );
    if view.members.is_empty() {
        text.push_str("No active members.\n");
    } else {
        let mut rows = vec![vec!["MEMBER".to_string(), "PARTITIONS".to_string()]];
        for (member_id, partitions) in &view.members {
            let partitions: Vec<String> = partitions.iter().map(|p| p.to_string()).collect();
            rows.push(vec![member_id.clone(), partitions.join(",")]);
        }
        text.push_str(&table(&rows, 2));
    }
    text.push('\n');

    let header = ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    let no_ends = BTreeMap::new();
    for (topic, offsets) in &view.committed {
        let ends = view.ends.get(topic).unwrap_or(&no_ends);
        let mut partitions: Vec<i32> = ends.keys().chain(offsets.keys()).copied().collect();
        partitions.sort_unstable();
        partitions.dedup();
        for p in partitions {
            let offset = offsets.get(&p).copied();
            let end = ends.get(&p).copied();
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let lag = offset.zip(end).map(|(o, e)| e - o);
            rows.push(vec![
                topic.clone(),
                p.to_string(),
                show(offset),
                show(end),
                show(lag),
            ]);
        }
    }
    if rows.len() == 1 {
        text.push_str("No committed offsets.\n");
    } else {
        text.push_str(&table(&rows, 1));
    }
    text
}

/// Where `reset-offsets` moves the offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// This offset, clamped to [log start, log end].
    Offset(i64),
}

impl Target {
    /// Exactly one of the three flags.
    pub(crate) fn from_args(args: &ResetArgs) -> CliResult<Self> {
        let given = [args.to_earliest, args.to_latest, args.to_offset.is_some()]
            .iter()
            .filter(|&&on| on)
            .count();
        if given != 1 {
            return Err(CliError::Usage(
                "give exactly one of --to-earliest, --to-latest and --to-offset N".into(),
            ));
        }
        Ok(match args.to_offset {
            Some(n) => Self::Offset(n),
            None if args.to_earliest => Self::Earliest,
            None => Self::Latest,
        })
    }
}

/// Commits the new offsets and returns the table of them.
fn reset(broker: &Broker, args: &ResetArgs, target: Target) -> CliResult<String> {
    let count = broker.partition_count(&args.topic)?;
    let members = broker.describe_group(&args.group).members;
    if !members.is_empty() {
        return Err(has_members(&args.group, members.len()));
    }
    let listed = |p: i32, spec: OffsetSpec| -> CliResult<i64> {
        let found = broker.list_offsets(&args.topic, p, spec)?;
        found
            .map(|l| l.offset)
            .ok_or_else(|| CliError::Failed(format!("no offset found for {}-{p}", args.topic)))
    };
    let mut offsets = Vec::new();
    for p in 0..count {
        let offset = match target {
            Target::Earliest => listed(p, OffsetSpec::Earliest)?,
            Target::Latest => listed(p, OffsetSpec::Latest)?,
            Target::Offset(n) => n
                .max(listed(p, OffsetSpec::Earliest)?)
                .min(listed(p, OffsetSpec::Latest)?),
        };
        offsets.push((TopicPartition::new(args.topic.as_str(), p), offset));
    }
    broker.offset_commit(&args.group, -1, "", &offsets)?;
    Ok(reset_table(&offsets))
}

/// The `reset-offsets` output: the new offset of each partition.
pub(crate) fn reset_table(offsets: &[(TopicPartition, i64)]) -> String {
    let mut rows = vec![vec![
        "TOPIC".to_string(),
        "PARTITION".to_string(),
        "NEW-OFFSET".to_string(),
    ]];
    for (tp, offset) in offsets {
        rows.push(vec![
            tp.topic.clone(),
            tp.partition.to_string(),
            offset.to_string(),
        ]);
    }
    table(&rows, 1)
}

/// The refusal of a reset while `group` has `members` active members.
pub(crate) fn has_members(group: &str, members: usize) -> CliError {
    CliError::Usage(format!(
        "group `{group}` has {members} active member{}: stop its consumers before resetting its offsets",
        if members == 1 { "" } else { "s" }
    ))
}
