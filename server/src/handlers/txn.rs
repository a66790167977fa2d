//! Idempotent and transactional producers: InitProducerId (KIP-360 re-initialisation
//! included), AddPartitionsToTxn (v0–3: one transaction per request), AddOffsetsToTxn,
//! TxnOffsetCommit (generation, member and instance id checked, KIP-447) and EndTxn. Wire
//! clients speak transaction version 1: the producer keeps its epoch from one transaction to
//! the next.

use std::time::Duration;

use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use sluice_log::{Error, ProducerIdAndEpoch, TopicPartition, TxnVersion};

use crate::context::Context;
use crate::errors;
use crate::handlers::commits;

fn flatten<T>(result: Result<Result<T, Error>, crate::context::CallFailed>) -> Result<T, Error> {
    result.map_err(Error::from).and_then(|r| r)
}

/// InitProducerId: a new idempotent producer, a transactional id's producer (fencing older
/// instances), or the re-initialisation of an existing one with its id and epoch (KIP-360).
pub async fn init_producer_id(
    ctx: &Context,
    version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let transactional_id = request.transactional_id.map(|t| t.0.to_string());
    let timeout = Duration::from_millis(u64::try_from(request.transaction_timeout_ms).unwrap_or(0));
    let current = (request.producer_id.0 >= 0).then_some(ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    });
    if transactional_id.is_some() && request.transaction_timeout_ms <= 0 {
        return InitProducerIdResponse::default()
            .with_error_code(Code::InvalidTransactionTimeout.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let result = flatten(
        ctx.blocking(move |broker| {
            broker.init_producer_id_with(transactional_id.as_deref(), timeout, current)
        })
        .await,
    );
    match result {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id.producer_id))
            .with_producer_epoch(id.epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(fenced_for(errors::code(&e), version, 4))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// AddPartitionsToTxn v0–3: every partition gets the same outcome; when some partitions are
/// unknown, the others are OPERATION_NOT_ATTEMPTED, as in Kafka.
pub async fn add_partitions(
    ctx: &Context,
    version: i16,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let transactional_id = request.v3_and_below_transactional_id.0.to_string();
    let producer = ProducerIdAndEpoch {
        producer_id: request.v3_and_below_producer_id.0,
        epoch: request.v3_and_below_producer_epoch,
    };
    let topics: Vec<(String, Vec<i32>)> = request
        .v3_and_below_topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.clone()))
        .collect();
    let asked = topics.clone();
    let codes: Vec<Vec<i16>> = flatten(
        ctx.blocking(move |broker| {
            // Unknown partitions first: they fail alone and the rest is not attempted.
            let known: Vec<Vec<bool>> = topics
                .iter()
                .map(|(name, partitions)| {
                    let count = broker.partition_count(name).unwrap_or(0);
                    partitions.iter().map(|&p| p >= 0 && p < count).collect()
                })
                .collect();
            if known.iter().flatten().any(|ok| !ok) {
                return Ok(known
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .map(|ok| {
                                if ok {
                                    Code::OperationNotAttempted.code()
                                } else {
                                    Code::UnknownTopicOrPartition.code()
                                }
                            })
                            .collect()
                    })
                    .collect());
            }
            let partitions: Vec<TopicPartition> = topics
                .iter()
                .flat_map(|(name, ps)| ps.iter().map(|&p| TopicPartition::new(name.clone(), p)))
                .collect();
            let code = errors::code_or_none(&broker.add_partitions_to_txn(
                &transactional_id,
                producer,
                &partitions,
            ));
            Ok(topics.iter().map(|(_, ps)| vec![code; ps.len()]).collect())
        })
        .await,
    )
    .unwrap_or_else(|e| {
        asked
            .iter()
            .map(|(_, ps)| vec![errors::code(&e); ps.len()])
            .collect()
    });
    let results = asked
        .into_iter()
        .zip(codes)
        .map(|((name, partitions), codes)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(kafka_protocol::messages::TopicName(crate::context::text(
                    name,
                )))
                .with_results_by_partition(
                    partitions
                        .into_iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(fenced_for(code, version, 2))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddOffsetsToTxn.
pub async fn add_offsets(
    ctx: &Context,
    version: i16,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let producer = ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    };
    let result = flatten(
        ctx.blocking(move |broker| {
            broker.add_offsets_to_txn(&request.transactional_id.0, producer, &request.group_id.0)
        })
        .await,
    );
    AddOffsetsToTxnResponse::default().with_error_code(fenced_for(
        errors::code_or_none(&result),
        version,
        2,
    ))
}

/// TxnOffsetCommit. Unknown partitions and oversized metadata are refused per partition,
/// as by OffsetCommit.
pub async fn txn_offset_commit(
    ctx: &Context,
    version: i16,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let producer = ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    };
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
    let transactional_id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let member = request.member_id.to_string();
    let instance = request.group_instance_id.as_ref().map(|i| i.to_string());
    let generation = request.generation_id;
    let codes = ctx
        .blocking(move |broker| {
            let (known, refused) = commits::check_commit_partitions(broker, offsets);
            let result = broker.txn_offset_commit_with_instance(
                &transactional_id,
                producer,
                &group,
                generation,
                &member,
                instance.as_deref(),
                &known,
            );
            commits::CommitCodes::new(errors::code_or_none(&result), refused)
        })
        .await
        .unwrap_or_else(|e| commits::CommitCodes::new(errors::code(&Error::from(e)), Vec::new()))
        .map_code(|code| fenced_for(code, version, 3));
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let codes = codes.topic(&topic.name.0);
            TxnOffsetCommitResponseTopic::default()
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(codes.of(p.partition_index))
                        })
                        .collect(),
                )
                .with_name(topic.name)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// PRODUCER_FENCED exists from the version given on (KIP-588); an older request gets
/// INVALID_PRODUCER_EPOCH, the code its client knows, as Kafka answers it.
fn fenced_for(code: i16, version: i16, since: i16) -> i16 {
    if code == Code::ProducerFenced.code() && version < since {
        Code::InvalidProducerEpoch.code()
    } else {
        code
    }
}

/// EndTxn (transaction version 1: the epoch stays).
pub async fn end_txn(ctx: &Context, version: i16, request: EndTxnRequest) -> EndTxnResponse {
    let producer = ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    };
    let commit = request.committed;
    let result = flatten(
        ctx.blocking(move |broker| {
            broker.end_txn_with(
                &request.transactional_id.0,
                producer,
                commit,
                TxnVersion::V1,
            )
        })
        .await,
    );
    EndTxnResponse::default()
        .with_error_code(fenced_for(errors::code_or_none(&result), version, 2))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
