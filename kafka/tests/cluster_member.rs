//! The seam's group member (`sluice_log::cluster::GroupMember`), one contract on every
//! backend: the embedded `Broker`, and `KafkaCluster` on `sluice broker` and on Apache Kafka
//! 4.4. A lone member gets every partition of every co-partitioned set; a second member
//! splits them with it (disjoint, nothing lost, the same partition numbers of co-partitioned
//! topics); offsets sent with the metadata of the generation before are refused as
//! `Migrated` (the zombie fence of KIP-447); committed offsets round-trip; when the second
//! leaves, the first gets everything back. An assignment is `continuous` exactly when the
//! member held the generation before it (so a task it keeps may keep its state): not on a
//! first join, and not for a zombie that lost its membership while it did not poll.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sluice_kafka::{KafkaCluster, KafkaConfig};
use sluice_log::Broker;
use sluice_log::BrokerConfig;
use sluice_log::ProducerRecord;
use sluice_log::TopicPartition;
use sluice_log::cluster::{
    Assignment, Cluster, ClusterError, ErrorClass, GroupEvent, GroupMember, GroupSpec,
    InternalTopic, InternalTopicKind, ProducerSpec, TxnProducer,
};

const BOUND: Duration = Duration::from_secs(90);

fn assignment<M: GroupMember>(member: &mut M, what: &str) -> Assignment {
    let deadline = Instant::now() + BOUND;
    loop {
        match member
            .poll_group(Duration::from_millis(500))
            .expect("poll group")
        {
            GroupEvent::Assigned(a) => return a,
            GroupEvent::Unchanged => assert!(Instant::now() < deadline, "no assignment: {what}"),
        }
    }
}

/// The next assignment's partitions, checking whether it is continuous.
fn assigned<M: GroupMember>(
    member: &mut M,
    what: &str,
    continuous: bool,
) -> BTreeSet<(usize, i32)> {
    let a = assignment(member, what);
    assert_eq!(a.continuous, continuous, "{what}: {a:?}");
    a.partitions.into_iter().collect()
}

fn contract<C: Cluster>(cluster: &C) {
    let (a, b, c) = (
        support::unique("member-a"),
        support::unique("member-b"),
        support::unique("member-c"),
    );
    for (topic, partitions) in [(&a, 4), (&b, 4), (&c, 2)] {
        let spec = InternalTopic {
            partitions: Some(partitions),
            kind: InternalTopicKind::Repartition,
        };
        cluster.create_internal_topic(topic, &spec).expect("create");
    }
    let group = support::unique("member-group");
    let spec = GroupSpec::new(&group, vec![vec![a.clone(), b.clone()], vec![c.clone()]])
        .with_session_timeout(Duration::from_secs(10))
        .with_poll_interval(Duration::from_secs(60));
    let all: BTreeSet<(usize, i32)> = (0..4)
        .map(|p| (0, p))
        .chain((0..2).map(|p| (1, p)))
        .collect();

    let mut first = cluster.member(&spec).expect("member");
    assert_eq!(assigned(&mut first, "the lone member", false), all);
    assert_eq!(
        first.poll_group(Duration::ZERO).expect("poll"),
        GroupEvent::Unchanged
    );
    let a0 = TopicPartition::new(&a, 0);
    first.commit_offsets(&[(a0.clone(), 7)]).expect("commit");
    let committed = first
        .committed(std::slice::from_ref(&a0))
        .expect("committed");
    assert_eq!(committed, [(a0.clone(), Some(7))]);
    let before = first.metadata().expect("metadata");

    // A second member joins (on its own thread: joining waits for the first to rejoin).
    let joiner = {
        let (cluster, spec) = (cluster.clone(), spec.clone());
        std::thread::spawn(move || {
            let mut second = cluster.member(&spec).expect("member");
            let share = assigned(&mut second, "the joining member", false);
            (second, share)
        })
    };
    let first_share = assigned(&mut first, "the first member after the join", true);
    let (second, second_share) = joiner.join().expect("joiner thread");
    assert!(
        first_share.is_disjoint(&second_share),
        "{first_share:?} {second_share:?}"
    );
    let union: BTreeSet<_> = first_share.union(&second_share).copied().collect();
    assert_eq!(union, all, "every partition is someone's");
    assert!(!first_share.is_empty() && !second_share.is_empty());

    // Offsets sent with the metadata of the generation before are refused.
    let mut zombie = cluster
        .producer(&ProducerSpec::new(support::unique("member-zombie")))
        .expect("producer");
    zombie.init_transactions().expect("init");
    let refused = zombie
        .begin_transaction()
        .and_then(|()| zombie.send(ProducerRecord::new(&c, "z").with_partition(0)))
        .and_then(|()| zombie.send_offsets_to_transaction(&[(a0.clone(), 9)], &before))
        .and_then(|()| zombie.commit_transaction());
    let error = refused.expect_err("a zombie's offsets were taken");
    assert_eq!(error.class(), ErrorClass::Migrated, "{error}");
    assert_eq!(
        first
            .committed(std::slice::from_ref(&a0))
            .expect("committed"),
        [(a0.clone(), Some(7))]
    );

    // The second leaves: the first gets everything back.
    second.leave().expect("leave");
    assert_eq!(assigned(&mut first, "the member left alone", true), all);
    first.leave().expect("leave");
    zombie_contract(cluster);
}

/// A member that stops polling loses its membership (embedded: its session expires; Kafka:
/// librdkafka's poll interval runs out, and the group rebalances without it); the next
/// assignment it gets is not continuous, even where it gets some of its old partitions back.
fn zombie_contract<C: Cluster>(cluster: &C) {
    let topic = support::unique("member-zombie-in");
    let spec = InternalTopic {
        partitions: Some(2),
        kind: InternalTopicKind::Repartition,
    };
    cluster
        .create_internal_topic(&topic, &spec)
        .expect("create");
    // Kafka's smallest session timeout (group.min.session.timeout.ms) is 6 s; librdkafka
    // wants max.poll.interval.ms >= session.timeout.ms.
    let spec = GroupSpec::new(support::unique("member-zombies"), vec![vec![topic]])
        .with_session_timeout(Duration::from_secs(6))
        .with_poll_interval(Duration::from_secs(6));
    let all: BTreeSet<(usize, i32)> = [(0, 0), (0, 1)].into();
    let mut zombie = cluster.member(&spec).expect("member");
    assert_eq!(assigned(&mut zombie, "the zombie-to-be", false), all);
    // The zombie stops polling; another member ends up with everything.
    let mut other = cluster.member(&spec).expect("member");
    let deadline = Instant::now() + BOUND;
    while assignment(&mut other, "the member that stays").partitions != [(0, 0), (0, 1)] {
        assert!(Instant::now() < deadline, "the zombie kept its partitions");
    }
    // Back: whatever it gets, it must not keep state from before.
    let back = assignment(&mut zombie, "the zombie back");
    assert!(!back.continuous, "{back:?}");
    other.leave().expect("leave");
    zombie.leave().expect("leave");
}

#[test]
fn the_member_on_the_embedded_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open");
    contract(&broker);
}

#[test]
fn the_member_on_sluice_broker_over_kafka_protocol() {
    let sluice = support::SluiceBroker::start();
    let cluster = KafkaCluster::connect(KafkaConfig::new(&sluice.bootstrap)).expect("connect");
    contract(&cluster);
}

#[test]
fn the_member_on_apache_kafka() {
    let cluster =
        KafkaCluster::connect(KafkaConfig::new(support::kafka_bootstrap())).expect("connect");
    contract(&cluster);
}
