//! The server's bounds over real TCP: `fetch.max.bytes`, answers that wait to be written,
//! a client that stops reading, a shutdown with a fetch parked, fetches that must answer at
//! once, and a disk error on append.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, Served, batch};
use kafka_protocol::ResponseError as Code;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_log::TopicConfig;
use sluice_server::ServerConfig;

/// How long a test waits for a condition that the code under test makes true long before:
/// past it the test fails instead of hanging. Never a measure of speed.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A Fetch of `partitions` of `topic` from offset 0.
fn fetch(
    topic: &str,
    partitions: i32,
    max_bytes: i32,
    min_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(64 << 20)
                        })
                        .collect(),
                ),
        ])
}

/// Record bytes per partition of a Fetch answer.
fn sizes(response: &FetchResponse) -> Vec<usize> {
    response.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .collect()
}

fn call_fetch(client: &mut Client, request: FetchRequest) -> FetchResponse {
    let ResponseKind::Fetch(r) = client.call(ApiKey::Fetch, 11, RequestKind::Fetch(request)) else {
        panic!("not Fetch");
    };
    r
}

/// A topic created through the broker, with one batch of `value_len` bytes per partition.
fn topic_with_data(served: &Served, topic: &str, partitions: i32, value_len: usize) {
    let config = TopicConfig::default()
        .with_partitions(partitions)
        .with_max_message_bytes(64 << 20);
    served
        .broker
        .create_topic(topic, config)
        .expect("create topic");
    let value = "x".repeat(value_len);
    for p in 0..partitions {
        served
            .broker
            .produce(topic, p, batch(&[("k", &value)]))
            .expect("produce");
    }
}

fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

#[test]
fn fetch_max_bytes_caps_what_a_client_asks_for() {
    let served = Served::start(ServerConfig::default().with_fetch_max_bytes(150_000));
    topic_with_data(&served, "capped", 3, 100_000);
    let mut client = served.client();
    // The client allows 64 MiB; the broker's 150,000 bytes hold the first batch (which goes
    // out whole) and no second one.
    let r = call_fetch(&mut client, fetch("capped", 3, 64 << 20, 1, 0));
    let got = sizes(&r);
    assert!(got[0] > 100_000, "{got:?}");
    assert_eq!(&got[1..], &[0, 0], "{got:?}");
    // Offsets still come for the partitions left out.
    assert!(
        r.responses[0]
            .partitions
            .iter()
            .all(|p| p.high_watermark == 1)
    );

    // Without the cap the same request gets every partition's batch.
    let served = Served::start(ServerConfig::default());
    topic_with_data(&served, "capped", 3, 100_000);
    let mut client = served.client();
    let got = sizes(&call_fetch(&mut client, fetch("capped", 3, 64 << 20, 1, 0)));
    assert!(got.iter().all(|&n| n > 100_000), "{got:?}");
}

/// More answer bytes than the connection buffers (one answer alone larger than the buffer):
/// every answer arrives whole, in order.
#[test]
fn pipelined_answers_beyond_the_write_buffer_arrive_whole_and_in_order() {
    let served = Served::start(ServerConfig::default());
    topic_with_data(&served, "large", 1, 9 << 20);
    topic_with_data(&served, "small", 1, 100_000);
    let mut client = served.client();
    let mut sent = Vec::new();
    for i in 0..8 {
        let topic = if i % 2 == 0 { "large" } else { "small" };
        let correlation = client.send(
            ApiKey::Fetch,
            11,
            &RequestKind::Fetch(fetch(topic, 1, 64 << 20, 1, 0)),
        );
        sent.push((correlation, topic));
    }
    for (correlation, topic) in sent {
        let (header, body) = client.receive(ApiKey::Fetch, 11);
        assert_eq!(header.correlation_id, correlation);
        let ResponseKind::Fetch(r) = body else {
            panic!("not Fetch");
        };
        let got = sizes(&r)[0];
        if topic == "large" {
            assert!(got > 9 << 20, "{got}");
        } else {
            assert!(got > 100_000 && got < 200_000, "{got}");
        }
    }
}

/// A client that pipelines fetches and never reads the answers: once a write makes no
/// progress for connections.max.idle.ms the server drops it, and its per-IP slot is free.
#[test]
fn a_client_that_stops_reading_is_dropped_and_frees_its_slot() {
    let served = Served::start(
        ServerConfig::default()
            .with_max_connections_per_ip(1)
            .with_connections_max_idle(Duration::from_millis(500)),
    );
    topic_with_data(&served, "unread", 1, 4 << 20);
    let mut stuck = served.client();
    // 48 MiB of answers: far more than the socket buffers and the server's answer buffer.
    for _ in 0..12 {
        stuck.send(
            ApiKey::Fetch,
            11,
            &RequestKind::Fetch(fetch("unread", 1, 64 << 20, 1, 0)),
        );
    }
    // Another connection is refused while the stuck one holds the only slot, and served
    // once the server has dropped it.
    let guard = Instant::now() + HANG_GUARD;
    loop {
        let mut other = served.client();
        other.send(
            ApiKey::ApiVersions,
            3,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        if other.read_frame().is_some() {
            break;
        }
        assert!(
            Instant::now() < guard,
            "the connection that stopped reading still holds its slot"
        );
    }
    drop(stuck);
}

#[test]
fn shutdown_does_not_wait_for_a_parked_fetch() {
    let mut served = Served::start(ServerConfig::default());
    served
        .broker
        .create_topic("quiet", TopicConfig::default())
        .expect("create topic");
    let mut client = served.client();
    // An ApiVersions, then at once a fetch that would wait 24 days for a byte: once the
    // ApiVersions is answered the server reads the fetch next (sent before that answer).
    let first = client.send(
        ApiKey::ApiVersions,
        3,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    client.send(
        ApiKey::Fetch,
        11,
        &RequestKind::Fetch(fetch("quiet", 1, 1 << 20, 1, i32::MAX)),
    );
    let (header, _) = client.receive(ApiKey::ApiVersions, 3);
    assert_eq!(header.correlation_id, first);
    let server = served.server.take().expect("server");
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // An hour's grace: returning at all shows the parked fetch was not waited for.
        server.shutdown(Duration::from_secs(3600));
        let _ = done.send(());
    });
    assert!(
        finished.recv_timeout(HANG_GUARD).is_ok(),
        "shutdown waited for a fetch parked for 24 days"
    );
    // The fetch got no answer: the connection is closed.
    assert!(client.read_frame().is_none());
}

/// Answers computed before the shutdown are written although the server stops reading,
/// even those still in the server when it starts (the client reads only afterwards).
#[test]
fn shutdown_writes_the_answers_already_owed() {
    let mut served = Served::start(ServerConfig::default());
    topic_with_data(&served, "owed", 1, 3 << 20);
    let mut client = served.client();
    // Two 3 MiB answers (more than loopback's socket buffers usually hold), then a produce
    // whose landing shows that everything before it was handled.
    let mut sent = Vec::new();
    for _ in 0..2 {
        sent.push(client.send(
            ApiKey::Fetch,
            11,
            &RequestKind::Fetch(fetch("owed", 1, 64 << 20, 1, 0)),
        ));
    }
    sent.push(client.send(
        ApiKey::Produce,
        9,
        &RequestKind::Produce(produce_request("owed", batch(&[("k", "v")]))),
    ));
    let guard = Instant::now() + HANG_GUARD;
    loop {
        let seen = served.broker.append_sequence();
        let end = served
            .broker
            .read("owed", 0, 0, 1)
            .map_or(0, |d| d.high_watermark);
        if end == 2 {
            break;
        }
        assert!(Instant::now() < guard, "the produce never landed");
        served.broker.wait_for_append(seen, guard);
    }
    let server = served.server.take().expect("server");
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.shutdown(Duration::from_secs(3600));
        let _ = done.send(());
    });
    let mut answered = Vec::new();
    while let Some(frame) = client.read_frame() {
        answered.push(common::peek_i32(&frame));
    }
    assert_eq!(answered, sent);
    assert!(
        finished.recv_timeout(HANG_GUARD).is_ok(),
        "shutdown did not return once its answers were written"
    );
}

#[test]
fn a_fetch_with_min_bytes_zero_or_no_partitions_answers_at_once() {
    let served = Served::start(ServerConfig::default());
    served
        .broker
        .create_topic("empty", TopicConfig::default())
        .expect("create topic");
    let mut client = served.client();
    // max_wait is 24 days; the client's 30 s read timeout fails the test if it is waited.
    let r = call_fetch(&mut client, fetch("empty", 1, 1 << 20, 0, i32::MAX));
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(sizes(&r), vec![0]);
    let none = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(i32::MAX)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20);
    let ResponseKind::Fetch(r) = client.call(ApiKey::Fetch, 11, RequestKind::Fetch(none)) else {
        panic!("not Fetch");
    };
    assert!(r.responses.is_empty());
}

/// The directory named `wanted` somewhere under `dir`.
fn find_dir(dir: &Path, wanted: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() == wanted {
                return Some(path);
            }
            if let Some(found) = find_dir(&path, wanted) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn a_disk_error_on_append_is_kafka_storage_error() {
    let served = Served::start(ServerConfig::default());
    let config = TopicConfig::default().with_segment_bytes(1024);
    served
        .broker
        .create_topic("disk", config)
        .expect("create topic");
    let mut client = served.client();
    let value = "x".repeat(2000);
    let produce = |client: &mut Client| {
        let ResponseKind::Produce(r) = client.call(
            ApiKey::Produce,
            9,
            RequestKind::Produce(produce_request("disk", batch(&[("k", &value)]))),
        ) else {
            panic!("not Produce");
        };
        r.responses[0].partition_responses[0].error_code
    };
    assert_eq!(produce(&mut client), 0);
    // The partition's directory goes away: the next append must roll the full segment and
    // cannot write the new files.
    let dir = find_dir(served.dir.path(), "disk-0").expect("the partition's directory");
    std::fs::remove_dir_all(&dir).expect("remove the partition's directory");
    assert_eq!(produce(&mut client), Code::KafkaStorageError.code());
}
