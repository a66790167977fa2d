//! The classic group coordinator's bounds and lifecycle: protocol lists are capped and
//! matched by count, parked JoinGroup and SyncGroup calls hold no thread (their answers are
//! futures, the timer thread ends the barriers), closing the broker answers them, a follower
//! that waited long for its assignment keeps its session, replaced static members are
//! fenced on offset commits, idle groups without offsets are forgotten, and ids handed out
//! with MemberIdRequired survive a rebalance. Tests wait on conditions, never on sleeps.

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_log::group::{ClassicReply, MAX_CLASSIC_PROTOCOL_BYTES, MAX_CLASSIC_PROTOCOLS};
use sluice_log::{Broker, BrokerConfig, ClassicJoinRequest, ClassicJoinResponse, Error};
use sluice_log::{TopicConfig, TopicPartition};

/// A hang guard for conditions that hold within milliseconds when the code is right.
const GUARD: Duration = Duration::from_secs(60);

fn broker(dir: &std::path::Path, initial_delay: Duration) -> Broker {
    let config = BrokerConfig::default()
        .with_group_initial_rebalance_delay(initial_delay)
        .with_group_min_session_timeout(Duration::from_millis(100));
    Broker::open(dir, config).expect("open broker")
}

fn request(group: &str, client: &str, protocols: &[&str]) -> ClassicJoinRequest {
    ClassicJoinRequest {
        group: group.into(),
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("{client}:{p}"))))
            .collect(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        client_id: client.into(),
        client_host: "/127.0.0.1".into(),
        ..Default::default()
    }
}

fn with_id(mut req: ClassicJoinRequest, member_id: &str) -> ClassicJoinRequest {
    req.member_id = member_id.to_string();
    req
}

/// Polls `cond` until it holds; false only if the hang guard ran out.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + GUARD;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    cond()
}

fn sync(
    broker: &Broker,
    group: &str,
    joined: &ClassicJoinResponse,
    assignments: Vec<(String, Bytes)>,
) -> ClassicReply<sluice_log::ClassicSyncResponse> {
    broker.begin_classic_sync_group(
        group,
        &joined.member_id,
        None,
        joined.generation_id,
        None,
        None,
        assignments,
    )
}

/// `first` alone in `group` (initial delay 0 needed), then `second` joins and `first`
/// rejoins: both in generation 2, `first` the leader. Returns (leader, follower).
fn two_members(
    broker: &Broker,
    first: ClassicJoinRequest,
    second: ClassicJoinRequest,
) -> (ClassicJoinResponse, ClassicJoinResponse) {
    let group = first.group.clone();
    let alone = broker
        .classic_join_group(first.clone())
        .expect("first join");
    let all = vec![(alone.member_id.clone(), Bytes::from_static(b"all"))];
    sync(broker, &group, &alone, all)
        .wait()
        .expect("first sync");
    let follower = broker.begin_classic_join_group(second);
    let leader = broker
        .classic_join_group(with_id(first, &alone.member_id))
        .expect("rejoin");
    let follower = follower.wait().expect("second join");
    assert_eq!((leader.generation_id, follower.generation_id), (2, 2));
    assert_eq!(leader.leader, leader.member_id);
    (leader, follower)
}

#[test]
fn protocol_lists_are_bounded_and_the_common_protocol_is_found_among_many() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), Duration::from_secs(1));
    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    };
    // Far more protocols than allowed: refused before the group is even created.
    let huge = names("p", 200_000);
    let refs: Vec<&str> = huge.iter().map(String::as_str).collect();
    match broker.classic_join_group(request("g", "huge", &refs)) {
        Err(Error::InconsistentGroupProtocol { group }) => assert_eq!(group, "g"),
        other => panic!("expected InconsistentGroupProtocol, got {other:?}"),
    }
    let over = names("p", MAX_CLASSIC_PROTOCOLS + 1);
    let refs: Vec<&str> = over.iter().map(String::as_str).collect();
    assert!(matches!(
        broker.classic_join_group(request("g", "over", &refs)),
        Err(Error::InconsistentGroupProtocol { .. })
    ));
    let mut fat = request("g", "fat", &["range"]);
    fat.protocols[0].1 = Bytes::from(vec![0u8; MAX_CLASSIC_PROTOCOL_BYTES + 1]);
    assert!(matches!(
        broker.classic_join_group(fat),
        Err(Error::InconsistentGroupProtocol { .. })
    ));
    assert_eq!(broker.describe_group("g").state, "Dead");
    // Two members with the largest lists allowed share one protocol: it is chosen.
    let mut a = names("a", MAX_CLASSIC_PROTOCOLS - 1);
    a.push("common".into());
    let mut b = names("b", MAX_CLASSIC_PROTOCOLS - 1);
    b.insert(0, "common".into());
    let a_refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let b_refs: Vec<&str> = b.iter().map(String::as_str).collect();
    let first = broker.begin_classic_join_group(request("g", "a", &a_refs));
    let second = broker.begin_classic_join_group(request("g", "b", &b_refs));
    let (first, second) = (first.wait().expect("a"), second.wait().expect("b"));
    assert_eq!((first.generation_id, second.generation_id), (1, 1));
    assert_eq!(first.protocol_name, "common");
    let leader = if first.leader == first.member_id {
        &first
    } else {
        &second
    };
    let mut metadata: Vec<Bytes> = leader.members.iter().map(|m| m.metadata.clone()).collect();
    metadata.sort();
    assert_eq!(
        metadata,
        vec![Bytes::from("a:common"), Bytes::from("b:common")]
    );
    // A third one sharing nothing with them is refused.
    let c = names("c", MAX_CLASSIC_PROTOCOLS);
    let c_refs: Vec<&str> = c.iter().map(String::as_str).collect();
    assert!(matches!(
        broker.classic_join_group(request("g", "c", &c_refs)),
        Err(Error::InconsistentGroupProtocol { .. })
    ));
}

#[test]
fn thousands_of_parked_joins_hold_no_thread_and_the_timer_ends_the_barrier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), Duration::from_secs(2));
    const MEMBERS: usize = 2_000;
    // One thread starts every join; none of them blocks it.
    let replies: Vec<ClassicReply<ClassicJoinResponse>> = (0..MEMBERS)
        .map(|i| broker.begin_classic_join_group(request("g", &format!("c{i}"), &["range"])))
        .collect();
    // Nobody waits on them: the timer thread completes the barrier.
    assert!(eventually(|| replies.iter().all(ClassicReply::is_ready)));
    let mut replies = replies.into_iter();
    let first = replies.next().expect("first reply");
    // A reply is also a future.
    let first = futures::executor::block_on(first).expect("first join");
    let joined: Vec<ClassicJoinResponse> = std::iter::once(first)
        .chain(replies.map(|r| r.wait().expect("join")))
        .collect();
    assert!(joined.iter().all(|j| j.generation_id == 1));
    let leaders: Vec<&ClassicJoinResponse> =
        joined.iter().filter(|j| j.leader == j.member_id).collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0].members.len(), MEMBERS);
    assert_eq!(broker.describe_group("g").state, "CompletingRebalance");
}

#[test]
fn closing_the_broker_answers_parked_joins_and_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), Duration::ZERO);
    // "j": a second member's join waits for the first to rejoin (30 s rebalance timeout).
    let alone = broker
        .classic_join_group(request("j", "a", &["range"]))
        .expect("join a");
    sync(&broker, "j", &alone, vec![]).wait().expect("sync a");
    let parked_join = broker.begin_classic_join_group(request("j", "b", &["range"]));
    assert!(eventually(
        || broker.describe_group("j").state == "PreparingRebalance"
    ));
    // "s": a follower's sync waits for the leader's.
    let (_leader, follower) = two_members(
        &broker,
        request("s", "l", &["range"]),
        request("s", "f", &["range"]),
    );
    let parked_sync = sync(&broker, "s", &follower, vec![]);
    assert!(!parked_join.is_ready() && !parked_sync.is_ready());
    broker.close().expect("close");
    match parked_join.wait() {
        Err(Error::Closed(_)) => {}
        other => panic!("expected Closed for the parked join, got {other:?}"),
    }
    match futures::executor::block_on(parked_sync) {
        Err(Error::Closed(_)) => {}
        other => panic!("expected Closed for the parked sync, got {other:?}"),
    }
    assert!(matches!(
        broker.classic_join_group(request("j", "c", &["range"])),
        Err(Error::Closed(_))
    ));
}

#[test]
fn a_follower_that_waited_longer_than_its_session_for_the_assignment_stays_a_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), Duration::ZERO);
    let session = Duration::from_secs(3);
    let member = |client: &str| {
        let mut r = request("g", client, &["range"]);
        r.session_timeout = session;
        r
    };
    let (leader, follower) = two_members(&broker, member("l"), member("f"));
    let parked = sync(&broker, "g", &follower, vec![]);
    // The leader takes longer than a session timeout to assign, heartbeating meanwhile.
    let started = Instant::now();
    while started.elapsed() < session + Duration::from_millis(500) {
        broker
            .classic_heartbeat("g", &leader.member_id, None, 2)
            .expect("leader heartbeat");
        thread::sleep(Duration::from_millis(200));
    }
    assert!(!parked.is_ready(), "a parked follower does not expire");
    let assignments = vec![
        (leader.member_id.clone(), Bytes::from_static(b"to-leader")),
        (
            follower.member_id.clone(),
            Bytes::from_static(b"to-follower"),
        ),
    ];
    sync(&broker, "g", &leader, assignments)
        .wait()
        .expect("leader sync");
    let synced = parked.wait().expect("follower sync");
    assert_eq!(synced.assignment, Bytes::from_static(b"to-follower"));
    // Let the timers run past a deadline set after the follower's answer: a probe member
    // with a 100 ms session expires in another group.
    let mut probe = request("probe", "p", &["range"]);
    probe.session_timeout = Duration::from_millis(100);
    broker.classic_join_group(probe).expect("probe join");
    assert!(eventually(|| broker
        .describe_group("probe")
        .members
        .is_empty()));
    let described = broker.describe_group("g");
    assert_eq!(described.state, "Stable");
    assert!(
        described
            .members
            .iter()
            .any(|m| m.member_id == follower.member_id),
        "the follower's session restarted when it got its assignment"
    );
    broker
        .classic_heartbeat("g", &follower.member_id, None, 2)
        .expect("follower heartbeat");
}

#[test]
fn a_replaced_static_member_committing_offsets_is_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), Duration::ZERO);
    broker
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let tp = TopicPartition::new("t", 0);
    let offsets = |offset: i64| vec![(tp.clone(), offset, String::new())];
    let mut stat = request("g", "s", &["range"]);
    stat.group_instance_id = Some("i".into());
    let old = broker.classic_join_group(stat.clone()).expect("join");
    sync(&broker, "g", &old, vec![]).wait().expect("sync");
    // The instance restarts: same instance id, no member id: the old id is fenced.
    let new = broker.classic_join_group(stat).expect("static rejoin");
    assert_ne!(new.member_id, old.member_id);
    match broker.offset_commit_with_instance("g", 1, &old.member_id, Some("i"), &offsets(1)) {
        Err(Error::FencedInstanceId {
            member_id,
            group_instance_id,
            ..
        }) => assert_eq!(
            (member_id, group_instance_id),
            (old.member_id.clone(), "i".into())
        ),
        other => panic!("expected FencedInstanceId, got {other:?}"),
    }
    assert!(matches!(
        broker.offset_commit_with_instance("g", 1, &new.member_id, Some("other"), &offsets(1)),
        Err(Error::UnknownMemberId { .. })
    ));
    broker
        .offset_commit_with_instance("g", 1, &new.member_id, Some("i"), &offsets(2))
        .expect("the current member commits");
    let id = broker
        .init_transactions("tx", Duration::from_secs(60))
        .expect("init");
    broker
        .add_offsets_to_txn("tx", id, "g")
        .expect("add offsets");
    match broker.txn_offset_commit_with_instance(
        "tx",
        id,
        "g",
        1,
        &old.member_id,
        Some("i"),
        &offsets(3),
    ) {
        Err(Error::FencedInstanceId { .. }) => {}
        other => panic!("expected FencedInstanceId from TxnOffsetCommit, got {other:?}"),
    }
    broker
        .txn_offset_commit_with_instance("tx", id, "g", 1, &new.member_id, Some("i"), &offsets(4))
        .expect("the current member's transactional commit");
    // LeaveGroup and SyncGroup from the old id are fenced too.
    assert!(matches!(
        broker.classic_leave_group("g", &[(old.member_id.clone(), Some("i".into()))])[0],
        Err(Error::FencedInstanceId { .. })
    ));
    assert!(matches!(
        broker
            .begin_classic_sync_group("g", &old.member_id, Some("i"), 1, None, None, vec![])
            .wait(),
        Err(Error::FencedInstanceId { .. })
    ));
    assert_eq!(
        broker
            .offset_fetch("g", std::slice::from_ref(&tp), false)
            .expect("fetch"),
        vec![(tp, Some(2))]
    );
}

#[test]
fn idle_groups_are_forgotten_unless_they_have_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), Duration::ZERO);
    let short = |group: &str| {
        let mut r = request(group, "c", &["range"]);
        r.session_timeout = Duration::from_millis(200);
        r.require_known_member_id = true;
        r
    };
    // Random group names answered MemberIdRequired do not pile up.
    for i in 0..50 {
        assert!(matches!(
            broker.classic_join_group(short(&format!("random-{i}"))),
            Err(Error::MemberIdRequired { .. })
        ));
    }
    // A group with committed offsets whose member expired is kept, Empty.
    broker
        .offset_commit("kept", -1, "", &[(TopicPartition::new("t", 0), 7)])
        .expect("standalone commit");
    let mut kept = short("kept");
    kept.require_known_member_id = false;
    let member = broker.classic_join_group(kept).expect("join");
    sync(&broker, "kept", &member, vec![]).wait().expect("sync");
    assert!(eventually(|| broker
        .describe_group("kept")
        .members
        .is_empty()));
    // A group made idle after "kept" was is forgotten after it: by then "kept" was looked at.
    assert!(matches!(
        broker.classic_join_group(short("late")),
        Err(Error::MemberIdRequired { .. })
    ));
    assert!(eventually(|| {
        let names: Vec<String> = broker
            .list_groups_detailed()
            .into_iter()
            .map(|(name, _, _)| name)
            .collect();
        names == ["kept"]
    }));
    let kept = broker.describe_group("kept");
    assert_eq!((kept.state.as_str(), kept.members.len()), ("Empty", 0));
    assert_eq!(kept.protocol_type, "consumer", "still the classic group");
    assert_eq!(broker.describe_group("random-0").state, "Dead");
}

#[test]
fn an_id_handed_out_with_member_id_required_survives_a_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path(), Duration::ZERO);
    let mut first = request("g", "a", &["range"]);
    first.rebalance_timeout = Duration::from_millis(300);
    let a = broker.classic_join_group(first.clone()).expect("join a");
    sync(&broker, "g", &a, vec![]).wait().expect("sync a");
    let mut second = request("g", "b", &["range"]);
    second.rebalance_timeout = Duration::from_millis(300);
    second.require_known_member_id = true;
    let b_id = match broker.classic_join_group(second.clone()) {
        Err(Error::MemberIdRequired { member_id, .. }) => member_id,
        other => panic!("expected MemberIdRequired, got {other:?}"),
    };
    // A rebalance completes before b comes back (a changes its metadata; the barrier waits
    // for the pending b until a's rebalance timeout).
    first.protocols[0].1 = Bytes::from_static(b"changed");
    let again = broker
        .classic_join_group(with_id(first, &a.member_id))
        .expect("rejoin a");
    assert_eq!(again.generation_id, 2);
    assert_eq!(again.members.len(), 1);
    // b's id is still good: it joins (a does not rejoin, so the next barrier ends at a's
    // rebalance timeout without it).
    let b = broker
        .classic_join_group(with_id(second, &b_id))
        .expect("b joins with the id it was given");
    assert_eq!(b.member_id, b_id);
    assert_eq!(b.generation_id, 3);
}
