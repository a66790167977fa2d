//! Topic administration: CreateTopics (with Kafka-named configs, `validate_only`, and -1 for
//! the broker's default partitions), DeleteTopics (by name), CreatePartitions and
//! DescribeConfigs (a topic's configs, or the broker's defaults for resource type BROKER).

use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    TopicName,
};
use sluice_log::Error;

use crate::context::{Context, text};
use crate::errors;
use crate::topic_configs;
use crate::topic_id::topic_id;

/// Kafka's DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// CreateTopics.
pub async fn create_topics(
    ctx: &Context,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let default_partitions = ctx.config.num_partitions;
    let max_partitions = ctx.config.max_partitions_per_topic;
    let validate_only = request.validate_only;
    let defaults = ctx.config.topic_defaults.clone();
    let topics = ctx
        .blocking(move |broker| {
            request
                .topics
                .into_iter()
                .map(|topic| {
                    let name = topic.name.0.to_string();
                    let mut config = defaults.clone();
                    let built = (|| {
                        config.partitions = match topic.num_partitions {
                            -1 if !topic.assignments.is_empty() => topic.assignments.len() as i32,
                            -1 => default_partitions,
                            n => n,
                        };
                        if config.partitions < 1 {
                            return Err((
                                Code::InvalidPartitions.code(),
                                format!("{} partitions: a topic needs at least one", topic.num_partitions),
                            ));
                        }
                        if config.partitions > max_partitions {
                            return Err((
                                Code::InvalidPartitions.code(),
                                format!(
                                    "{} partitions is over this broker's limit of {max_partitions} per topic",
                                    config.partitions
                                ),
                            ));
                        }
                        if topic.replication_factor == 0 || topic.replication_factor < -1 {
                            return Err((
                                Code::InvalidReplicationFactor.code(),
                                format!("replication factor {} is not valid", topic.replication_factor),
                            ));
                        }
                        if !matches!(topic.replication_factor, -1 | 1) {
                            return Err((
                                Code::InvalidReplicationFactor.code(),
                                format!(
                                    "replication factor {} is not possible on a single-node cluster",
                                    topic.replication_factor
                                ),
                            ));
                        }
                        // A manual assignment can only name this node, once per partition.
                        let on_this_node = topic.assignments.iter().enumerate().all(|(i, a)| {
                            a.partition_index == i as i32
                                && a.broker_ids.len() == 1
                                && a.broker_ids[0].0 == crate::context::NODE_ID
                        });
                        if !topic.assignments.is_empty()
                            && (!on_this_node || topic.num_partitions != -1)
                        {
                            return Err((
                                Code::InvalidReplicaAssignment.code(),
                                format!(
                                    "a replica assignment must give each partition 0..n, in order, this broker (node {}) alone, with num_partitions -1",
                                    crate::context::NODE_ID
                                ),
                            ));
                        }
                        for c in &topic.configs {
                            topic_configs::apply(&mut config, &c.name, c.value.as_deref())
                                .map_err(|e| (errors::code(&e), e.to_string()))?;
                        }
                        sluice_log::validate_topic_name(&name)
                            .and_then(|()| config.validate())
                            .map_err(|e| (errors::code(&e), e.to_string()))?;
                        if validate_only {
                            return match broker.topic_metadata(&name) {
                                Ok(_) => Err((
                                    Code::TopicAlreadyExists.code(),
                                    format!("topic `{name}` already exists"),
                                )),
                                Err(_) => Ok(()),
                            };
                        }
                        broker
                            .create_topic(&name, config.clone())
                            .map_err(|e| (errors::code(&e), e.to_string()))
                    })();
                    let result = CreatableTopicResult::default()
                        .with_name(TopicName(text(name.clone())))
                        .with_topic_id(topic_id(&name));
                    match built {
                        Ok(()) => result
                            .with_num_partitions(config.partitions)
                            .with_replication_factor(1)
                            .with_configs(Some(
                                topic_configs::describe(&config)
                                    .into_iter()
                                    .map(|(name, value, default)| {
                                        CreatableTopicConfigs::default()
                                            .with_name(text(name))
                                            .with_value(Some(text(value)))
                                            .with_config_source(if default {
                                                SOURCE_DEFAULT
                                            } else {
                                                SOURCE_TOPIC
                                            })
                                    })
                                    .collect(),
                            )),
                        Err((code, message)) => result
                            .with_error_code(code)
                            .with_error_message(Some(text(message)))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1),
                    }
                })
                .collect()
        })
        .await
        .unwrap_or_default();
    let mut response = CreateTopicsResponse::default().with_topics(topics);
    for t in &mut response.topics {
        // Fields of later versions; the codec refuses them before.
        if version < 7 {
            t.topic_id = uuid::Uuid::nil();
        }
        if version < 5 {
            t.num_partitions = -1;
            t.replication_factor = -1;
            t.configs = None;
            t.topic_config_error_code = 0;
        }
    }
    response
}

/// DeleteTopics. Topics named by id only (v6) are UNKNOWN_TOPIC_ID: the log names topics.
pub async fn delete_topics(
    ctx: &Context,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut names: Vec<Option<String>> = request
        .topic_names
        .into_iter()
        .map(|n| Some(n.0.to_string()))
        .collect();
    if version >= 6 {
        names.extend(
            request
                .topics
                .into_iter()
                .map(|t| t.name.map(|n| n.0.to_string())),
        );
    }
    let responses = ctx
        .blocking(move |broker| {
            names
                .into_iter()
                .map(|name| match name {
                    Some(name) => {
                        let result = broker.delete_topic(&name);
                        let response = DeletableTopicResult::default()
                            .with_name(Some(TopicName(text(name.clone()))))
                            .with_topic_id(topic_id(&name))
                            .with_error_code(errors::code_or_none(&result));
                        match result {
                            Ok(()) => response,
                            Err(e) => response.with_error_message(Some(text(e.to_string()))),
                        }
                    }
                    None => DeletableTopicResult::default()
                        .with_error_code(Code::UnknownTopicId.code())
                        .with_error_message(Some(text("topics are deleted by name on sluice"))),
                })
                .collect()
        })
        .await
        .unwrap_or_default();
    let mut response = DeleteTopicsResponse::default().with_responses(responses);
    for r in &mut response.responses {
        if version < 6 {
            r.topic_id = uuid::Uuid::nil();
        }
        if version < 5 {
            r.error_message = None;
        }
    }
    response
}

/// CreatePartitions: grows a topic to `count` partitions.
pub async fn create_partitions(
    ctx: &Context,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let validate_only = request.validate_only;
    let max_partitions = ctx.config.max_partitions_per_topic;
    let results = ctx
        .blocking(move |broker| {
            request
                .topics
                .into_iter()
                .map(|topic| {
                    let name = topic.name.0.to_string();
                    let result = if topic.count > max_partitions {
                        Err(Error::InvalidPartitions {
                            topic: name.clone(),
                            current: broker.partition_count(&name).unwrap_or(0),
                            requested: topic.count,
                            reason: "over this broker's limit of partitions per topic",
                        })
                    } else if validate_only {
                        broker.partition_count(&name).and_then(|current| {
                            if topic.count > current {
                                Ok(())
                            } else {
                                Err(Error::InvalidPartitions {
                                    topic: name.clone(),
                                    current,
                                    requested: topic.count,
                                    reason: "partitions can only grow",
                                })
                            }
                        })
                    } else {
                        broker.create_partitions(&name, topic.count)
                    };
                    let response = CreatePartitionsTopicResult::default()
                        .with_name(topic.name)
                        .with_error_code(errors::code_or_none(&result));
                    match result {
                        Ok(()) => response,
                        Err(e) => response.with_error_message(Some(text(e.to_string()))),
                    }
                })
                .collect()
        })
        .await
        .unwrap_or_default();
    CreatePartitionsResponse::default().with_results(results)
}

/// DescribeConfigs: a topic's configs, or the broker's topic defaults.
pub fn describe_configs(ctx: &Context, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let defaults = &ctx.config.topic_defaults;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let (configs, topic_level) = match resource.resource_type {
                RESOURCE_TOPIC => match ctx.broker.topic_metadata(&resource.resource_name) {
                    Ok(meta) => (topic_configs::describe(&meta.config), true),
                    Err(e) => {
                        return result
                            .with_error_code(errors::code(&e))
                            .with_error_message(Some(text(e.to_string())));
                    }
                },
                RESOURCE_BROKER => (topic_configs::describe(defaults), false),
                other => {
                    return result
                        .with_error_code(Code::InvalidRequest.code())
                        .with_error_message(Some(text(format!(
                            "resource type {other} is not supported (topic = 2, broker = 4)"
                        ))));
                }
            };
            let wanted = resource.configuration_keys;
            let configs = configs
                .into_iter()
                .filter(|(name, _, _)| {
                    wanted
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == *name))
                })
                .map(|(name, value, default)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(text(name))
                        .with_value(Some(text(value)))
                        .with_read_only(!topic_level)
                        .with_config_source(if default || !topic_level {
                            SOURCE_DEFAULT
                        } else {
                            SOURCE_TOPIC
                        })
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
