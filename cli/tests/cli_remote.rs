//! The `sluice` binary's topic, produce, consume and group commands with `--bootstrap-server`,
//! each scenario run against a real Apache Kafka 4.4 and against an in-process `sluice
//! broker` (kafka/tests/support). Every call runs the built executable; `--data` points at a
//! directory that must never be created, since the cluster is used instead.
#![cfg(feature = "kafka")]

#[path = "../../kafka/tests/support/mod.rs"]
mod support;

mod cli_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_support::{group_rows, output_with_input, text};
use sluice_log::partition_for_key;

/// How long a condition may take before the test fails (never reached when all is well).
const BOUND: Duration = Duration::from_secs(60);

/// Timeouts of `consume` that are never reached when all is well: the calls end at
/// --max-records. A Kafka broker holds a new group's first join for 3 s.
const LONG: &str = "30000";

/// `sluice --bootstrap-server BOOTSTRAP ARGS...`, with a data directory that must stay absent.
fn command(bootstrap: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("--data")
        .arg(absent_data_dir())
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .args(args)
        .env_remove("SLUICE_DATA")
        .env_remove("SLUICE_BOOTSTRAP_SERVER")
        .env_remove("RUST_LOG");
    cmd
}

/// A data directory path no call may create.
fn absent_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sluice-cli-remote-unused-{}", std::process::id()))
}

fn run_with_input(bootstrap: &str, args: &[&str], input: &str) -> Output {
    output_with_input(command(bootstrap, args), input)
}

fn run(bootstrap: &str, args: &[&str]) -> Output {
    run_with_input(bootstrap, args, "")
}

/// Asserts success, and that the data directory was not created; returns stdout.
fn ok(out: Output) -> String {
    let stdout = cli_support::ok(out);
    assert!(
        !absent_data_dir().exists(),
        "a command with --bootstrap-server created the data directory"
    );
    stdout
}

/// Asserts exit code `code` and an `error: ` line on stderr holding `needle`; returns it.
fn fails(code: i32, out: Output, needle: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit code {code}\nstdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(line.contains(needle), "expected {needle:?} in: {line}");
    line.to_string()
}

fn user_error(out: Output, needle: &str) -> String {
    fails(2, out, needle)
}

/// The partition rows of `topic describe`, as cells.
fn partition_rows(describe: &str) -> Vec<Vec<String>> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn number(cell: &str) -> i64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("numeric cell: {cell:?}"))
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

fn topic_list(bootstrap: &str) -> BTreeSet<String> {
    lines(&ok(run(bootstrap, &["topic", "list"])))
}

// ---------------------------------------------------------------------------------------
// Topics

fn topics(bootstrap: &str, sluice_broker: bool) {
    let topic = support::unique("cli-remote-topics");
    let out = ok(run(
        bootstrap,
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "2",
            "--retention-ms",
            "3600000",
        ],
    ));
    assert_eq!(out, format!("Created topic {topic} with 2 partitions.\n"));
    user_error(
        run(bootstrap, &["topic", "create", &topic]),
        &format!("topic `{topic}` already exists"),
    );

    let listed = topic_list(bootstrap);
    assert!(listed.contains(&topic), "{listed:?}");
    assert!(listed.iter().all(|t| !t.starts_with("__")), "{listed:?}");

    let describe = ok(run(bootstrap, &["topic", "describe", &topic]));
    let first = describe.lines().next().expect("a first line");
    let fsync = if sluice_broker { "commit" } else { "-" };
    assert_eq!(
        first,
        format!("Topic: {topic}  Partitions: 2  Fsync: {fsync}"),
        "{describe}"
    );
    assert!(
        describe.contains("Config: cleanup.policy=delete retention.ms=3600000 "),
        "{describe}"
    );
    let rows = partition_rows(&describe);
    assert_eq!(rows.len(), 2, "{describe}");
    for (p, row) in rows.iter().enumerate() {
        // PARTITION LOG-START LOG-END HIGH-WATERMARK LAST-STABLE DURABLE SIZE-BYTES SEGMENTS
        assert_eq!(row.len(), 8, "{describe}");
        assert_eq!(number(&row[0]), p as i64);
        assert_eq!(
            (number(&row[1]), number(&row[3]), number(&row[4])),
            (0, 0, 0)
        );
        assert_eq!([&row[2], &row[5], &row[6], &row[7]], ["-"; 4], "{describe}");
    }

    ok(run_with_input(
        bootstrap,
        &["produce", &topic, "--partition", "1"],
        "a\nb\nc\n",
    ));
    let rows = partition_rows(&ok(run(bootstrap, &["topic", "describe", &topic])));
    assert_eq!((number(&rows[1][3]), number(&rows[1][4])), (3, 3));
    assert_eq!(number(&rows[0][3]), 0);

    let out = ok(run(
        bootstrap,
        &["topic", "alter", &topic, "--partitions", "4"],
    ));
    assert_eq!(
        out,
        format!("Topic {topic} now has 4 partitions (was 2).\n")
    );
    let rows = partition_rows(&ok(run(bootstrap, &["topic", "describe", &topic])));
    assert_eq!(rows.len(), 4);
    user_error(
        run(bootstrap, &["topic", "alter", &topic, "--partitions", "3"]),
        "cannot go from 4 to 3 partitions",
    );

    let compacted = support::unique("cli-remote-compacted");
    ok(run(
        bootstrap,
        &["topic", "create", &compacted, "--cleanup", "compact"],
    ));
    let describe = ok(run(bootstrap, &["topic", "describe", &compacted]));
    assert!(
        describe.contains("Config: cleanup.policy=compact delete.retention.ms="),
        "{describe}"
    );

    for name in [&topic, &compacted] {
        assert_eq!(
            ok(run(bootstrap, &["topic", "delete", name])),
            format!("Deleted topic {name}.\n")
        );
    }
    // Kafka removes a topic from its metadata asynchronously.
    support::wait_until("the deleted topics to leave the list", BOUND, || {
        let listed = topic_list(bootstrap);
        !listed.contains(&topic) && !listed.contains(&compacted)
    });
    user_error(
        run(bootstrap, &["topic", "describe", &topic]),
        &format!("unknown topic `{topic}`"),
    );
}

#[test]
fn topics_on_kafka() {
    topics(support::kafka_bootstrap(), false);
}

#[test]
fn topics_on_sluice_broker() {
    let broker = support::SluiceBroker::start();
    topics(&broker.bootstrap, true);
}

// ---------------------------------------------------------------------------------------
// Produce and consume

fn produce_consume(bootstrap: &str) {
    let topic = support::unique("cli-remote-records");
    ok(run(
        bootstrap,
        &["topic", "create", &topic, "--partitions", "3"],
    ));

    let mut input: String = (0..10).map(|i| format!("k{i}:v{i}\n")).collect();
    input.push_str("no key here\n");
    let out = ok(run_with_input(
        bootstrap,
        &["produce", &topic, "--key-separator", ":", "--print-offsets"],
        &input,
    ));
    let acks: Vec<(i32, i64)> = out
        .lines()
        .map(|l| {
            let (p, o) = l.split_once('\t').expect("partition<TAB>offset");
            (p.parse().expect("partition"), o.parse().expect("offset"))
        })
        .collect();
    assert_eq!(acks.len(), 11, "{out}");
    // Keyed records go where Kafka's murmur2 puts them; offsets count up per partition in
    // input order.
    for (i, &(partition, _)) in acks.iter().take(10).enumerate() {
        assert_eq!(partition, partition_for_key(format!("k{i}").as_bytes(), 3));
    }
    let mut next = [0i64; 3];
    for &(partition, offset) in &acks {
        let p = usize::try_from(partition).expect("a partition of 3");
        assert_eq!(offset, next[p], "{out}");
        next[p] += 1;
    }

    // Everything comes back with its partition, offset and key (the keyless one's is empty).
    let out = ok(run(
        bootstrap,
        &[
            "consume",
            &topic,
            "--from-beginning",
            "--print-partition",
            "--print-offset",
            "--print-key",
            "--max-records",
            "11",
            "--timeout-ms",
            LONG,
        ],
    ));
    let mut expected = BTreeSet::new();
    for (i, line) in input.lines().enumerate() {
        let (partition, offset) = acks[i];
        let (key, value) = line.split_once(':').unwrap_or(("", line));
        expected.insert(format!("{partition}\t{offset}\t{key}\t{value}"));
    }
    assert_eq!(lines(&out), expected);
    assert_eq!(out.lines().count(), 11);

    // One partition from one offset; read_uncommitted reads the same (no transactions).
    let (partition, offset) = acks[4];
    let out = ok(run(
        bootstrap,
        &[
            "consume",
            &topic,
            "--partition",
            &partition.to_string(),
            "--offset",
            &offset.to_string(),
            "--max-records",
            "1",
            "--print-key",
            "--isolation",
            "read_uncommitted",
            "--timeout-ms",
            LONG,
        ],
    ));
    assert_eq!(out, "k4\tv4\n");

    // From the end (the default) there is nothing to read: it ends at the idle timeout.
    let started = Instant::now();
    assert_eq!(
        ok(run(bootstrap, &["consume", &topic, "--timeout-ms", "300"])),
        ""
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn produce_then_consume_on_kafka() {
    produce_consume(support::kafka_bootstrap());
}

#[test]
fn produce_then_consume_on_sluice_broker() {
    let broker = support::SluiceBroker::start();
    produce_consume(&broker.bootstrap);
}

// ---------------------------------------------------------------------------------------
// Consumer groups

fn consume_group(bootstrap: &str, topic: &str, group: &str, extra: &[&str]) -> String {
    let mut args = vec!["consume", topic, "--group", group, "--timeout-ms", LONG];
    args.extend_from_slice(extra);
    ok(run(bootstrap, &args))
}

fn describe_group(bootstrap: &str, group: &str) -> String {
    ok(run(bootstrap, &["group", "describe", group]))
}

fn groups(bootstrap: &str) {
    let topic = support::unique("cli-remote-group-in");
    let group = support::unique("cli-remote-group");
    ok(run(
        bootstrap,
        &["topic", "create", &topic, "--partitions", "2"],
    ));
    let first: String = (0..6).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(run_with_input(
        bootstrap,
        &["produce", &topic, "--key-separator", ":"],
        &first,
    ));

    let out = consume_group(
        bootstrap,
        &topic,
        &group,
        &["--from-beginning", "--max-records", "6"],
    );
    assert_eq!(lines(&out), (0..6).map(|i| format!("v{i}")).collect());

    // The group committed what it printed: the next member carries on after it.
    ok(run_with_input(
        bootstrap,
        &["produce", &topic, "--key-separator", ":"],
        "k6:v6\nk7:v7\nk8:v8\n",
    ));
    let out = consume_group(
        bootstrap,
        &topic,
        &group,
        &["--from-beginning", "--max-records", "3"],
    );
    assert_eq!(lines(&out), lines("v6\nv7\nv8\n"));

    let listed = lines(&ok(run(bootstrap, &["group", "list"])));
    assert!(listed.contains(&group), "{listed:?}");
    let describe = describe_group(bootstrap, &group);
    assert!(
        describe.starts_with(&format!("Group: {group}  Generation: -  Members: 0\n")),
        "{describe}"
    );
    assert!(describe.contains("No active members."), "{describe}");
    let rows = group_rows(&describe);
    assert_eq!(rows.len(), 2, "{describe}");
    for (p, row) in rows.iter().enumerate() {
        assert_eq!((row.0.as_str(), row.1), (topic.as_str(), p as i32));
        assert_eq!(row.2, row.3, "everything read is committed: {describe}");
        assert_eq!(row.4, "0", "{describe}");
    }
    let committed: i64 = rows.iter().map(|r| number(&r.2)).sum();
    assert_eq!(committed, 9, "{describe}");

    // Two new records on partition 1 are the lag.
    ok(run_with_input(
        bootstrap,
        &["produce", &topic, "--partition", "1"],
        "x\ny\n",
    ));
    let rows = group_rows(&describe_group(bootstrap, &group));
    assert_eq!((rows[0].4.as_str(), rows[1].4.as_str()), ("0", "2"));

    // Back to the start: every partition at 0, the lag everything.
    let out = ok(run(
        bootstrap,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
        ],
    ));
    assert_eq!(
        out,
        format!(
            "{}\n{topic}          0           0\n{topic}          1           0\n",
            format_args!(
                "{:<width$}  PARTITION  NEW-OFFSET",
                "TOPIC",
                width = topic.len()
            )
        ),
        "{out}"
    );
    let rows = group_rows(&describe_group(bootstrap, &group));
    assert!(rows.iter().all(|r| r.2 == "0"), "{rows:?}");
    assert_eq!(rows.iter().map(|r| number(&r.4)).sum::<i64>(), 11);

    // To an offset, clamped to each partition's end.
    let out = ok(run(
        bootstrap,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-offset",
            "4",
        ],
    ));
    let rows = group_rows(&describe_group(bootstrap, &group));
    for row in &rows {
        assert_eq!(number(&row.2), number(&row.3).min(4), "{out}\n{rows:?}");
    }
    user_error(
        run(
            bootstrap,
            &["group", "reset-offsets", &group, "--topic", &topic],
        ),
        "give exactly one of",
    );
}

/// A reset while a member is active is refused; the member is a `consume --group` waiting
/// for its first record on an empty topic, ended by producing one.
fn reset_refused_while_a_member_is_active(bootstrap: &str) {
    let topic = support::unique("cli-remote-busy");
    let group = support::unique("cli-remote-busy-group");
    ok(run(
        bootstrap,
        &["topic", "create", &topic, "--partitions", "2"],
    ));
    let member: Child = command(
        bootstrap,
        &[
            "consume",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-records",
            "1",
            "--timeout-ms",
            LONG,
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the consumer starts");

    // Assigned: the member row lists the topic's partitions.
    support::wait_until("the consumer to join and be assigned", BOUND, || {
        let out = run(bootstrap, &["group", "describe", &group]);
        out.status.success() && text(&out.stdout).contains(&format!("{topic}-0,{topic}-1"))
    });
    let describe = describe_group(bootstrap, &group);
    assert!(describe.contains("Members: 1\n"), "{describe}");
    user_error(
        run(
            bootstrap,
            &[
                "group",
                "reset-offsets",
                &group,
                "--topic",
                &topic,
                "--to-latest",
            ],
        ),
        &format!("group `{group}` has 1 active member"),
    );

    ok(run_with_input(bootstrap, &["produce", &topic], "wake up\n"));
    let out = member.wait_with_output().expect("the consumer ends");
    assert_eq!(ok(out), "wake up\n");
    support::wait_until("the member to have left", BOUND, || {
        describe_group(bootstrap, &group).contains("Members: 0\n")
    });
    let out = ok(run(
        bootstrap,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-latest",
        ],
    ));
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn groups_on_kafka() {
    groups(support::kafka_bootstrap());
}

#[test]
fn groups_on_sluice_broker() {
    let broker = support::SluiceBroker::start();
    groups(&broker.bootstrap);
}

#[test]
fn reset_refused_while_a_member_is_active_on_kafka() {
    reset_refused_while_a_member_is_active(support::kafka_bootstrap());
}

#[test]
fn reset_refused_while_a_member_is_active_on_sluice_broker() {
    let broker = support::SluiceBroker::start();
    reset_refused_while_a_member_is_active(&broker.bootstrap);
}

// ---------------------------------------------------------------------------------------
// Errors

fn user_errors(bootstrap: &str) {
    let missing = support::unique("cli-remote-missing");
    let expected = format!("unknown topic `{missing}` on the cluster at {bootstrap}");
    user_error(run(bootstrap, &["topic", "describe", &missing]), &expected);
    user_error(run(bootstrap, &["topic", "delete", &missing]), &expected);
    user_error(
        run(
            bootstrap,
            &["topic", "alter", &missing, "--partitions", "2"],
        ),
        &expected,
    );
    user_error(
        run_with_input(bootstrap, &["produce", &missing], "x\n"),
        &expected,
    );
    user_error(run(bootstrap, &["consume", &missing]), &expected);
    user_error(
        run(bootstrap, &["consume", &missing, "--group", "g"]),
        &expected,
    );
    // Asking never auto-creates the topic (Kafka's auto.create.topics.enable is on).
    assert!(!topic_list(bootstrap).contains(&missing));

    let topic = support::unique("cli-remote-errors");
    ok(run(
        bootstrap,
        &["topic", "create", &topic, "--partitions", "2"],
    ));
    user_error(
        run(bootstrap, &["consume", &topic, "--partition", "5"]),
        &format!("unknown partition {topic}-5 (the topic has 2 partitions)"),
    );
    user_error(
        run_with_input(bootstrap, &["produce", &topic, "--partition", "2"], "x\n"),
        &format!("unknown partition {topic}-2"),
    );
    user_error(
        run(
            bootstrap,
            &["consume", &topic, "--partition", "1", "--offset", "7"],
        ),
        &format!("offset 7 is out of range for {topic}-1"),
    );
    let group = support::unique("cli-remote-no-group");
    user_error(
        run(bootstrap, &["group", "describe", &group]),
        &format!("unknown group `{group}`"),
    );
    user_error(
        run(bootstrap, &["-X", "no.such.property=1", "topic", "list"]),
        "no.such.property",
    );
}

#[test]
fn user_errors_on_kafka() {
    user_errors(support::kafka_bootstrap());
}

#[test]
fn user_errors_on_sluice_broker() {
    let broker = support::SluiceBroker::start();
    user_errors(&broker.bootstrap);
}

#[test]
fn an_unreachable_cluster_fails_within_the_request_timeout() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let line = fails(
        1,
        run(
            &bootstrap,
            &["--request-timeout-ms", "1500", "topic", "list"],
        ),
        &format!("cannot reach the Kafka cluster at {bootstrap}"),
    );
    assert!(line.contains("1500 ms"), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn cluster_properties_need_a_bootstrap_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--data"])
        .arg(absent_data_dir())
        .args(["-X", "security.protocol=SSL", "topic", "list"])
        .env_remove("SLUICE_BOOTSTRAP_SERVER")
        .output()
        .expect("sluice runs");
    user_error(out, "need --bootstrap-server");
    assert!(!absent_data_dir().exists());
}
