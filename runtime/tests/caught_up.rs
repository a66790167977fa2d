//! `AppHandle::wait_until_caught_up` and `Broker::group_lag`: an app that has committed its
//! inputs (and its repartition topic) to their ends is caught up, and then its output holds
//! every input's effect; one that has not, or has failed, is not.

mod common;

use std::time::Duration;

use common::apps::wordcount_builder;
use common::read_committed;
use sluice_log::{Broker, BrokerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use sluice_runtime::AppConfig;
use sluice_runtime::app::App;

const WAIT: Duration = Duration::from_secs(120);

fn produce(broker: &Broker, lines: &[&str]) {
    let producer = Producer::new(broker, ProducerConfig::default()).expect("producer");
    for line in lines {
        producer
            .send(ProducerRecord::new("text-input", line.to_string()))
            .expect("send");
    }
    producer.flush().expect("flush");
}

#[test]
fn an_app_is_caught_up_once_every_input_is_counted_and_lags_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    for topic in ["text-input", "word-counts"] {
        broker
            .create_topic(topic, TopicConfig::default().with_partitions(2))
            .expect("topic");
    }
    let lines = ["a b c", "b c", "c"];
    produce(&broker, &lines);
    let words: usize = lines.iter().map(|l| l.split_whitespace().count()).sum();
    // Before the app runs, its group lags by every input record.
    let before = broker.group_lag_on("wc", &["text-input"]).expect("lag");
    assert_eq!(before.len(), 2);
    assert_eq!(
        before.iter().map(|l| l.lag()).sum::<i64>(),
        lines.len() as i64
    );
    assert!(before.iter().all(|l| l.committed.is_none()));
    assert!(
        broker.group_lag("wc").expect("lag").is_empty(),
        "nothing committed yet"
    );

    let config = AppConfig::default()
        .with_state_dir(dir.path().join("state"))
        .with_commit_interval(Duration::from_millis(50));
    let topology = wordcount_builder().build().expect("topology");
    let handle = App::new("wc", topology, config)
        .expect("app")
        .start(&broker)
        .expect("start");
    assert!(handle.wait_until_caught_up(WAIT).expect("app running"));
    // Caught up means committed: every word is in the output, read_committed.
    assert_eq!(read_committed(&broker, "word-counts").len(), words);
    let lag = broker.group_lag("wc").expect("lag");
    assert!(
        lag.iter().any(|l| l.partition.topic == "text-input"),
        "{lag:?}"
    );
    assert!(lag.iter().all(|l| l.lag() == 0), "{lag:?}");

    // New input: the group lags again until the app has counted it.
    produce(&broker, &["d d"]);
    assert!(handle.wait_until_caught_up(WAIT).expect("app running"));
    assert_eq!(read_committed(&broker, "word-counts").len(), words + 2);
    handle.shutdown().expect("clean shutdown");
}

#[test]
fn input_written_while_no_instance_runs_shows_as_lag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path().join("log"), BrokerConfig::default()).expect("broker");
    for topic in ["text-input", "word-counts"] {
        broker
            .create_topic(topic, TopicConfig::default())
            .expect("topic");
    }
    let config = AppConfig::default().with_state_dir(dir.path().join("state"));
    let topology = wordcount_builder().build().expect("topology");
    let app = App::new("wc", topology, config).expect("app");
    let handle = app.start(&broker).expect("start");
    assert!(handle.wait_until_caught_up(WAIT).expect("running"));
    handle.shutdown().expect("clean shutdown");
    // Input arrives while no instance runs: the group lags, and stays behind.
    produce(&broker, &["late"]);
    assert!(!broker.group_caught_up("wc", &["text-input"]).expect("lag"));
    let lag = broker.group_lag_on("wc", &["text-input"]).expect("lag");
    assert_eq!(lag.iter().map(|l| l.lag()).sum::<i64>(), 1);
    // An unknown topic is an error, not "caught up".
    assert!(broker.group_lag_on("wc", &["no-such-topic"]).is_err());
}
