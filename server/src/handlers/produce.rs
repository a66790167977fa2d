//! Produce: each partition's record batch goes to the log as the client encoded it (the log
//! checks its CRC, records and producer sequence, and stores the same bytes). The request is
//! handled in two steps: [`append`] writes every batch in order (so a connection's batches
//! land as it sent them), and [`respond`] waits, when acks=all and the topic's fsync policy
//! ask for it, until the data is durable. The connection answers later requests meanwhile,
//! and all waiters share fsyncs (the log's group commit), run by the log's fsync workers
//! while the waiting answer holds no thread. acks=0 gets no response at all.

use bytes::Bytes;
use futures::FutureExt;
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

/// Where a batch landed and the offset that must be durable before the answer, or the
/// error code and message it was refused with.
type AppendResult = Result<(AppendOutcome, Option<i64>), (i16, String)>;

/// The outcome of [`append`]: per partition, where its batch landed (and the offset that
/// must be durable before the answer) or why it was refused.
#[derive(Debug)]
pub struct Appended {
    version: i16,
    names: Vec<kafka_protocol::protocol::StrBytes>,
    results: Vec<(usize, i32, AppendResult)>,
}

impl Appended {
    /// Whether the answer must wait for an fsync.
    pub fn waits(&self) -> bool {
        self.results
            .iter()
            .any(|(_, _, r)| matches!(r, Ok((_, Some(_)))))
    }
}

/// Appends every partition's batch, in order, without waiting for durability.
pub async fn append(ctx: &Context, version: i16, request: ProduceRequest) -> Appended {
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
    let slots: Vec<(usize, i32)> = appends.iter().map(|a| (a.topic, a.partition)).collect();
    let results = match acks {
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
                            Some(batch) => broker.produce_deferred(topic, a.partition, batch, acks),
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
                // Whether any batch landed is unknown: every partition gets the error, so
                // the client sees a failure for each batch rather than a missing answer.
                tracing::error!(error = %e, "a produce request failed to run");
                failed_all(slots, Code::UnknownServerError.code(), &e.to_string())
            }),
    };
    Appended {
        version,
        names,
        results,
    }
}

/// The same refusal for every partition of a request.
fn failed_all(
    slots: Vec<(usize, i32)>,
    code: i16,
    message: &str,
) -> Vec<(usize, i32, AppendResult)> {
    slots
        .into_iter()
        .map(|(topic, partition)| (topic, partition, Err((code, message.to_string()))))
        .collect()
}

/// Waits for the durability the appends need, then builds the answer. A failed fsync is
/// KAFKA_STORAGE_ERROR for its partition. The waits are futures resolved by the log's fsync
/// workers, awaited side by side: no thread is held while a request waits, and each
/// partition's fsync is shared with that partition's other waiters (group commit).
pub async fn respond(ctx: &Context, mut appended: Appended) -> ProduceResponse {
    if appended.waits() {
        let broker = &ctx.broker;
        let waits: Vec<_> = appended
            .results
            .iter()
            .enumerate()
            .filter_map(|(i, (t, p, r))| match r {
                Ok((_, Some(up_to))) => {
                    // Every result's topic index comes from `names`; were one missing, the
                    // wait fails (never a success without the fsync).
                    let topic = appended.names.get(*t).map_or("", |n| n.as_str());
                    Some(broker.durable(topic, *p, *up_to).map(move |r| (i, r)))
                }
                _ => None,
            })
            .collect();
        for (i, result) in futures::future::join_all(waits).await {
            if let (Err(e), Some(r)) = (result, appended.results.get_mut(i)) {
                tracing::error!(error = %e, "fsync before an acks=all answer failed");
                r.2 = Err((Code::KafkaStorageError.code(), e.to_string()));
            }
        }
    }
    let version = appended.version;
    let mut responses: Vec<TopicProduceResponse> = appended
        .names
        .into_iter()
        .map(|name| TopicProduceResponse::default().with_name(TopicName(name)))
        .collect();
    for (topic, partition, result) in appended.results {
        let response = PartitionProduceResponse::default()
            .with_index(partition)
            .with_log_append_time_ms(-1);
        let response = match result {
            Ok((outcome, _)) => response
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_that_failed_to_run_answers_an_error_for_every_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = sluice_log::Broker::open(dir.path(), sluice_log::BrokerConfig::default())
            .expect("broker");
        let (_tx, appends) = tokio::sync::watch::channel(0);
        let ctx = crate::server::context(
            broker.clone(),
            crate::ServerConfig::default(),
            "localhost".into(),
            9092,
            appends,
        );
        let appended = Appended {
            version: 9,
            names: vec![text("a"), text("b")],
            results: failed_all(
                vec![(0, 0), (0, 1), (1, 3)],
                Code::UnknownServerError.code(),
                "the call panicked",
            ),
        };
        assert!(!appended.waits());
        let response = respond(&ctx, appended).await;
        let error = Code::UnknownServerError.code();
        let seen: Vec<(String, i32, i16, i64)> = response
            .responses
            .iter()
            .flat_map(|t| {
                t.partition_responses
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.index, p.error_code, p.base_offset))
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("a".to_string(), 0, error, -1),
                ("a".to_string(), 1, error, -1),
                ("b".to_string(), 3, error, -1),
            ]
        );
        broker.close().expect("close");
    }
}
