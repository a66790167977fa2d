//! ListOffsets (earliest, latest, by timestamp, max timestamp), OffsetForLeaderEpoch and
//! DeleteRecords. This node has led every partition since it was created, at leader epoch 0.

use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use sluice_log::{Broker, Error, OffsetSpec};

use crate::context::Context;
use crate::errors;

/// Kafka's special timestamps in ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// ListOffsets. Under read_committed, "latest" is the last stable offset, as in Kafka.
pub async fn list_offsets(
    ctx: &Context,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = request.isolation_level == 1;
    // Leader epochs exist from v4 on; the codec refuses them in older versions.
    let epoch = if version >= 4 { 0 } else { -1 };
    let topics = ctx
        .blocking(move |broker| {
            request
                .topics
                .into_iter()
                .map(|topic| {
                    let name = topic.name.0.to_string();
                    let partitions = topic
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let found = lookup(
                                broker,
                                &name,
                                p.partition_index,
                                p.timestamp,
                                read_committed,
                            );
                            let response = ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index);
                            match found {
                                Ok(Some((offset, timestamp))) => response
                                    .with_offset(offset)
                                    .with_timestamp(timestamp)
                                    .with_leader_epoch(epoch),
                                Ok(None) => response
                                    .with_offset(-1)
                                    .with_timestamp(-1)
                                    .with_leader_epoch(-1),
                                Err(code) => response
                                    .with_error_code(code)
                                    .with_offset(-1)
                                    .with_timestamp(-1)
                                    .with_leader_epoch(-1),
                            }
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(topic.name)
                        .with_partitions(partitions)
                })
                .collect()
        })
        .await
        .unwrap_or_default();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp)` for one partition; `None` when no record has a timestamp that late.
fn lookup(
    broker: &Broker,
    topic: &str,
    partition: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<Option<(i64, i64)>, i16> {
    let spec = match timestamp {
        LATEST if read_committed => {
            let meta = broker.topic_metadata(topic).map_err(|e| errors::code(&e))?;
            let info = usize::try_from(partition)
                .ok()
                .and_then(|i| meta.partitions.get(i))
                .ok_or(Code::UnknownTopicOrPartition.code())?;
            return Ok(Some((info.last_stable_offset, -1)));
        }
        LATEST => OffsetSpec::Latest,
        EARLIEST | EARLIEST_LOCAL => OffsetSpec::Earliest,
        MAX_TIMESTAMP => OffsetSpec::MaxTimestamp,
        ts if ts >= 0 => OffsetSpec::Timestamp(ts),
        _ => return Err(Code::UnsupportedVersion.code()),
    };
    broker
        .list_offsets(topic, partition, spec)
        .map(|found| found.map(|l| (l.offset, l.timestamp.unwrap_or(-1))))
        .map_err(|e: Error| errors::code(&e))
}

/// OffsetForLeaderEpoch: epoch 0 (the only one) ends at the log end offset; a later epoch is
/// unknown, as Kafka answers for an epoch above the leader's.
pub fn offset_for_leader_epoch(
    ctx: &Context,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response = EpochEndOffset::default().with_partition(p.partition);
                    match ctx
                        .broker
                        .list_offsets(&name, p.partition, OffsetSpec::Latest)
                    {
                        Err(e) => response
                            .with_error_code(errors::code(&e))
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                        Ok(_) if p.current_leader_epoch > 0 => response
                            .with_error_code(Code::UnknownLeaderEpoch.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                        Ok(_) if p.leader_epoch > 0 => {
                            response.with_leader_epoch(-1).with_end_offset(-1)
                        }
                        Ok(end) => response
                            .with_leader_epoch(0)
                            .with_end_offset(end.map_or(0, |l| l.offset)),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// DeleteRecords: moves each partition's log start offset to the offset given (-1: the high
/// watermark) and answers the new low watermark.
pub async fn delete_records(ctx: &Context, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = ctx
        .blocking(move |broker| {
            request
                .topics
                .into_iter()
                .map(|topic| {
                    let name = topic.name.0.to_string();
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let result = DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index);
                            match broker.delete_records(&name, p.partition_index, p.offset) {
                                Ok(low) => result.with_low_watermark(low),
                                Err(e) => result
                                    .with_low_watermark(-1)
                                    .with_error_code(errors::code(&e)),
                            }
                        })
                        .collect();
                    DeleteRecordsTopicResult::default()
                        .with_name(topic.name)
                        .with_partitions(partitions)
                })
                .collect()
        })
        .await
        .unwrap_or_default();
    DeleteRecordsResponse::default().with_topics(topics)
}
