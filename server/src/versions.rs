//! The API versions this server implements, as ApiVersions advertises them. Clients pick the
//! highest version both sides know, so nothing is listed that is not implemented.
//!
//! Limits worth knowing: Produce stops at v11 and AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit and EndTxn stop before transaction version 2 (KIP-890 part 2), so clients
//! keep one producer epoch across transactions; Fetch stops at v12 (topics by name, not id).

use kafka_protocol::messages::ApiKey;

/// `(api, min, max)` for every API the server answers.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
];

/// The version range implemented for `api`, if it is implemented at all.
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// Every advertised range lies inside what the codec can decode and encode.
    #[test]
    fn advertised_versions_are_within_the_codec() {
        fn within<Req: Message, Resp: Message>(min: i16, max: i16) -> bool {
            min >= Req::VERSIONS.min
                && max <= Req::VERSIONS.max
                && min >= Resp::VERSIONS.min
                && max <= Resp::VERSIONS.max
        }
        for &(api, min, max) in SUPPORTED {
            let ok = match api {
                ApiKey::Produce => within::<ProduceRequest, ProduceResponse>(min, max),
                ApiKey::Fetch => within::<FetchRequest, FetchResponse>(min, max),
                ApiKey::ListOffsets => within::<ListOffsetsRequest, ListOffsetsResponse>(min, max),
                ApiKey::Metadata => within::<MetadataRequest, MetadataResponse>(min, max),
                ApiKey::OffsetCommit => {
                    within::<OffsetCommitRequest, OffsetCommitResponse>(min, max)
                }
                ApiKey::OffsetFetch => within::<OffsetFetchRequest, OffsetFetchResponse>(min, max),
                ApiKey::FindCoordinator => {
                    within::<FindCoordinatorRequest, FindCoordinatorResponse>(min, max)
                }
                ApiKey::JoinGroup => within::<JoinGroupRequest, JoinGroupResponse>(min, max),
                ApiKey::Heartbeat => within::<HeartbeatRequest, HeartbeatResponse>(min, max),
                ApiKey::LeaveGroup => within::<LeaveGroupRequest, LeaveGroupResponse>(min, max),
                ApiKey::SyncGroup => within::<SyncGroupRequest, SyncGroupResponse>(min, max),
                ApiKey::DescribeGroups => {
                    within::<DescribeGroupsRequest, DescribeGroupsResponse>(min, max)
                }
                ApiKey::ListGroups => within::<ListGroupsRequest, ListGroupsResponse>(min, max),
                ApiKey::ApiVersions => within::<ApiVersionsRequest, ApiVersionsResponse>(min, max),
                ApiKey::CreateTopics => {
                    within::<CreateTopicsRequest, CreateTopicsResponse>(min, max)
                }
                ApiKey::DeleteTopics => {
                    within::<DeleteTopicsRequest, DeleteTopicsResponse>(min, max)
                }
                ApiKey::InitProducerId => {
                    within::<InitProducerIdRequest, InitProducerIdResponse>(min, max)
                }
                ApiKey::OffsetForLeaderEpoch => {
                    within::<OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse>(min, max)
                }
                ApiKey::AddPartitionsToTxn => {
                    within::<AddPartitionsToTxnRequest, AddPartitionsToTxnResponse>(min, max)
                }
                ApiKey::AddOffsetsToTxn => {
                    within::<AddOffsetsToTxnRequest, AddOffsetsToTxnResponse>(min, max)
                }
                ApiKey::EndTxn => within::<EndTxnRequest, EndTxnResponse>(min, max),
                ApiKey::TxnOffsetCommit => {
                    within::<TxnOffsetCommitRequest, TxnOffsetCommitResponse>(min, max)
                }
                ApiKey::DescribeConfigs => {
                    within::<DescribeConfigsRequest, DescribeConfigsResponse>(min, max)
                }
                ApiKey::CreatePartitions => {
                    within::<CreatePartitionsRequest, CreatePartitionsResponse>(min, max)
                }
                ApiKey::DeleteGroups => {
                    within::<DeleteGroupsRequest, DeleteGroupsResponse>(min, max)
                }
                ApiKey::DeleteRecords => {
                    within::<DeleteRecordsRequest, DeleteRecordsResponse>(min, max)
                }
                ApiKey::DescribeCluster => {
                    within::<DescribeClusterRequest, DescribeClusterResponse>(min, max)
                }
                _ => false,
            };
            assert!(ok, "{api:?} {min}..={max} is outside the codec's versions");
        }
    }
}
