//! The requests a client sends before anything else: ApiVersions, Metadata (which may create
//! topics, as `auto.create.topics.enable` allows), DescribeCluster and FindCoordinator. This
//! server is the only node of its cluster, so it leads every partition and coordinates every
//! group and transactional id.

use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use sluice_log::TopicMetadata;

use crate::context::{Context, NODE_ID, text};
use crate::errors;
use crate::topic_id::topic_id;
use crate::versions::SUPPORTED;

/// The supported versions, as ApiVersions lists them.
pub fn api_version_list() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// ApiVersions.
pub fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_version_list())
}

/// Metadata: the one broker, and the topics asked for (all when the list is null). An
/// unknown topic is created when the request and the server both allow it, with
/// `num.partitions` partitions; otherwise it is UNKNOWN_TOPIC_OR_PARTITION.
pub async fn metadata(ctx: &Context, version: i16, request: MetadataRequest) -> MetadataResponse {
    let allow_create =
        ctx.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let wanted: Option<Vec<String>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .filter_map(|t| t.name.map(|n| n.0.to_string()))
            .collect()
    });
    let partitions = ctx.config.num_partitions;
    let defaults = ctx.config.topic_defaults.clone();
    let topics = ctx
        .blocking(move |broker| match wanted {
            None => broker
                .metadata()
                .into_iter()
                .filter(|t| !t.internal)
                .map(Ok)
                .collect::<Vec<_>>(),
            Some(names) => names
                .into_iter()
                .map(|name| {
                    match broker.topic_metadata(&name) {
                        Err(sluice_log::Error::UnknownTopic { .. }) if allow_create => {
                            match broker.create_topic(&name, defaults.clone().with_partitions(partitions)) {
                                Ok(()) | Err(sluice_log::Error::TopicExists { .. }) => {
                                    tracing::info!(topic = %name, partitions, "auto-created topic (auto.create.topics.enable)");
                                    broker.topic_metadata(&name)
                                }
                                Err(e) => Err(e),
                            }
                        }
                        other => other,
                    }
                    .map_err(|e| (name, e))
                })
                .collect(),
        })
        .await
        .unwrap_or_default();
    let topics = topics
        .into_iter()
        .map(|topic| match topic {
            Ok(meta) => describe_topic(&meta, version),
            Err((name, e)) => MetadataResponseTopic::default()
                .with_name(Some(TopicName(text(name))))
                .with_error_code(errors::code(&e)),
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(ctx.host.clone())
                .with_port(ctx.port),
        ])
        .with_cluster_id(Some(ctx.cluster_id.clone()))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics)
}

/// One topic, with only the fields `version` has (the codec refuses others).
fn describe_topic(meta: &TopicMetadata, version: i16) -> MetadataResponseTopic {
    let partitions = meta
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect();
    let id = if version >= 10 {
        topic_id(&meta.name)
    } else {
        uuid::Uuid::nil()
    };
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(meta.name.clone()))))
        .with_topic_id(id)
        .with_is_internal(meta.internal)
        .with_partitions(partitions)
}

/// DescribeCluster: this one node.
pub fn describe_cluster(ctx: &Context) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(ctx.cluster_id.clone())
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(NODE_ID))
                .with_host(ctx.host.clone())
                .with_port(ctx.port),
        ])
}

/// FindCoordinator: this node, for groups (key type 0) and transactional ids (1), one key
/// (v0–3) or a batch (v4).
pub fn find_coordinator(
    ctx: &Context,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let code = if matches!(request.key_type, 0 | 1) {
        0
    } else {
        Code::InvalidRequest.code()
    };
    if version < 4 {
        let mut response = FindCoordinatorResponse::default().with_error_code(code);
        if code == 0 {
            response = response
                .with_node_id(BrokerId(NODE_ID))
                .with_host(ctx.host.clone())
                .with_port(ctx.port);
        } else {
            response = response.with_node_id(BrokerId(-1));
        }
        return response;
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let c = Coordinator::default().with_key(key).with_error_code(code);
            if code == 0 {
                c.with_node_id(BrokerId(NODE_ID))
                    .with_host(ctx.host.clone())
                    .with_port(ctx.port)
            } else {
                c.with_node_id(BrokerId(-1))
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
