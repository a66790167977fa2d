//! `sluice --bootstrap-server HOST:PORT group list|describe|reset-offsets`: consumer groups
//! on a Kafka cluster, with the embedded command's flags and output.
//!
//! - The groups and their members come from ListGroups and DescribeGroups (each member's
//!   partitions decoded from its assignment); DescribeGroups carries no generation, so it
//!   prints `-`.
//! - Committed offsets are read, without joining, for every partition of every topic the
//!   cluster has (librdkafka cannot ask for "all of the group's"), so offsets of a deleted
//!   topic are not shown. LOG-END is each partition's high watermark, as in
//!   `kafka-consumer-groups.sh`.
//! - `reset-offsets` refuses a group with active members, then commits from outside the
//!   group (generation -1), as `kafka-consumer-groups.sh --reset-offsets --execute` does.

use std::collections::BTreeMap;
use std::io::Write;

use sluice::kafka::is_internal_topic;
use sluice::log::cluster::Cluster;
use sluice::log::{TopicPartition, validate_topic_name};

use super::{ClusterArgs, Remote, connect};
use crate::error::{CliError, CliResult};
use crate::group::{
    GroupCommand, GroupView, ResetArgs, Target, describe_view, has_members, reset_table,
    validate_group,
};
use crate::output::{stdout, write_err};

/// Runs a `group` subcommand on the cluster.
pub fn run(args: &ClusterArgs, cmd: GroupCommand) -> CliResult {
    match cmd {
        GroupCommand::List => {
            let remote = connect(args)?;
            let groups = remote.cluster.list_groups().map_err(remote.fail())?;
            let mut out = stdout();
            for group in groups {
                writeln!(out, "{group}").map_err(write_err)?;
            }
            out.flush().map_err(write_err)
        }
        GroupCommand::Describe { group } => {
            validate_group(&group)?;
            let remote = connect(args)?;
            let text = describe(&remote, &group)?;
            write_text(&text)
        }
        GroupCommand::ResetOffsets(reset_args) => {
            validate_group(&reset_args.group)?;
            validate_topic_name(&reset_args.topic)?;
            let target = Target::from_args(&reset_args)?;
            let remote = connect(args)?;
            let text = reset(&remote, &reset_args, target)?;
            write_text(&text)
        }
    }
}

fn write_text(text: &str) -> CliResult {
    let mut out = stdout();
    out.write_all(text.as_bytes()).map_err(write_err)?;
    out.flush().map_err(write_err)
}

/// The `group describe` text.
fn describe(remote: &Remote, group: &str) -> CliResult<String> {
    let description = remote
        .cluster
        .describe_group(group)
        .map_err(remote.fail())?;
    let committed = committed_offsets(remote, group)?;
    if description.is_none() && committed.is_empty() {
        return Err(CliError::Usage(format!(
            "unknown group `{group}` on the cluster at {}: it has no members and no committed offsets",
            remote.bootstrap
        )));
    }
    let mut ends = BTreeMap::new();
    let mut known = BTreeMap::new();
    for (topic, offsets) in committed {
        let mut topic_ends = BTreeMap::new();
        for &partition in offsets.keys() {
            let end = remote.offsets(&topic, partition)?.latest;
            topic_ends.insert(partition, end);
        }
        ends.insert(topic.clone(), topic_ends);
        let some: BTreeMap<i32, i64> = offsets
            .into_iter()
            .filter_map(|(p, offset)| Some((p, offset?)))
            .collect();
        known.insert(topic, some);
    }
    let members = description
        .map(|d| {
            d.members
                .into_iter()
                .map(|m| (m.member_id, m.partitions))
                .collect()
        })
        .unwrap_or_default();
    let view = GroupView {
        generation: "-".to_string(),
        members,
        committed: known,
        ends,
    };
    Ok(describe_view(group, &view))
}

/// The group's committed offsets by topic and partition, over every topic the cluster has
/// (internal ones aside); a topic the group has committed nothing for is left out, while
/// a topic it has is listed with every partition (`-` where nothing is committed).
fn committed_offsets(
    remote: &Remote,
    group: &str,
) -> CliResult<BTreeMap<String, BTreeMap<i32, Option<i64>>>> {
    let mut tps = Vec::new();
    let topics = remote
        .cluster
        .topic_partition_counts()
        .map_err(remote.fail())?;
    for (topic, count) in topics {
        if !is_internal_topic(&topic) {
            tps.extend((0..count).map(|p| TopicPartition::new(topic.as_str(), p)));
        }
    }
    let mut committed: BTreeMap<String, BTreeMap<i32, Option<i64>>> = BTreeMap::new();
    if tps.is_empty() {
        return Ok(committed);
    }
    let found = remote
        .cluster
        .committed_offsets(group, &tps)
        .map_err(remote.fail())?;
    let mut all: BTreeMap<String, BTreeMap<i32, Option<i64>>> = BTreeMap::new();
    for (tp, offset) in found {
        all.entry(tp.topic)
            .or_default()
            .insert(tp.partition, offset);
    }
    for (topic, offsets) in all {
        if offsets.values().any(Option::is_some) {
            committed.insert(topic, offsets);
        }
    }
    Ok(committed)
}

/// Commits the new offsets and returns the table of them.
fn reset(remote: &Remote, args: &ResetArgs, target: Target) -> CliResult<String> {
    let count = remote.partition_count(&args.topic)?;
    if let Some(description) = remote
        .cluster
        .describe_group(&args.group)
        .map_err(remote.fail())?
        && !description.members.is_empty()
    {
        return Err(has_members(&args.group, description.members.len()));
    }
    let mut offsets = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for p in 0..count {
        let ends = remote.offsets(&args.topic, p)?;
        let offset = match target {
            Target::Earliest => ends.earliest,
            Target::Latest => ends.latest,
            Target::Offset(n) => n.max(ends.earliest).min(ends.latest),
        };
        offsets.push((TopicPartition::new(args.topic.as_str(), p), offset));
    }
    remote
        .cluster
        .commit_group_offsets(&args.group, &offsets)
        .map_err(remote.fail())?;
    Ok(reset_table(&offsets))
}
