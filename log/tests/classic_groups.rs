//! Kafka's classic group protocol on a real broker: the join barrier and the leader, SyncGroup
//! handing out the leader's assignment, heartbeats during a rebalance, session expiry, static
//! membership, batched leaves, protocol selection and the refusal of mixed protocols, offset
//! commits fenced by generation, DeleteGroups and the initial rebalance delay. Concurrent
//! members run on threads; tests wait on conditions, never on fixed sleeps.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use sluice_log::{
    Broker, BrokerConfig, ClassicJoinRequest, ClassicJoinResponse, Error, TopicPartition,
};

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(5);

fn broker(dir: &std::path::Path, initial_delay_ms: u64) -> Broker {
    let config = BrokerConfig::default()
        .with_group_initial_rebalance_delay(Duration::from_millis(initial_delay_ms))
        .with_group_min_session_timeout(Duration::from_millis(100));
    Broker::open(dir, config).expect("open broker")
}

fn protocols(list: &[(&str, &str)]) -> Vec<(String, Bytes)> {
    list.iter()
        .map(|(n, m)| (n.to_string(), Bytes::from(m.to_string())))
        .collect()
}

fn request(group: &str, client: &str, list: &[(&str, &str)]) -> ClassicJoinRequest {
    ClassicJoinRequest {
        group: group.into(),
        protocol_type: "consumer".into(),
        protocols: protocols(list),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        client_id: client.into(),
        client_host: "/127.0.0.1".into(),
        ..Default::default()
    }
}

fn rejoin(mut req: ClassicJoinRequest, member_id: &str) -> ClassicJoinRequest {
    req.member_id = member_id.to_string();
    req
}

/// Polls `cond` until it holds or `within` passes; whether it held.
fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    cond()
}

fn state(broker: &Broker, group: &str) -> String {
    broker.describe_group(group).state
}

/// Joins alone into a fresh group and completes the generation (leader syncs `assignment`).
fn join_alone(broker: &Broker, req: ClassicJoinRequest) -> ClassicJoinResponse {
    let joined = broker.classic_join_group(req.clone()).expect("join");
    let synced = broker
        .classic_sync_group(
            &req.group,
            &joined.member_id,
            req.group_instance_id.as_deref(),
            joined.generation_id,
            Some("consumer"),
            Some(&joined.protocol_name),
            vec![(joined.member_id.clone(), Bytes::from_static(b"all"))],
        )
        .expect("sync");
    assert_eq!(synced.assignment, Bytes::from_static(b"all"));
    joined
}

/// Joins several members at once (they land in one generation thanks to the initial
/// delay), the leader assigns `"to-<member id>"` to each; returns the join responses.
fn join_together(broker: &Broker, reqs: Vec<ClassicJoinRequest>) -> Vec<ClassicJoinResponse> {
    let handles: Vec<_> = reqs
        .into_iter()
        .map(|req| {
            let b = broker.clone();
            thread::spawn(move || {
                let joined = b.classic_join_group(req.clone()).expect("join");
                let assignments = joined
                    .members
                    .iter()
                    .map(|m| {
                        (
                            m.member_id.clone(),
                            Bytes::from(format!("to-{}", m.member_id)),
                        )
                    })
                    .collect();
                let synced = b
                    .classic_sync_group(
                        &req.group,
                        &joined.member_id,
                        req.group_instance_id.as_deref(),
                        joined.generation_id,
                        None,
                        None,
                        assignments,
                    )
                    .expect("sync");
                assert_eq!(
                    synced.assignment,
                    Bytes::from(format!("to-{}", joined.member_id)),
                    "each member gets what the leader assigned it"
                );
                joined
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("member thread"))
        .collect()
}

#[test]
fn first_join_elects_the_leader_which_gets_every_members_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 0);
    let req = request("g", "client-a", &[("range", "meta-a")]);
    let joined = join_alone(&broker, req);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert!(joined.member_id.starts_with("client-a-"));
    assert_eq!(joined.protocol_type, "consumer");
    assert_eq!(joined.protocol_name, "range");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, Bytes::from_static(b"meta-a"));
    broker
        .classic_heartbeat("g", &joined.member_id, None, 1)
        .expect("heartbeat in Stable");
    let described = broker.describe_group("g");
    assert_eq!(described.state, "Stable");
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(described.protocol, "range");
    assert_eq!(described.members[0].client_id, "client-a");
    assert_eq!(described.members[0].client_host, "/127.0.0.1");
    assert_eq!(described.members[0].assignment, Bytes::from_static(b"all"));
    assert_eq!(
        broker.list_groups_detailed(),
        vec![(
            "g".to_string(),
            "Stable".to_string(),
            "consumer".to_string()
        )]
    );
}

#[test]
fn three_concurrent_members_share_one_generation_and_the_leaders_assignment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 300);
    let reqs = (0..3)
        .map(|i| request("g", &format!("c{i}"), &[("range", &format!("m{i}"))]))
        .collect();
    let joined = join_together(&broker, reqs);
    let generations: Vec<i32> = joined.iter().map(|j| j.generation_id).collect();
    assert_eq!(generations, vec![1, 1, 1]);
    let leaders: Vec<&ClassicJoinResponse> =
        joined.iter().filter(|j| j.leader == j.member_id).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader");
    assert_eq!(leaders[0].members.len(), 3);
    assert!(
        joined.iter().all(|j| j.leader == leaders[0].member_id
            && (j.members.is_empty() != (j.leader == j.member_id)))
    );
    let mut ids: Vec<String> = joined.iter().map(|j| j.member_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "member ids are unique");
    assert_eq!(state(&broker, "g"), "Stable");
}

#[test]
fn heartbeat_during_a_rebalance_says_rebalance_in_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 0);
    let a = join_alone(&broker, request("g", "a", &[("range", "a")]));
    let b = broker.clone();
    let joiner = thread::spawn(move || b.classic_join_group(request("g", "b", &[("range", "b")])));
    assert!(wait_for(Duration::from_secs(5), || state(&broker, "g")
        == "PreparingRebalance"));
    match broker.classic_heartbeat("g", &a.member_id, None, a.generation_id) {
        Err(Error::RebalanceInProgress { group }) => assert_eq!(group, "g"),
        other => panic!("expected RebalanceInProgress, got {other:?}"),
    }
    let again = broker
        .classic_join_group(rejoin(request("g", "a", &[("range", "a")]), &a.member_id))
        .expect("rejoin");
    let other = joiner.join().expect("thread").expect("join b");
    assert_eq!(again.generation_id, 2);
    assert_eq!(other.generation_id, 2);
    assert_eq!(again.leader, a.member_id, "the leader stays the leader");
    assert_eq!(again.members.len(), 2);
    match broker.classic_heartbeat("g", &a.member_id, None, 1) {
        Err(Error::IllegalGeneration {
            generation: 1,
            current: 2,
            ..
        }) => {}
        other => panic!("expected IllegalGeneration, got {other:?}"),
    }
    match broker.classic_heartbeat("g", "nobody", None, 2) {
        Err(Error::UnknownMemberId { member_id, .. }) => assert_eq!(member_id, "nobody"),
        other => panic!("expected UnknownMemberId, got {other:?}"),
    }
    // CompletingRebalance: heartbeats are fine, followers' syncs wait for the leader.
    broker
        .classic_heartbeat("g", &other.member_id, None, 2)
        .expect("heartbeat while completing");
}

#[test]
fn a_member_that_stops_heartbeating_is_expired_and_the_rest_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 200);
    let short = |client: &str| {
        let mut r = request("g", client, &[("range", client)]);
        r.session_timeout = Duration::from_millis(400);
        r
    };
    let joined = join_together(&broker, vec![short("a"), short("b")]);
    assert!(joined.iter().all(|j| j.generation_id == 1));
    let (a, b) = (&joined[0], &joined[1]);
    let started = Instant::now();
    // a keeps heartbeating, b is silent.
    let saw_rebalance = wait_for(Duration::from_secs(5), || {
        matches!(
            broker.classic_heartbeat("g", &a.member_id, None, 1),
            Err(Error::RebalanceInProgress { .. })
        )
    });
    assert!(saw_rebalance, "a learns of the rebalance");
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "not before b's session ran out"
    );
    let again = broker
        .classic_join_group(rejoin(short("a"), &a.member_id))
        .expect("rejoin");
    assert_eq!(again.generation_id, 2);
    assert_eq!(again.leader, a.member_id);
    let ids: Vec<&str> = again.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.member_id.as_str()]);
    match broker.classic_heartbeat("g", &b.member_id, None, 1) {
        Err(Error::UnknownMemberId { .. }) => {}
        other => panic!("expected UnknownMemberId for the expired member, got {other:?}"),
    }
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 0);
    let mut req_a = request("g", "a", &[("range", "a")]);
    req_a.rebalance_timeout = Duration::from_millis(300);
    let a = join_alone(&broker, req_a);
    let started = Instant::now();
    let mut req_b = request("g", "b", &[("range", "b")]);
    req_b.rebalance_timeout = Duration::from_millis(300);
    // a never rejoins: the barrier ends at the rebalance timeout without it.
    let b = broker.classic_join_group(req_b).expect("join b");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(b.generation_id, 2);
    assert_eq!(b.leader, b.member_id);
    assert_eq!(b.members.len(), 1);
    assert!(
        broker
            .classic_heartbeat("g", &a.member_id, None, 1)
            .is_err()
    );
}

#[test]
fn a_static_member_rejoining_replaces_its_old_id_which_is_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 300);
    let stat = |client: &str, instance: &str| {
        let mut r = request("g", client, &[("range", client)]);
        r.group_instance_id = Some(instance.to_string());
        r
    };
    let joined = join_together(&broker, vec![stat("a", "ia"), stat("b", "ib")]);
    let follower = joined
        .iter()
        .find(|j| j.leader != j.member_id)
        .expect("a follower")
        .clone();
    let instance = broker
        .describe_group("g")
        .members
        .iter()
        .find(|m| m.member_id == follower.member_id)
        .and_then(|m| m.group_instance_id.clone())
        .expect("instance id described");
    let client = if instance == "ia" { "a" } else { "b" };
    // The follower restarts: same instance id, no member id, same metadata: no rebalance.
    let restarted = broker
        .classic_join_group(stat(client, &instance))
        .expect("static rejoin");
    assert_ne!(restarted.member_id, follower.member_id);
    assert_eq!(
        restarted.generation_id, 1,
        "no rebalance for an unchanged static follower"
    );
    assert_eq!(state(&broker, "g"), "Stable");
    match broker.classic_heartbeat("g", &follower.member_id, Some(&instance), 1) {
        Err(Error::FencedInstanceId {
            member_id,
            group_instance_id,
            ..
        }) => {
            assert_eq!(member_id, follower.member_id);
            assert_eq!(group_instance_id, instance);
        }
        other => panic!("expected FencedInstanceId, got {other:?}"),
    }
    broker
        .classic_heartbeat("g", &restarted.member_id, Some(&instance), 1)
        .expect("the new id is the member now");
    let synced = broker
        .classic_sync_group(
            "g",
            &restarted.member_id,
            Some(&instance),
            1,
            None,
            None,
            vec![],
        )
        .expect("sync in Stable");
    assert_eq!(
        synced.assignment,
        Bytes::from(format!("to-{}", follower.member_id)),
        "the replacement keeps the assignment"
    );
    let ids: Vec<String> = broker
        .describe_group("g")
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    assert!(ids.contains(&restarted.member_id) && !ids.contains(&follower.member_id));
}

/// Kafka (KIP-345, KIP-814): a static leader replaced in a Stable group with the same
/// protocols does not rebalance either; it is told to skip the assignment and keeps its own.
#[test]
fn a_static_leader_rejoining_keeps_the_generation_and_skips_the_assignment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 300);
    let stat = |client: &str, instance: &str| {
        let mut r = request("g", client, &[("range", client)]);
        r.group_instance_id = Some(instance.to_string());
        r
    };
    let joined = join_together(&broker, vec![stat("a", "ia"), stat("b", "ib")]);
    let leader = joined
        .iter()
        .find(|j| j.leader == j.member_id)
        .expect("a leader")
        .clone();
    let instance = broker
        .describe_group("g")
        .members
        .iter()
        .find(|m| m.member_id == leader.member_id)
        .and_then(|m| m.group_instance_id.clone())
        .expect("instance id described");
    let client = if instance == "ia" { "a" } else { "b" };
    let restarted = broker
        .classic_join_group(stat(client, &instance))
        .expect("static rejoin");
    assert_eq!(
        restarted.generation_id, 1,
        "no rebalance for an unchanged static leader"
    );
    assert_eq!(restarted.leader, restarted.member_id, "it stays the leader");
    assert!(restarted.skip_assignment);
    assert_eq!(restarted.members.len(), 2);
    assert_eq!(state(&broker, "g"), "Stable");
    let synced = broker
        .classic_sync_group(
            "g",
            &restarted.member_id,
            Some(&instance),
            1,
            None,
            None,
            vec![(restarted.member_id.clone(), Bytes::from_static(b"ignored"))],
        )
        .expect("sync in Stable");
    assert_eq!(
        synced.assignment,
        Bytes::from(format!("to-{}", leader.member_id)),
        "the group keeps the assignment it had"
    );
}

#[test]
fn a_batched_leave_rebalances_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 300);
    let mut reqs: Vec<_> = (0..3)
        .map(|i| request("g", &format!("c{i}"), &[("range", "m")]))
        .collect();
    reqs[2].group_instance_id = Some("static-c2".into());
    let joined = join_together(&broker, reqs);
    let leader = joined
        .iter()
        .find(|j| j.leader == j.member_id)
        .expect("leader")
        .clone();
    let mut leaving: Vec<(String, Option<String>)> = Vec::new();
    for j in joined.iter().filter(|j| j.member_id != leader.member_id) {
        let instance = broker
            .describe_group("g")
            .members
            .iter()
            .find(|m| m.member_id == j.member_id)
            .and_then(|m| m.group_instance_id.clone());
        // A static member leaves by instance id alone (KIP-345).
        let id = if instance.is_some() {
            String::new()
        } else {
            j.member_id.clone()
        };
        leaving.push((id, instance));
    }
    leaving.push(("ghost".into(), None));
    let results = broker.classic_leave_group("g", &leaving);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(matches!(results[2], Err(Error::UnknownMemberId { .. })));
    match broker.classic_heartbeat("g", &leader.member_id, None, 1) {
        Err(Error::RebalanceInProgress { .. }) => {}
        other => panic!("expected RebalanceInProgress, got {other:?}"),
    }
    let again = broker
        .classic_join_group(rejoin(
            request("g", "c", &[("range", "m")]),
            &leader.member_id,
        ))
        .expect("rejoin");
    assert_eq!(again.generation_id, 2);
    assert_eq!(again.members.len(), 1);
    // The last member leaves: the group is Empty.
    let results = broker.classic_leave_group("g", &[(leader.member_id.clone(), None)]);
    assert!(results[0].is_ok());
    assert_eq!(state(&broker, "g"), "Empty");
}

#[test]
fn embedded_and_classic_members_never_share_a_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 0);
    broker
        .create_topic("t", sluice_log::TopicConfig::default())
        .expect("topic");
    let embedded = broker
        .join_group("e", None, &["t".to_string()], SESSION)
        .expect("embedded join");
    match broker.classic_join_group(request("e", "k", &[("range", "m")])) {
        Err(Error::InconsistentGroupProtocol { group }) => assert_eq!(group, "e"),
        other => panic!("expected InconsistentGroupProtocol, got {other:?}"),
    }
    assert_eq!(broker.describe_group("e").protocol_type, "embedded");
    let classic = join_alone(&broker, request("c", "k", &[("range", "m")]));
    match broker.join_group("c", None, &["t".to_string()], SESSION) {
        Err(Error::InconsistentGroupProtocol { group }) => assert_eq!(group, "c"),
        other => panic!("expected InconsistentGroupProtocol, got {other:?}"),
    }
    // Once empty, a group may change protocol.
    broker.leave_group("e", &embedded.member_id).expect("leave");
    join_alone(&broker, request("e", "k", &[("range", "m")]));
    assert_eq!(broker.describe_group("e").protocol_type, "consumer");
    assert!(broker.classic_leave_group("c", &[(classic.member_id, None)])[0].is_ok());
    let again = broker
        .join_group("c", None, &["t".to_string()], SESSION)
        .expect("embedded join into an empty classic group");
    assert_eq!(again.partitions, vec![TopicPartition::new("t", 0)]);
}

#[test]
fn the_protocol_is_one_every_member_supports_and_none_common_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 300);
    let joined = join_together(
        &broker,
        vec![
            request("g", "a", &[("cooperative-sticky", "a1"), ("range", "a2")]),
            request("g", "b", &[("range", "b2")]),
        ],
    );
    assert!(joined.iter().all(|j| j.protocol_name == "range"));
    let leader = joined
        .iter()
        .find(|j| j.leader == j.member_id)
        .expect("leader");
    let mut metadata: Vec<Bytes> = leader.members.iter().map(|m| m.metadata.clone()).collect();
    metadata.sort();
    assert_eq!(
        metadata,
        vec![Bytes::from_static(b"a2"), Bytes::from_static(b"b2")]
    );
    match broker.classic_join_group(request("g", "c", &[("roundrobin", "c")])) {
        Err(Error::InconsistentGroupProtocol { .. }) => {}
        other => panic!("expected InconsistentGroupProtocol, got {other:?}"),
    }
    let mut connect = request("g", "d", &[("range", "d")]);
    connect.protocol_type = "connect".into();
    match broker.classic_join_group(connect) {
        Err(Error::InconsistentGroupProtocol { .. }) => {}
        other => panic!("expected InconsistentGroupProtocol, got {other:?}"),
    }
    match broker.classic_sync_group(
        "g",
        &leader.member_id,
        None,
        1,
        Some("consumer"),
        Some("roundrobin"),
        vec![],
    ) {
        Err(Error::InconsistentGroupProtocol { .. }) => {}
        other => panic!("expected InconsistentGroupProtocol, got {other:?}"),
    }
    // The majority's first choice wins among the common protocols.
    let voted = join_together(
        &broker,
        vec![
            request("v", "a", &[("roundrobin", ""), ("range", "")]),
            request("v", "b", &[("roundrobin", ""), ("range", "")]),
            request("v", "c", &[("range", ""), ("roundrobin", "")]),
        ],
    );
    assert!(voted.iter().all(|j| j.protocol_name == "roundrobin"));
}

#[test]
fn offset_commits_are_fenced_by_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 0);
    let tp = TopicPartition::new("t", 0);
    let a = join_alone(&broker, request("g", "a", &[("range", "a")]));
    broker
        .offset_commit("g", 1, &a.member_id, &[(tp.clone(), 5)])
        .expect("current generation commits");
    match broker.offset_commit("g", -1, "", &[(tp.clone(), 6)]) {
        Err(Error::UnknownMemberId { .. }) => {}
        other => panic!("standalone commit into a live group: {other:?}"),
    }
    match broker.offset_commit("g", 1, "stranger", &[(tp.clone(), 6)]) {
        Err(Error::UnknownMemberId { .. }) => {}
        other => panic!("expected UnknownMemberId, got {other:?}"),
    }
    let b = broker.clone();
    let joiner = thread::spawn(move || b.classic_join_group(request("g", "b", &[("range", "b")])));
    assert!(wait_for(Duration::from_secs(5), || state(&broker, "g")
        == "PreparingRebalance"));
    broker
        .offset_commit("g", 1, &a.member_id, &[(tp.clone(), 7)])
        .expect("commits go on while preparing a rebalance");
    let again = broker
        .classic_join_group(rejoin(request("g", "a", &[("range", "a")]), &a.member_id))
        .expect("rejoin");
    joiner.join().expect("thread").expect("join b");
    assert_eq!(again.generation_id, 2);
    match broker.offset_commit("g", 2, &a.member_id, &[(tp.clone(), 8)]) {
        Err(Error::RebalanceInProgress { .. }) => {}
        other => panic!("expected RebalanceInProgress in CompletingRebalance, got {other:?}"),
    }
    match broker.offset_commit("g", 1, &a.member_id, &[(tp.clone(), 8)]) {
        Err(Error::IllegalGeneration {
            generation: 1,
            current: 2,
            ..
        }) => {}
        other => panic!("expected IllegalGeneration, got {other:?}"),
    }
    let fetched = broker
        .offset_fetch("g", std::slice::from_ref(&tp), false)
        .expect("fetch");
    assert_eq!(fetched, vec![(tp, Some(7))]);
}

#[test]
fn delete_groups_refuses_live_and_unknown_groups_and_forgets_offsets_for_good() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tp = TopicPartition::new("t", 0);
    {
        let broker = broker(dir.path(), 0);
        let a = join_alone(&broker, request("g", "a", &[("range", "a")]));
        broker
            .offset_commit("g", 1, &a.member_id, &[(tp.clone(), 3)])
            .expect("commit");
        broker
            .offset_commit("keep", -1, "", &[(tp.clone(), 9)])
            .expect("standalone commit");
        let results = broker.delete_groups(&["g", "nope"]);
        assert!(matches!(
            results[0].1,
            Err(Error::NonEmptyGroup { members: 1, .. })
        ));
        assert!(matches!(results[1].1, Err(Error::GroupIdNotFound { .. })));
        assert_eq!(state(&broker, "nope"), "Dead");
        assert!(broker.classic_leave_group("g", &[(a.member_id, None)])[0].is_ok());
        let results = broker.delete_groups(&["g"]);
        assert!(results[0].1.is_ok(), "{results:?}");
        assert_eq!(broker.offset_fetch("g", &[], false).expect("fetch"), vec![]);
        assert_eq!(broker.list_groups(), vec!["keep".to_string()]);
        assert_eq!(state(&broker, "g"), "Dead");
        broker.close().expect("close");
    }
    let broker = broker(dir.path(), 0);
    assert_eq!(broker.offset_fetch("g", &[], false).expect("fetch"), vec![]);
    assert_eq!(
        broker.offset_fetch("keep", &[], false).expect("fetch"),
        vec![(tp, Some(9))]
    );
    assert_eq!(
        broker.list_groups_detailed(),
        vec![("keep".to_string(), "Empty".to_string(), String::new())]
    );
    assert!(matches!(
        broker.delete_groups(&["g"])[0].1,
        Err(Error::GroupIdNotFound { .. })
    ));
}

#[test]
fn the_initial_delay_gathers_near_simultaneous_first_joiners_into_one_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 500);
    let started = Instant::now();
    let b = broker.clone();
    let first = thread::spawn(move || b.classic_join_group(request("g", "a", &[("range", "a")])));
    assert!(wait_for(Duration::from_secs(5), || state(&broker, "g")
        == "PreparingRebalance"));
    let second = broker
        .classic_join_group(request("g", "b", &[("range", "b")]))
        .expect("join b");
    let first = first.join().expect("thread").expect("join a");
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert_eq!((first.generation_id, second.generation_id), (1, 1));
    assert_eq!(first.leader, second.leader);
    let leader = if first.leader == first.member_id {
        &first
    } else {
        &second
    };
    assert_eq!(leader.members.len(), 2);
}

#[test]
fn new_members_may_be_asked_to_rejoin_with_their_id_and_session_timeouts_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), 0);
    let mut req = request("g", "a", &[("range", "a")]);
    req.require_known_member_id = true;
    let member_id = match broker.classic_join_group(req.clone()) {
        Err(Error::MemberIdRequired { group, member_id }) => {
            assert_eq!(group, "g");
            member_id
        }
        other => panic!("expected MemberIdRequired, got {other:?}"),
    };
    let joined = broker
        .classic_join_group(rejoin(req.clone(), &member_id))
        .expect("rejoin with the id");
    assert_eq!(joined.member_id, member_id);
    assert_eq!(joined.generation_id, 1);
    let mut bad = request("g2", "a", &[("range", "a")]);
    bad.session_timeout = Duration::from_millis(50);
    assert!(matches!(
        broker.classic_join_group(bad.clone()),
        Err(Error::InvalidSessionTimeout { min: 100, .. })
    ));
    bad.session_timeout = Duration::from_secs(3600);
    assert!(matches!(
        broker.classic_join_group(bad),
        Err(Error::InvalidSessionTimeout { max: 1_800_000, .. })
    ));
    assert!(matches!(
        broker.classic_join_group(request("", "a", &[("range", "a")])),
        Err(Error::InvalidGroupId { .. })
    ));
    match broker.classic_sync_group("g", &member_id, None, 7, None, None, vec![]) {
        Err(Error::IllegalGeneration { generation: 7, .. }) => {}
        other => panic!("expected IllegalGeneration, got {other:?}"),
    }
}

/// A consumer's loop: join, sync (the leader assigns every member its own id), heartbeat,
/// rejoin on a rebalance, until told to stop; publishes the generation it is in.
fn member_loop(
    broker: Broker,
    req: ClassicJoinRequest,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Option<(String, i32, String)>>>,
) -> Result<(), String> {
    let mut member_id = String::new();
    'join: while !stop.load(Ordering::Acquire) {
        let joined = broker
            .classic_join_group(rejoin(req.clone(), &member_id))
            .map_err(|e| format!("join: {e}"))?;
        member_id = joined.member_id.clone();
        let assignments = joined
            .members
            .iter()
            .map(|m| (m.member_id.clone(), Bytes::from(m.member_id.clone())))
            .collect();
        match broker.classic_sync_group(
            &req.group,
            &member_id,
            None,
            joined.generation_id,
            None,
            None,
            assignments,
        ) {
            Ok(s) if s.assignment == member_id.as_bytes() => {}
            Ok(s) => return Err(format!("{member_id} was assigned {:?}", s.assignment)),
            Err(Error::RebalanceInProgress { .. }) => continue,
            Err(e) => return Err(format!("sync: {e}")),
        }
        *seen.lock().map_err(|e| e.to_string())? = Some((
            member_id.clone(),
            joined.generation_id,
            joined.protocol_name,
        ));
        while !stop.load(Ordering::Acquire) {
            match broker.classic_heartbeat(&req.group, &member_id, None, joined.generation_id) {
                Ok(()) => thread::sleep(Duration::from_millis(20)),
                Err(Error::RebalanceInProgress { .. }) => continue 'join,
                Err(e) => return Err(format!("heartbeat: {e}")),
            }
        }
    }
    Ok(())
}

const NAMES: [&str; 3] = ["range", "roundrobin", "sticky"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(6)))]

    /// Members joining at random moments with random protocol preferences (all sharing
    /// "range") settle in one Stable generation where every member has its assignment and
    /// the protocol is one all of them support.
    #[test]
    fn members_joining_at_random_settle_in_one_generation(
        prefs in prop::collection::vec(
            (prop::sample::subsequence(NAMES.to_vec(), 0..=3), any::<bool>(), 0u64..60),
            1..4,
        ),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = broker(dir.path(), 20);
        let stop = Arc::new(AtomicBool::new(false));
        let mut members = Vec::new();
        let mut lists = Vec::new();
        for (i, (mut list, range_first, delay)) in prefs.into_iter().enumerate() {
            list.retain(|n| *n != "range");
            if range_first { list.insert(0, "range") } else { list.push("range") }
            lists.push(list.clone());
            let named: Vec<(&str, &str)> = list.iter().map(|n| (*n, "")).collect();
            let req = request("g", &format!("c{i}"), &named);
            let seen = Arc::new(Mutex::new(None));
            let (b, s, st) = (broker.clone(), Arc::clone(&seen), Arc::clone(&stop));
            let handle = thread::spawn(move || {
                thread::sleep(Duration::from_millis(delay));
                member_loop(b, req, st, s)
            });
            members.push((handle, seen));
        }
        let n = members.len();
        let settled = wait_for(Duration::from_secs(20), || {
            let d = broker.describe_group("g");
            d.state == "Stable" && d.members.len() == n && members.iter().all(|(_, seen)| {
                seen.lock().map(|s| s.as_ref().is_some_and(|(_, g, _)| *g == d.generation)).unwrap_or(false)
            })
        });
        stop.store(true, Ordering::Release);
        let d = broker.describe_group("g");
        for (handle, _) in members {
            prop_assert_eq!(handle.join().expect("member thread"), Ok(()));
        }
        prop_assert!(settled, "the group did not settle: {:?}", d);
        prop_assert!(lists.iter().all(|l| l.contains(&d.protocol.as_str())), "{} not common", d.protocol);
        for m in &d.members {
            prop_assert_eq!(&m.assignment, &Bytes::from(m.member_id.clone()));
        }
    }
}
