//! Fetch: stored batches go back as they are on disk, never re-encoded. A fetch that finds
//! fewer than `min_bytes` waits (up to `max_wait_ms`) for the next append without holding a
//! thread: it awaits the append signal and reads again. As in Kafka, it answers at once when
//! `min_bytes` is 0 or less, `max_wait_ms` is 0 or less, it names no partition, or a
//! partition has an error. The response's budget is the client's `max_bytes` lowered to
//! `fetch.max.bytes` (the first batch found still goes out whole). Fetch sessions are not
//! kept (session id 0 always), so every fetch is a full fetch, which Kafka clients accept.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use sluice_log::{Error, FetchedPartition, IsolationLevel, TopicPartition};
use tokio::sync::watch;

use crate::context::Context;
use crate::errors;

/// Fetch.
pub async fn fetch(ctx: &Context, version: i16, request: FetchRequest) -> FetchResponse {
    let isolation = if request.isolation_level == 1 {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut order: Vec<(TopicName, Vec<i32>)> = Vec::with_capacity(request.topics.len());
    let mut partitions = Vec::new();
    for topic in request.topics {
        let name = topic.topic.0.to_string();
        let mut ids = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            ids.push(p.partition);
            let limit = usize::try_from(p.partition_max_bytes).unwrap_or(0);
            partitions.push((
                TopicPartition::new(name.clone(), p.partition),
                p.fetch_offset,
                limit,
            ));
        }
        order.push((topic.topic, ids));
    }
    // Kafka's fetch.max.bytes caps what the client asks for.
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(ctx.config.fetch_max_bytes)
        .max(1);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut appends = ctx.appends.clone();
    let fetched = loop {
        appends.borrow_and_update();
        let wanted = partitions.clone();
        let fetched = match ctx
            .blocking(move |broker| read_once(broker, wanted, max_bytes, isolation))
            .await
        {
            Ok(fetched) => fetched,
            Err(e) => {
                // `respond` answers UNKNOWN_SERVER_ERROR for every partition.
                tracing::error!(error = %e, "a fetch failed to run");
                break Vec::new();
            }
        };
        let bytes: usize = fetched
            .iter()
            .filter_map(|f| f.result.as_ref().ok())
            .map(|d| d.records.len())
            .sum();
        let any_error = fetched.iter().any(|f| f.result.is_err());
        if bytes >= min_bytes
            || partitions.is_empty()
            || any_error
            || tokio::time::Instant::now() >= deadline
        {
            break fetched;
        }
        // Read again after an append, or once more at the deadline, so data that came at
        // the very end of the wait is not left for the next fetch.
        wait_for_append(&mut appends, deadline).await;
    };
    let mut response = respond(order, fetched, isolation);
    if version < 5 {
        // The log start offset is a v5 field; the codec refuses it before.
        for topic in &mut response.responses {
            for p in &mut topic.partitions {
                p.log_start_offset = -1;
            }
        }
    }
    response
}

/// Waits for the next append to the log, or until `deadline`. When the append signal is
/// gone (its watcher thread could not start), nothing can wake the fetch earlier: it waits
/// out the deadline rather than reading again and again.
async fn wait_for_append(appends: &mut watch::Receiver<u64>, deadline: tokio::time::Instant) {
    match tokio::time::timeout_at(deadline, appends.changed()).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(_)) => tokio::time::sleep_until(deadline).await,
    }
}

/// Reads every partition once, without waiting, within the response's byte budget.
fn read_once(
    broker: &sluice_log::Broker,
    partitions: Vec<(TopicPartition, i64, usize)>,
    max_bytes: usize,
    isolation: IsolationLevel,
) -> Vec<FetchedPartition> {
    let mut budget = max_bytes;
    let mut any_data = false;
    partitions
        .into_iter()
        .map(|(tp, offset, limit)| {
            // As Kafka: the first partition with data returns at least one batch, however
            // large; once the response's budget is spent, the rest return offsets only.
            let limit = if any_data && budget == 0 {
                0
            } else if any_data {
                limit.min(budget)
            } else {
                limit.min(budget).max(1)
            };
            let mut result =
                broker.read_isolated(&tp.topic, tp.partition, offset, limit, isolation);
            if any_data && let Ok(data) = &mut result {
                // The log hands out at least one batch; past the first, only whole batches
                // within the budget go out.
                data.records = whole_batches_within(std::mem::take(&mut data.records), budget);
            }
            if let Ok(data) = &result {
                budget = budget.saturating_sub(data.records.len());
                any_data |= !data.records.is_empty();
            }
            FetchedPartition {
                partition: tp,
                fetch_offset: offset,
                result,
            }
        })
        .collect()
}

/// The leading whole batches of `records` that fit in `budget` bytes.
fn whole_batches_within(records: Bytes, budget: usize) -> Bytes {
    let mut kept = 0usize;
    while let Ok(header) = sluice_log::batch::BatchHeader::parse(&records[kept..]) {
        let next = kept + header.total_len();
        if next > budget || next > records.len() {
            break;
        }
        kept = next;
    }
    records.slice(..kept)
}

fn respond(
    order: Vec<(TopicName, Vec<i32>)>,
    fetched: Vec<FetchedPartition>,
    isolation: IsolationLevel,
) -> FetchResponse {
    let mut fetched = fetched.into_iter();
    let responses = order
        .into_iter()
        .map(|(name, ids)| {
            let partitions = ids
                .into_iter()
                .map(|id| match fetched.next() {
                    Some(f) => partition_data(id, f.result, isolation),
                    None => PartitionData::default()
                        .with_partition_index(id)
                        .with_error_code(kafka_protocol::ResponseError::UnknownServerError.code()),
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

fn partition_data(
    id: i32,
    result: Result<sluice_log::PartitionData, Error>,
    isolation: IsolationLevel,
) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(id)
        .with_preferred_read_replica(BrokerId(-1));
    match result {
        Ok(data) => {
            let aborted = (isolation == IsolationLevel::ReadCommitted).then(|| {
                data.aborted_transactions
                    .iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect()
            });
            base.with_high_watermark(data.high_watermark)
                .with_last_stable_offset(data.last_stable_offset)
                .with_log_start_offset(data.log_start_offset)
                .with_aborted_transactions(aborted)
                .with_records(Some(data.records))
        }
        // As Kafka: a partition with an error carries no offsets.
        Err(e) => base
            .with_error_code(errors::code(&e))
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_records(Some(Bytes::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_an_append_signal_the_wait_lasts_until_the_deadline() {
        let (tx, mut rx) = watch::channel(0u64);
        drop(tx);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        wait_for_append(&mut rx, deadline).await;
        assert!(tokio::time::Instant::now() >= deadline);
    }
}
