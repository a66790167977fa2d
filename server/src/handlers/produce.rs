//! Produce: each partition's record batch goes to the log as the client encoded it (the log
//! checks its CRC, records and producer sequence, and stores the same bytes). acks=all waits
//! for the topic's fsync policy; acks=0 gets no response at all (the dispatcher drops it).

use bytes::Bytes;
use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use sluice_log::{Acks, AppendOutcome, Error};

use crate::context::{Context, text};
use crate::errors;

/// One partition's batch, and where its answer goes.
struct Append {
    topic: usize,
    partition: i32,
    records: Option<Bytes>,
}

/// Produce.
pub async fn produce(ctx: &Context, version: i16, request: ProduceRequest) -> ProduceResponse {
    let acks = match request.acks {
        -1 => Some(Acks::All),
        0 | 1 => Some(Acks::Leader),
        _ => None,
    };
    let mut names = Vec::with_capacity(request.topic_data.len());
    let mut appends = Vec::new();
    for (i, topic) in request.topic_data.into_iter().enumerate() {
        names.push(topic.name.0);
        for p in topic.partition_data {
            appends.push(Append {
                topic: i,
                partition: p.index,
                records: p.records,
            });
        }
    }
    let max = ctx.config.message_max_bytes;
    let topics: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let results: Vec<(usize, i32, Result<AppendOutcome, (i16, String)>)> = match acks {
        None => appends
            .into_iter()
            .map(|a| {
                let refused = (
                    Code::InvalidRequiredAcks.code(),
                    format!("acks={} is not -1, 0 or 1", request.acks),
                );
                (a.topic, a.partition, Err(refused))
            })
            .collect(),
        Some(acks) => ctx
            .blocking(move |broker| {
                appends
                    .into_iter()
                    .map(|a| {
                        let topic = &topics[a.topic];
                        let result = match a.records {
                            None => Err(Error::UnsupportedBatch {
                                topic: topic.clone(),
                                partition: a.partition,
                                reason: "a produce request without records",
                            }),
                            Some(batch) if batch.len() > max => Err(Error::RecordTooLarge {
                                topic: topic.clone(),
                                partition: a.partition,
                                size: batch.len(),
                                max,
                            }),
                            Some(batch) => {
                                broker.produce_with_acks(topic, a.partition, batch, acks)
                            }
                        };
                        let result = result.map_err(|e| {
                            tracing::debug!(error = %e, "produce refused");
                            (errors::code(&e), e.to_string())
                        });
                        (a.topic, a.partition, result)
                    })
                    .collect()
            })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "a produce request failed to run");
                Vec::new()
            }),
    };
    let mut responses: Vec<TopicProduceResponse> = names
        .into_iter()
        .map(|name| TopicProduceResponse::default().with_name(TopicName(name)))
        .collect();
    for (topic, partition, result) in results {
        let response = PartitionProduceResponse::default()
            .with_index(partition)
            .with_log_append_time_ms(-1);
        let response = match result {
            Ok(outcome) => response
                .with_base_offset(outcome.base_offset)
                .with_log_start_offset(if version >= 5 {
                    outcome.log_start_offset
                } else {
                    -1
                }),
            Err((code, message)) => response
                .with_error_code(code)
                .with_base_offset(-1)
                .with_log_start_offset(-1)
                .with_error_message((version >= 8).then(|| text(message))),
        };
        if let Some(t) = responses.get_mut(topic) {
            t.partition_responses.push(response);
        }
    }
    ProduceResponse::default().with_responses(responses)
}
