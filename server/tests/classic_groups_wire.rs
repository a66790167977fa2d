//! Classic groups over the wire: parked JoinGroups hold no thread (more of them than the
//! blocking pool has threads still all join, and the broker keeps answering), a replaced
//! static member's OffsetCommit and TxnOffsetCommit are FENCED_INSTANCE_ID, and an
//! OffsetCommit of many partitions gets each partition's own code.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, Served};
use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_log::{Broker, ClassicJoinRequest, ClassicJoinResponse, TopicConfig};
use sluice_server::ServerConfig;

/// Tokio's blocking pool has 512 threads by default: more joins than that.
const JOINERS: usize = 600;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn classic(group: &str, instance: Option<&str>) -> ClassicJoinRequest {
    ClassicJoinRequest {
        group: group.into(),
        group_instance_id: instance.map(str::to_string),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        session_timeout: Duration::from_secs(60),
        rebalance_timeout: Duration::from_secs(60),
        client_id: "direct".into(),
        ..Default::default()
    }
}

/// Joins alone through the broker's API and completes the generation.
fn join_alone(broker: &Broker, req: ClassicJoinRequest) -> ClassicJoinResponse {
    let joined = broker.classic_join_group(req.clone()).expect("join");
    broker
        .classic_sync_group(
            &req.group,
            &joined.member_id,
            req.group_instance_id.as_deref(),
            joined.generation_id,
            None,
            None,
            vec![],
        )
        .expect("sync");
    joined
}

/// Polls `cond` until it holds; false if the hang guard (60 s) runs out.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

#[test]
fn more_parked_joins_than_blocking_threads_all_join_and_the_broker_keeps_answering() {
    let served = Served::start(ServerConfig::default());
    let leader = join_alone(&served.broker, classic("g", None));
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_session_timeout_ms(60_000)
        .with_rebalance_timeout_ms(60_000)
        .with_protocol_type(text("consumer"))
        .with_protocols(
            [JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"m"))]
            .into_iter()
            .collect(),
        );
    let mut joiners: Vec<Client> = (0..JOINERS)
        .map(|_| {
            let mut client = served.client();
            client.send(ApiKey::JoinGroup, 3, &RequestKind::JoinGroup(join.clone()));
            client
        })
        .collect();
    // Every join is parked at the barrier (which waits for the leader to rejoin)...
    assert!(
        eventually(|| served.broker.describe_group("g").members.len() == JOINERS + 1),
        "only {} members joined",
        served.broker.describe_group("g").members.len()
    );
    // ... and the broker still answers requests that need its blocking pool.
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_generation_id(1)
        .with_member_id(text(&leader.member_id));
    let ResponseKind::Heartbeat(beat) =
        served
            .client()
            .call(ApiKey::Heartbeat, 3, RequestKind::Heartbeat(heartbeat))
    else {
        panic!("not a Heartbeat response");
    };
    assert_eq!(beat.error_code, Code::RebalanceInProgress.code());
    let mut rejoin = classic("g", None);
    rejoin.member_id = leader.member_id.clone();
    let again = served.broker.classic_join_group(rejoin).expect("rejoin");
    assert_eq!(again.generation_id, 2);
    assert_eq!(again.members.len(), JOINERS + 1);
    for client in &mut joiners {
        let (_, body) = client.receive(ApiKey::JoinGroup, 3);
        let ResponseKind::JoinGroup(joined) = body else {
            panic!("not a JoinGroup response");
        };
        assert_eq!((joined.error_code, joined.generation_id), (0, 2));
        assert_eq!(joined.leader.as_str(), leader.member_id);
    }
}

fn commit_partition(partition: i32, offset: i64, metadata: &str) -> OffsetCommitRequestPartition {
    OffsetCommitRequestPartition::default()
        .with_partition_index(partition)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(text(metadata)))
}

#[test]
fn a_replaced_static_member_is_fenced_on_offset_commits() {
    let served = Served::start(ServerConfig::default());
    let broker = &served.broker;
    broker
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let old = join_alone(broker, classic("g", Some("i")));
    let new = broker
        .classic_join_group(classic("g", Some("i")))
        .expect("static rejoin");
    assert_eq!(new.generation_id, 1);
    let commit = |member: &str| {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_generation_id_or_member_epoch(1)
            .with_member_id(text(member))
            .with_group_instance_id(Some(text("i")))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(text("t")))
                    .with_partitions(vec![commit_partition(0, 5, "")]),
            ]);
        let ResponseKind::OffsetCommit(r) =
            served
                .client()
                .call(ApiKey::OffsetCommit, 8, RequestKind::OffsetCommit(request))
        else {
            panic!("not an OffsetCommit response");
        };
        r.topics[0].partitions[0].error_code
    };
    assert_eq!(commit(&old.member_id), Code::FencedInstanceId.code());
    assert_eq!(commit(&new.member_id), 0);
    let producer = broker
        .init_transactions("tx", Duration::from_secs(60))
        .expect("init");
    broker
        .add_offsets_to_txn("tx", producer, "g")
        .expect("add offsets");
    let txn_commit = |member: &str| {
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(text("tx")))
            .with_group_id(GroupId(text("g")))
            .with_producer_id(ProducerId(producer.producer_id))
            .with_producer_epoch(producer.epoch)
            .with_generation_id(1)
            .with_member_id(text(member))
            .with_group_instance_id(Some(text("i")))
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(text("t")))
                    .with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(6),
                    ]),
            ]);
        let ResponseKind::TxnOffsetCommit(r) = served.client().call(
            ApiKey::TxnOffsetCommit,
            3,
            RequestKind::TxnOffsetCommit(request),
        ) else {
            panic!("not a TxnOffsetCommit response");
        };
        r.topics[0].partitions[0].error_code
    };
    assert_eq!(txn_commit(&old.member_id), Code::FencedInstanceId.code());
    assert_eq!(txn_commit(&new.member_id), 0);
}

#[test]
fn an_offset_commit_of_many_partitions_gets_each_partitions_code() {
    let served = Served::start(ServerConfig::default());
    served
        .broker
        .create_topic("t", TopicConfig::default().with_partitions(3))
        .expect("topic");
    const UNKNOWN: i32 = 200_000;
    let big = "x".repeat(5000);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text("solo")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(text("nope")))
                .with_partitions((0..UNKNOWN).map(|p| commit_partition(p, 1, "")).collect()),
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(text("t")))
                .with_partitions(vec![
                    commit_partition(0, 10, "zero"),
                    commit_partition(1, 11, ""),
                    commit_partition(2, 12, &big),
                    commit_partition(3, 13, ""),
                ]),
        ]);
    let ResponseKind::OffsetCommit(r) =
        served
            .client()
            .call(ApiKey::OffsetCommit, 8, RequestKind::OffsetCommit(request))
    else {
        panic!("not an OffsetCommit response");
    };
    assert_eq!(r.topics.len(), 2);
    let unknown = Code::UnknownTopicOrPartition.code();
    assert_eq!(r.topics[0].partitions.len(), UNKNOWN as usize);
    assert!(
        r.topics[0]
            .partitions
            .iter()
            .enumerate()
            .all(|(i, p)| p.partition_index == i as i32 && p.error_code == unknown)
    );
    let codes: Vec<(i32, i16)> = r.topics[1]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (0, 0),
            (1, 0),
            (2, Code::OffsetMetadataTooLarge.code()),
            (3, unknown)
        ]
    );
    let tp = |p| sluice_log::TopicPartition::new("t", p);
    assert_eq!(
        served
            .broker
            .offset_fetch("solo", &[tp(0), tp(1), tp(2)], false)
            .expect("fetch"),
        vec![(tp(0), Some(10)), (tp(1), Some(11)), (tp(2), None)]
    );
}
