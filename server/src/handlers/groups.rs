//! Consumer groups over Kafka's classic protocol: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups and DeleteGroups. The
//! join barrier, the leader, the generations and the timeouts live in the log's group
//! coordinator, which embedded consumers share; the handlers translate. Join and sync wait
//! for the other members: they are awaited on the reactor ([`Context::parked`]), holding no
//! thread while they wait. OffsetCommit's per-partition checks and codes are in
//! [`super::commits`].

use std::time::Duration;

use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use sluice_log::group::ClassicJoinRequest;
use sluice_log::{Error, TopicPartition};

use super::commits::{CommitCodes, check_commit_partitions};
use crate::context::{Context, text};
use crate::errors;

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Who sent a JoinGroup: DescribeGroups shows it per member.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The request header's client id.
    pub client_id: String,
    /// The client's IP address.
    pub host: String,
}

/// JoinGroup. v0 has no rebalance timeout: it is the session timeout, as in Kafka.
pub async fn join(
    ctx: &Context,
    version: i16,
    request: JoinGroupRequest,
    caller: Caller,
) -> JoinGroupResponse {
    let rebalance_ms = if version == 0 {
        request.session_timeout_ms
    } else {
        request.rebalance_timeout_ms
    };
    let join = ClassicJoinRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout: millis(request.session_timeout_ms),
        rebalance_timeout: millis(rebalance_ms),
        client_id: caller.client_id,
        client_host: format!("/{}", caller.host),
        require_known_member_id: version >= 4,
    };
    let result = ctx
        .parked(move |broker| broker.begin_classic_join_group(join))
        .await;
    match result {
        Ok(joined) => JoinGroupResponse::default()
            .with_generation_id(joined.generation_id)
            .with_protocol_type((version >= 7).then(|| text(joined.protocol_type)))
            .with_protocol_name(Some(text(joined.protocol_name)))
            .with_leader(text(joined.leader))
            .with_skip_assignment(version >= 9 && joined.skip_assignment)
            .with_member_id(text(joined.member_id))
            .with_members(
                joined
                    .members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(text(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(text))
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Err(e) => {
            let member_id = match &e {
                Error::MemberIdRequired { member_id, .. } => member_id.clone(),
                _ => String::new(),
            };
            JoinGroupResponse::default()
                .with_error_code(errors::code(&e))
                .with_generation_id(-1)
                .with_member_id(text(member_id))
                .with_protocol_name(if version >= 7 { None } else { Some(text("")) })
        }
    }
}

/// SyncGroup.
pub async fn sync(ctx: &Context, version: i16, request: SyncGroupRequest) -> SyncGroupResponse {
    let group = request.group_id.0.to_string();
    let member = request.member_id.to_string();
    let instance = request.group_instance_id.map(|i| i.to_string());
    let protocol_type = request.protocol_type.map(|p| p.to_string());
    let protocol_name = request.protocol_name.map(|p| p.to_string());
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let result = ctx
        .parked(move |broker| {
            broker.begin_classic_sync_group(
                &group,
                &member,
                instance.as_deref(),
                request.generation_id,
                protocol_type.as_deref(),
                protocol_name.as_deref(),
                assignments,
            )
        })
        .await;
    match result {
        Ok(synced) if version >= 5 => SyncGroupResponse::default()
            .with_protocol_type(Some(text(synced.protocol_type)))
            .with_protocol_name(Some(text(synced.protocol_name)))
            .with_assignment(synced.assignment),
        Ok(synced) => SyncGroupResponse::default().with_assignment(synced.assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(errors::code(&e)),
    }
}

/// Heartbeat.
pub async fn heartbeat(ctx: &Context, request: HeartbeatRequest) -> HeartbeatResponse {
    let result = ctx
        .blocking(move |broker| {
            broker.classic_heartbeat(
                &request.group_id.0,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            )
        })
        .await
        .map_err(Error::from)
        .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(errors::code_or_none(&result))
}

/// LeaveGroup: one member (v0–2) or a batch (v3+, KIP-345).
pub async fn leave(ctx: &Context, version: i16, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let group = request.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version < 3 {
        vec![(request.member_id.to_string(), None)]
    } else {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    };
    let asked = members.clone();
    let results = ctx
        .blocking(move |broker| broker.classic_leave_group(&group, &members))
        .await
        .unwrap_or_default();
    if version < 3 {
        let code = results
            .first()
            .map_or(Code::UnknownServerError.code(), errors::code_or_none);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = asked
        .into_iter()
        .zip(
            results
                .iter()
                .map(errors::code_or_none)
                .chain(std::iter::repeat(Code::UnknownServerError.code())),
        )
        .map(|((member_id, instance), code)| {
            MemberResponse::default()
                .with_member_id(text(member_id))
                .with_group_instance_id(instance.map(text))
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// OffsetCommit: committed for the group's current generation (or by a standalone
/// consumer: generation -1, no member id); a replaced static member (v7+ names its
/// instance id) is FENCED_INSTANCE_ID.
pub async fn offset_commit(ctx: &Context, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let generation = request.generation_id_or_member_epoch;
    let member = request.member_id.to_string();
    let instance = request.group_instance_id.as_ref().map(|i| i.to_string());
    let mut offsets = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            offsets.push((
                TopicPartition::new(topic.name.0.to_string(), p.partition_index),
                p.committed_offset,
                p.committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            ));
        }
    }
    let codes = ctx
        .blocking(move |broker| {
            let (known, refused) = check_commit_partitions(broker, offsets);
            let result = broker.offset_commit_with_instance(
                &group,
                generation,
                &member,
                instance.as_deref(),
                &known,
            );
            CommitCodes::new(errors::code_or_none(&result), refused)
        })
        .await
        .unwrap_or_else(|e| CommitCodes::new(errors::code(&Error::from(e)), Vec::new()));
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let codes = codes.topic(&topic.name.0);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.of(p.partition_index))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch: one group (v0–7) or several (v8). No committed offset is -1.
pub async fn offset_fetch(
    ctx: &Context,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let require_stable = request.require_stable;
    type Asked = (String, Option<Vec<TopicPartition>>);
    let asked: Vec<Asked> = if version >= 8 {
        request
            .groups
            .into_iter()
            .map(|g| {
                let partitions = g.topics.map(|topics| {
                    topics
                        .into_iter()
                        .flat_map(|t| {
                            let name = t.name.0.to_string();
                            t.partition_indexes
                                .into_iter()
                                .map(move |p| TopicPartition::new(name.clone(), p))
                        })
                        .collect()
                });
                (g.group_id.0.to_string(), partitions)
            })
            .collect()
    } else {
        let partitions = request.topics.map(|topics| {
            topics
                .into_iter()
                .flat_map(|t| {
                    let name = t.name.0.to_string();
                    t.partition_indexes
                        .into_iter()
                        .map(move |p| TopicPartition::new(name.clone(), p))
                })
                .collect()
        });
        vec![(request.group_id.0.to_string(), partitions)]
    };
    let fetched = ctx
        .blocking(move |broker| {
            asked
                .into_iter()
                .map(|(group, partitions)| {
                    let all = partitions.is_none();
                    let wanted = partitions.unwrap_or_default();
                    let result =
                        broker
                            .offset_fetch(&group, &wanted, require_stable)
                            .map(|offsets| {
                                offsets
                                    .into_iter()
                                    .map(|(tp, offset)| {
                                        let metadata = broker.committed_metadata(&group, &tp);
                                        (tp, offset, metadata)
                                    })
                                    .collect()
                            });
                    (group, all, wanted, result)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
    if version >= 8 {
        let groups = fetched
            .into_iter()
            .map(|(group, _, wanted, result)| {
                let (code, offsets) = split(wanted, result);
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(text(group)))
                    .with_error_code(code)
                    .with_topics(
                        by_topic(offsets)
                            .into_iter()
                            .map(|(name, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(text(name)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, f)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(f.offset)
                                                    .with_committed_leader_epoch(-1)
                                                    .with_metadata(Some(text(f.metadata)))
                                                    .with_error_code(f.code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let Some((_, _, wanted, result)) = fetched.into_iter().next() else {
        return OffsetFetchResponse::default().with_error_code(Code::UnknownServerError.code());
    };
    let (code, offsets) = split(wanted, result);
    let topics = by_topic(offsets)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(text(name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, f)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(text(f.metadata)))
                                .with_error_code(f.code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_error_code(code)
        .with_topics(topics)
}

/// The group-level error code, and per partition `(partition, offset, code)`. An unstable
/// offset (a transactional commit still open) is reported per partition, as Kafka does.
fn split(
    wanted: Vec<TopicPartition>,
    result: Result<Vec<(TopicPartition, Option<i64>, String)>, Error>,
) -> (i16, Vec<(TopicPartition, Fetched)>) {
    match result {
        Ok(offsets) => (
            0,
            offsets
                .into_iter()
                .map(|(tp, offset, metadata)| {
                    let fetched = Fetched {
                        offset: offset.unwrap_or(-1),
                        metadata,
                        code: 0,
                    };
                    (tp, fetched)
                })
                .collect(),
        ),
        Err(e @ Error::UnstableOffsetCommit { .. }) => {
            let code = errors::code(&e);
            let unstable = |tp| {
                let fetched = Fetched {
                    offset: -1,
                    metadata: String::new(),
                    code,
                };
                (tp, fetched)
            };
            (0, wanted.into_iter().map(unstable).collect())
        }
        Err(e) => (errors::code(&e), Vec::new()),
    }
}

/// One partition's committed offset, its metadata and its error code.
struct Fetched {
    offset: i64,
    metadata: String,
    code: i16,
}

fn by_topic(offsets: Vec<(TopicPartition, Fetched)>) -> Vec<(String, Vec<(i32, Fetched)>)> {
    let mut topics: Vec<(String, Vec<(i32, Fetched)>)> = Vec::new();
    for (tp, fetched) in offsets {
        match topics.iter_mut().find(|(name, _)| *name == tp.topic) {
            Some((_, partitions)) => partitions.push((tp.partition, fetched)),
            None => topics.push((tp.topic, vec![(tp.partition, fetched)])),
        }
    }
    topics
}

/// DescribeGroups.
pub fn describe(ctx: &Context, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|group| {
            let d = ctx.broker.describe_group(&group.0);
            DescribedGroup::default()
                .with_group_id(group)
                .with_group_state(text(d.state))
                .with_protocol_type(text(d.protocol_type))
                .with_protocol_data(text(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(text(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(text))
                                .with_client_id(text(m.client_id))
                                .with_client_host(text(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// ListGroups, filtered by state when the request asks (v4).
pub fn list(ctx: &Context, version: i16, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let groups = ctx
        .broker
        .list_groups_detailed()
        .into_iter()
        .filter(|(_, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
        .map(|(name, state, protocol_type)| {
            ListedGroup::default()
                .with_group_id(GroupId(text(name)))
                .with_protocol_type(text(protocol_type))
                .with_group_state(if version >= 4 { text(state) } else { text("") })
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups.
pub async fn delete(ctx: &Context, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let names: Vec<String> = request
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .collect();
    let results = ctx
        .blocking(move |broker| {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            broker.delete_groups(&refs)
        })
        .await
        .unwrap_or_default();
    let results = results
        .into_iter()
        .map(|(group, result)| {
            DeletableGroupResult::default()
                .with_group_id(GroupId(text(group)))
                .with_error_code(errors::code_or_none(&result))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
