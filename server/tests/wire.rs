//! The server over real TCP with raw Kafka frames: versions (KIP-511), produce and fetch
//! byte for byte, auto-creation, long polls, pipelining, and bad input that must close only
//! its own connection.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Client, Served, batch};
use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_server::ServerConfig;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let ResponseKind::CreateTopics(r) =
        client.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(request))
    else {
        panic!("not a CreateTopics response");
    };
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponseLike {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let ResponseKind::Produce(r) = client.call(ApiKey::Produce, 9, RequestKind::Produce(request))
    else {
        panic!("not a Produce response");
    };
    let p = &r.responses[0].partition_responses[0];
    PartitionProduceResponseLike {
        error_code: p.error_code,
        base_offset: p.base_offset,
    }
}

struct PartitionProduceResponseLike {
    error_code: i16,
    base_offset: i64,
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

#[test]
fn api_versions_lists_what_is_supported_and_answers_a_newer_version_in_v0() {
    let served = Served::start(ServerConfig::default());
    let mut client = served.client();
    let ResponseKind::ApiVersions(r) = client.call(
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) else {
        panic!("not ApiVersions");
    };
    assert_eq!(r.error_code, 0);
    let produce = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("produce listed");
    assert_eq!((produce.min_version, produce.max_version), (3, 11));
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::EndTxn as i16)
    );

    // KIP-511: v9 does not exist; the answer comes in v0 with UNSUPPORTED_VERSION and the list.
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(9);
    frame.put_i32(77);
    frame.put_i16(-1); // null client id
    frame.put_bytes(0, 4); // whatever a future body holds
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    client.write_raw(&frame);
    let (header, body) = client.receive(ApiKey::ApiVersions, 0);
    assert_eq!(header.correlation_id, 77);
    let ResponseKind::ApiVersions(r) = body else {
        panic!("not ApiVersions");
    };
    assert_eq!(r.error_code, Code::UnsupportedVersion.code());
    assert!(r.api_keys.len() > 20);
}

#[test]
fn produce_then_fetch_returns_the_stored_batch_unchanged() {
    let served = Served::start(ServerConfig::default());
    let mut client = served.client();
    create_topic(&mut client, "orders", 1);
    let sent = batch(&[("k1", "v1"), ("k2", "v2")]);
    let first = produce(&mut client, "orders", 0, sent.clone());
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let second = produce(&mut client, "orders", 0, batch(&[("k3", "v3")]));
    assert_eq!((second.error_code, second.base_offset), (0, 2));

    let ResponseKind::Fetch(r) = client.call(
        ApiKey::Fetch,
        11,
        RequestKind::Fetch(fetch_request("orders", 0, 0)),
    ) else {
        panic!("not Fetch");
    };
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!((p.high_watermark, p.last_stable_offset), (3, 3));
    let records = p.records.clone().expect("records");
    // The first batch is the client's bytes, with its base offset and leader epoch (neither
    // covered by the CRC) set by the broker.
    assert_eq!(&records[8..12], &sent[8..12]);
    assert_eq!(&records[16..sent.len()], &sent[16..]);
    assert_eq!(
        i64::from_be_bytes(records[..8].try_into().expect("8 bytes")),
        0
    );
}

#[test]
fn metadata_auto_creates_topics_with_num_partitions_when_allowed() {
    let served = Served::start(ServerConfig::default().with_num_partitions(4));
    let mut client = served.client();
    let ask = |allow: bool, topic: &str| {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(topic))),
            ]))
            .with_allow_auto_topic_creation(allow)
    };
    let ResponseKind::Metadata(r) = client.call(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(ask(false, "absent")),
    ) else {
        panic!("not Metadata");
    };
    assert_eq!(r.topics[0].error_code, Code::UnknownTopicOrPartition.code());
    let ResponseKind::Metadata(r) = client.call(
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(ask(true, "fresh")),
    ) else {
        panic!("not Metadata");
    };
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 4);
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(r.brokers[0].port, i32::from(served.addr.port()));
    assert_ne!(r.topics[0].topic_id, uuid::Uuid::nil());

    let served = Served::start(ServerConfig::default().with_auto_create_topics(false));
    let mut client = served.client();
    let ResponseKind::Metadata(r) = client.call(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(ask(true, "fresh")),
    ) else {
        panic!("not Metadata");
    };
    assert_eq!(r.topics[0].error_code, Code::UnknownTopicOrPartition.code());
}

#[test]
fn a_long_poll_fetch_returns_when_another_client_produces() {
    let served = Served::start(ServerConfig::default());
    let mut producer = served.client();
    create_topic(&mut producer, "waits", 1);
    let mut consumer = served.client();
    let correlation = consumer.send(
        ApiKey::Fetch,
        11,
        &RequestKind::Fetch(fetch_request("waits", 0, 60_000)),
    );
    let out = produce(&mut producer, "waits", 0, batch(&[("k", "v")]));
    assert_eq!(out.error_code, 0);
    let (header, body) = consumer.receive(ApiKey::Fetch, 11);
    assert_eq!(header.correlation_id, correlation);
    let ResponseKind::Fetch(r) = body else {
        panic!("not Fetch");
    };
    assert!(
        !r.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default()
            .is_empty()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let served = Served::start(ServerConfig::default());
    let mut client = served.client();
    create_topic(&mut client, "piped", 1);
    let mut sent = Vec::new();
    for i in 0..20 {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name("piped"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&[("k", &format!("v{i}"))]))),
                    ]),
            ]);
        sent.push(client.send(ApiKey::Produce, 9, &RequestKind::Produce(request)));
    }
    for (i, correlation) in sent.into_iter().enumerate() {
        let (header, body) = client.receive(ApiKey::Produce, 9);
        assert_eq!(header.correlation_id, correlation);
        let ResponseKind::Produce(r) = body else {
            panic!("not Produce");
        };
        assert_eq!(r.responses[0].partition_responses[0].base_offset, i as i64);
    }
}

#[test]
fn a_corrupt_batch_is_refused_and_the_connection_stays_usable() {
    let served = Served::start(ServerConfig::default().with_message_max_bytes(200));
    let mut client = served.client();
    create_topic(&mut client, "guarded", 1);
    let good = batch(&[("k", "v")]);
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let out = produce(&mut client, "guarded", 0, Bytes::from(bad));
    assert_eq!(out.error_code, Code::CorruptMessage.code());
    let big = batch(&[("k", &"x".repeat(500))]);
    let out = produce(&mut client, "guarded", 0, big);
    assert_eq!(out.error_code, Code::MessageTooLarge.code());
    let out = produce(&mut client, "guarded", 0, good);
    assert_eq!((out.error_code, out.base_offset), (0, 0));
}

/// Sends `frame` on a fresh connection and checks that the server closes it, that another
/// connection still works, and that acknowledged data is intact.
fn closes_only_its_connection(served: &Served, frame: &[u8]) {
    let mut bad = served.client();
    bad.write_raw(frame);
    assert!(
        bad.is_closed(),
        "the server kept a connection that sent {frame:02x?}"
    );
    let mut good = served.client();
    let ResponseKind::Fetch(r) = good.call(
        ApiKey::Fetch,
        11,
        RequestKind::Fetch(fetch_request("kept", 0, 0)),
    ) else {
        panic!("not Fetch");
    };
    assert_eq!(r.responses[0].partitions[0].high_watermark, 1);
}

#[test]
fn malformed_frames_close_only_their_own_connection() {
    let served = Served::start(ServerConfig::default().with_max_request_bytes(1 << 20));
    let mut client = served.client();
    create_topic(&mut client, "kept", 1);
    assert_eq!(
        produce(&mut client, "kept", 0, batch(&[("k", "v")])).error_code,
        0
    );

    // A size over socket.request.max.bytes, and a negative one.
    closes_only_its_connection(&served, &(2i32 << 20).to_be_bytes());
    closes_only_its_connection(&served, &(-5i32).to_be_bytes());
    // An unknown API key.
    let mut frame = vec![0, 0, 0, 10, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    closes_only_its_connection(&served, &frame);
    // A Metadata v1 whose topic array claims two billion entries (the allocation the
    // patched codec refuses).
    frame = vec![
        0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
    ];
    closes_only_its_connection(&served, &frame);
    // A Produce whose body is cut short.
    frame = vec![0, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0];
    closes_only_its_connection(&served, &frame);
    // The first connection is still served.
    assert_eq!(
        produce(&mut client, "kept", 0, batch(&[("k", "v")])).error_code,
        0
    );
}

#[test]
fn connections_per_ip_are_capped_and_idle_ones_closed() {
    let served = Served::start(
        ServerConfig::default()
            .with_max_connections_per_ip(2)
            .with_connections_max_idle(Duration::from_millis(300)),
    );
    let mut first = served.client();
    let mut second = served.client();
    let ResponseKind::ApiVersions(_) = first.call(
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) else {
        panic!("not ApiVersions");
    };
    let ResponseKind::ApiVersions(_) = second.call(
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) else {
        panic!("not ApiVersions");
    };
    let mut third = served.client();
    assert!(third.is_closed(), "a third connection from one IP was kept");
    // Both idle connections are closed by the server in time (the read blocks until then).
    assert!(first.is_closed());
    assert!(second.is_closed());
    // Their slots are free again.
    let mut fourth = served.client();
    let ResponseKind::ApiVersions(_) = fourth.call(
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) else {
        panic!("not ApiVersions");
    };
}

/// An ApiVersions v3 request whose header carries `tags` empty tagged fields.
fn api_versions_with_tagged_fields(tags: u32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u32) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut body = vec![0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff];
    varint(&mut body, tags);
    for tag in 0..tags {
        varint(&mut body, tag);
        body.push(0); // an empty value
    }
    body.extend_from_slice(&[1, 1, 0]); // empty client name and version, no tagged fields
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

#[test]
fn more_than_ten_thousand_tagged_fields_close_the_connection() {
    let served = Served::start(ServerConfig::default());
    let mut client = served.client();
    create_topic(&mut client, "kept", 1);
    assert_eq!(
        produce(&mut client, "kept", 0, batch(&[("k", "v")])).error_code,
        0
    );
    // At the limit the request is answered...
    let mut at_limit = served.client();
    at_limit.write_raw(&api_versions_with_tagged_fields(10_000));
    assert!(
        at_limit.read_frame().is_some(),
        "10,000 tagged fields were refused"
    );
    // ... one more closes the connection (Kafka 4.4's limit), and nothing else.
    closes_only_its_connection(&served, &api_versions_with_tagged_fields(10_001));
}

/// Kafka's fetch budget: the first partition with data returns a batch however large; after
/// that, only whole batches within `max_bytes` go out, and a spent budget returns nothing.
#[test]
fn a_fetch_keeps_to_max_bytes_after_its_first_batch() {
    let served = Served::start(ServerConfig::default());
    let mut client = served.client();
    create_topic(&mut client, "big", 3);
    let value = "x".repeat(100_000);
    for p in 0..3 {
        assert_eq!(
            produce(&mut client, "big", p, batch(&[("k", &value)])).error_code,
            0
        );
    }
    let fetch = |max_bytes: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name("big"))
                    .with_partitions(
                        (0..3)
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(0)
                                    .with_partition_max_bytes(1 << 20)
                            })
                            .collect(),
                    ),
            ])
    };
    let sizes = |client: &mut Client, max_bytes: i32| -> Vec<usize> {
        let ResponseKind::Fetch(r) =
            client.call(ApiKey::Fetch, 11, RequestKind::Fetch(fetch(max_bytes)))
        else {
            panic!("not Fetch");
        };
        r.responses[0]
            .partitions
            .iter()
            .map(|p| {
                assert_eq!(p.high_watermark, 1, "offsets still come with no data");
                p.records.as_ref().map_or(0, |r| r.len())
            })
            .collect()
    };
    let small = sizes(&mut client, 50_000);
    assert!(
        small[0] > 100_000,
        "the first batch goes out over the budget: {small:?}"
    );
    assert_eq!(&small[1..], &[0, 0], "{small:?}");
    let two = sizes(&mut client, 250_000);
    assert!(two[0] > 0 && two[1] > 0 && two[2] == 0, "{two:?}");
    let all = sizes(&mut client, 1 << 20);
    assert!(all.iter().all(|&n| n > 100_000), "{all:?}");
}

#[test]
fn create_topics_accepts_a_replica_assignment_naming_this_node_only() {
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    let served = Served::start(ServerConfig::default());
    let mut client = served.client();
    let assigned = |brokers: Vec<i32>| {
        CreatableTopic::default()
            .with_name(name("assigned"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                (0..2)
                    .map(|p| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(p)
                            .with_broker_ids(brokers.iter().map(|&b| BrokerId(b)).collect())
                    })
                    .collect(),
            )
    };
    let create = |client: &mut Client, topic: CreatableTopic| {
        let ResponseKind::CreateTopics(r) = client.call(
            ApiKey::CreateTopics,
            5,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
        ) else {
            panic!("not CreateTopics");
        };
        (r.topics[0].error_code, r.topics[0].num_partitions)
    };
    assert_eq!(
        create(&mut client, assigned(vec![1])).0,
        Code::InvalidReplicaAssignment.code()
    );
    assert_eq!(
        create(&mut client, assigned(vec![0, 1])).0,
        Code::InvalidReplicaAssignment.code()
    );
    assert_eq!(create(&mut client, assigned(vec![0])), (0, 2));
}
