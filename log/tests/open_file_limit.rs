//! A topic (or a partition increase) needing more open files than the process's soft
//! open-file limit allows is refused up front with `OpenFileLimit`, and nothing is created
//! on disk: no partition directory, no config, no topic.

use std::path::Path;

use sluice_log::{Broker, BrokerConfig, Error, TopicConfig};

/// The soft `Max open files` of this process, if `/proc/self/limits` gives a finite one
/// that fits a partition count with room to spare.
fn soft_limit() -> Option<i32> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let soft: u64 = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    i32::try_from(soft).ok().filter(|&s| s < i32::MAX - 10)
}

/// Entries of `data` named like a partition directory of `topic`.
fn partition_dirs(data: &Path, topic: &str) -> Vec<String> {
    std::fs::read_dir(data)
        .expect("list data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_prefix(topic)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|p| p.parse::<i32>().is_ok())
        })
        .collect()
}

#[test]
fn partitions_past_the_open_file_limit_are_refused_before_anything_is_created() {
    let Some(limit) = soft_limit() else {
        eprintln!("no finite open-file limit in /proc/self/limits: nothing to check");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = Broker::open(&data, BrokerConfig::default()).expect("broker");
    let asked = limit + 10;

    let err = broker
        .create_topic("wide", TopicConfig::default().with_partitions(asked))
        .expect_err("more partitions than the open-file limit allows");
    assert!(
        matches!(&err, Error::OpenFileLimit { topic, requested, limit: l, .. }
            if topic == "wide" && *requested == asked && *l == limit as u64),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("`wide`")
            && message.contains(&asked.to_string())
            && message.contains(&limit.to_string())
            && message.contains("ulimit -n"),
        "{message}"
    );
    assert!(err.is_user_error(), "the CLI exits 2 for it");
    assert_eq!(partition_dirs(&data, "wide"), Vec::<String>::new());
    assert!(!data.join("meta").join("topics").join("wide.json").exists());
    assert!(matches!(
        broker.topic_metadata("wide"),
        Err(Error::UnknownTopic { .. })
    ));

    // The same check when partitions are added: the topic keeps what it had.
    broker
        .create_topic("narrow", TopicConfig::default().with_partitions(2))
        .expect("create");
    let err = broker
        .create_partitions("narrow", asked)
        .expect_err("more partitions than the open-file limit allows");
    assert!(
        matches!(&err, Error::OpenFileLimit { topic, requested, .. }
            if topic == "narrow" && *requested == asked),
        "{err:?}"
    );
    let mut dirs = partition_dirs(&data, "narrow");
    dirs.sort();
    assert_eq!(dirs, vec!["narrow-0".to_string(), "narrow-1".to_string()]);
    assert_eq!(broker.partition_count("narrow").expect("count"), 2);
    // A count within the limit still goes through.
    broker.create_partitions("narrow", 3).expect("grow");
    assert_eq!(broker.partition_count("narrow").expect("count"), 3);
}
