//! Fetch: stored batches go back as they are on disk, never re-encoded. A fetch that finds
//! fewer than `min_bytes` waits (up to `max_wait_ms`) for the next append without holding a
//! thread: it awaits the append signal and reads again. Fetch sessions are not kept
//! (session id 0 always), so every fetch is a full fetch, which Kafka clients accept.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use sluice_log::{Error, FetchedPartition, IsolationLevel, TopicPartition};

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
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut appends = ctx.appends.clone();
    let fetched = loop {
        appends.borrow_and_update();
        let wanted = partitions.clone();
        let fetched = ctx
            .blocking(move |broker| read_once(broker, wanted, max_bytes, isolation))
            .await
            .unwrap_or_default();
        let bytes: usize = fetched
            .iter()
            .filter_map(|f| f.result.as_ref().ok())
            .map(|d| d.records.len())
            .sum();
        let any_error = fetched.iter().any(|f| f.result.is_err());
        if bytes >= min_bytes.max(1) || any_error || tokio::time::Instant::now() >= deadline {
            break fetched;
        }
        if tokio::time::timeout_at(deadline, appends.changed())
            .await
            .is_err()
        {
            // The wait ran out: one last read, so data that came at the very end is not
            // left for the next fetch.
            continue;
        }
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
