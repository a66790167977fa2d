//! Tests of the `sluice` binary: every call runs the built executable on a temporary data
//! directory, so each one reopens the log from disk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod cli_support;

use cli_support::{json, ok, output_with_input, text};

#[path = "cli/group.rs"]
mod group;
#[path = "cli/runtime_perf.rs"]
mod runtime_perf;
#[path = "cli/txn.rs"]
mod txn;

fn command(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("--data")
        .arg(data)
        .args(args)
        .env_remove("SLUICE_DATA")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `sluice --data DATA ARGS...` with `input` on stdin.
fn run_with_input(data: &Path, args: &[&str], input: &str) -> Output {
    output_with_input(command(data, args), input)
}

/// Runs `sluice --data DATA ARGS...` with an empty stdin.
fn run(data: &Path, args: &[&str]) -> Output {
    run_with_input(data, args, "")
}

/// Asserts exit code 2 with exactly one `error: ` line on stderr, and returns that line.
fn user_error(out: Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit code 2\nstdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "stderr: {stderr}");
    lines[0].to_string()
}

/// The partition rows of `topic describe`, as numbers.
fn partition_rows(describe: &str) -> Vec<Vec<i64>> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .map(|l| {
            l.split_whitespace()
                .map(|n| n.parse().expect("numeric cell"))
                .collect()
        })
        .collect()
}

#[test]
fn topic_create_list_describe_alter_delete_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    let out = ok(run(
        &data,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--retention-ms",
            "-1",
            "--segment-bytes",
            "1048576",
            "--fsync",
            "interval:100",
        ],
    ));
    assert!(out.contains("Created topic orders"), "{out}");
    ok(run(&data, &["topic", "create", "audit"]));
    ok(run(
        &data,
        &["topic", "create", "changelog", "--cleanup", "compact"],
    ));
    assert_eq!(
        ok(run(&data, &["topic", "list"])),
        "audit\nchangelog\norders\n"
    );
    let changelog = ok(run(&data, &["topic", "describe", "changelog"]));
    assert!(
        changelog.contains("cleanup.policy=compact delete.retention.ms=86400000"),
        "{changelog}"
    );
    ok(run(&data, &["topic", "delete", "changelog"]));

    let describe = ok(run(&data, &["topic", "describe", "orders"]));
    assert!(describe.contains("Topic: orders"), "{describe}");
    assert!(describe.contains("Partitions: 3"), "{describe}");
    assert!(describe.contains("Fsync: interval:100"), "{describe}");
    assert!(describe.contains("retention.ms=forever"), "{describe}");
    assert!(describe.contains("segment.bytes=1048576"), "{describe}");
    let rows = partition_rows(&describe);
    assert_eq!(rows.len(), 3, "{describe}");
    for (p, row) in rows.iter().enumerate() {
        // partition, log start, log end, high watermark, last stable, durable, size, segments
        assert_eq!(row.len(), 8, "{describe}");
        assert_eq!(row[0], p as i64);
        assert_eq!(&row[1..5], &[0, 0, 0, 0]);
        assert_eq!(row[7], 1);
    }
    let audit = ok(run(&data, &["topic", "describe", "audit"]));
    assert!(audit.contains("cleanup.policy=delete"), "{audit}");
    assert!(audit.contains("retention.ms=604800000"), "{audit}");
    assert!(
        audit.contains("Fsync: commit"),
        "the default policy: {audit}"
    );

    let out = ok(run(
        &data,
        &["topic", "alter", "orders", "--partitions", "5"],
    ));
    assert!(out.contains("5 partitions"), "{out}");
    let describe = ok(run(&data, &["topic", "describe", "orders"]));
    assert_eq!(partition_rows(&describe).len(), 5, "{describe}");

    let message = user_error(run(
        &data,
        &["topic", "alter", "orders", "--partitions", "2"],
    ));
    assert!(message.contains("only grow"), "{message}");
    let describe = ok(run(&data, &["topic", "describe", "orders"]));
    assert_eq!(
        partition_rows(&describe).len(),
        5,
        "a refused alter changes nothing"
    );

    let message = user_error(run(&data, &["topic", "create", "orders"]));
    assert!(message.contains("already exists"), "{message}");

    ok(run(&data, &["topic", "delete", "orders"]));
    assert_eq!(ok(run(&data, &["topic", "list"])), "audit\n");
    let message = user_error(run(&data, &["topic", "describe", "orders"]));
    assert!(message.contains("unknown topic"), "{message}");
    assert!(
        !data.join("orders-0").exists(),
        "deleted partitions leave no directory"
    );
}

#[test]
fn invalid_topic_names_are_rejected_before_touching_the_filesystem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(&data, &["topic", "create", "ok"]));

    let message = user_error(run(&data, &["topic", "create", "../etc"]));
    assert!(message.contains("invalid topic name"), "{message}");
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listing the temp dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("data")]);
    assert!(!data.join("..").join("etc-0").exists());

    for name in ["", ".", "..", "a/b", "spaces are bad", &"x".repeat(250)] {
        let message = user_error(run(&data, &["topic", "create", name]));
        assert!(
            message.contains("invalid topic name"),
            "{name:?}: {message}"
        );
    }
    user_error(run(&data, &["produce", "../etc"]));
    user_error(run(&data, &["consume", "../etc"]));
    assert_eq!(ok(run(&data, &["topic", "list"])), "ok\n");
}

#[test]
fn unknown_topics_and_bad_values_are_user_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(&data, &["topic", "create", "t", "--partitions", "2"]));

    for args in [
        &["topic", "describe", "nope"][..],
        &["topic", "alter", "nope", "--partitions", "3"],
        &["topic", "delete", "nope"],
        &["produce", "nope"],
        &["consume", "nope", "--timeout-ms", "100"],
        &["perf", "consume", "--topic", "nope", "--records", "1"],
    ] {
        let message = user_error(run(&data, args));
        assert!(
            message.contains("unknown topic `nope`"),
            "{args:?}: {message}"
        );
    }

    let message = user_error(run(
        &data,
        &["topic", "create", "f", "--fsync", "sometimes"],
    ));
    assert!(message.contains("fsync"), "{message}");
    let message = user_error(run(&data, &["topic", "create", "f", "--partitions", "0"]));
    assert!(message.contains("partitions"), "{message}");
    let message = user_error(run(
        &data,
        &["topic", "create", "f", "--segment-bytes", "10"],
    ));
    assert!(message.contains("segment_bytes"), "{message}");
    let message = user_error(run(&data, &["topic", "create", "f", "--retention-ms", "0"]));
    assert!(message.contains("retention_ms"), "{message}");
    let message = user_error(run(&data, &["topic", "create", "f", "--cleanup", "shred"]));
    assert!(message.contains("cleanup"), "{message}");
    let message = user_error(run_with_input(
        &data,
        &["produce", "t", "--partition", "2"],
        "x\n",
    ));
    assert!(message.contains("unknown partition"), "{message}");
    let message = user_error(run(&data, &["consume", "t", "--partition", "7"]));
    assert!(message.contains("unknown partition"), "{message}");
    assert_eq!(
        ok(run(&data, &["topic", "list"])),
        "t\n",
        "no failed create left a topic"
    );

    // clap's own usage errors exit with 2 as well.
    assert_eq!(run(&data, &["topic", "create"]).status.code(), Some(2));
    assert_eq!(run(&data, &["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_missing_or_foreign_data_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    assert_eq!(ok(run(&missing, &["topic", "list"])), "");
    let message = user_error(run(&missing, &["consume", "t"]));
    assert!(message.contains("no sluice data directory"), "{message}");
    assert!(!missing.exists(), "read-only commands create nothing");

    // A non-empty directory that is not a data directory: the broker would remove anything
    // in it that looks like a partition directory, so the CLI refuses it.
    let foreign = dir.path().join("home");
    std::fs::create_dir_all(foreign.join("project-1")).expect("mkdir");
    let message = user_error(run(&foreign, &["topic", "create", "t"]));
    assert!(message.contains("refusing"), "{message}");
    assert!(foreign.join("project-1").is_dir());
}

#[test]
fn produce_then_consume_returns_exactly_the_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(&data, &["topic", "create", "greetings"]));

    let input = "k1:hello\nk2:wor:ld\nno key here\n:empty key\ncrlf:line\r\n\nlast:no newline";
    let offsets = ok(run_with_input(
        &data,
        &[
            "produce",
            "greetings",
            "--key-separator",
            ":",
            "--print-offsets",
        ],
        input,
    ));
    assert_eq!(offsets, "0\t0\n0\t1\n0\t2\n0\t3\n0\t4\n0\t5\n0\t6\n");

    let consumed = ok(run(
        &data,
        &[
            "consume",
            "greetings",
            "--from-beginning",
            "--print-key",
            "--print-offset",
            "--timeout-ms",
            "300",
        ],
    ));
    assert_eq!(
        consumed,
        "0\tk1\thello\n1\tk2\twor:ld\n2\t\tno key here\n3\t\tempty key\n4\tcrlf\tline\n5\t\t\n6\tlast\tno newline\n"
    );

    // Without flags only values are printed.
    let values = ok(run(
        &data,
        &[
            "consume",
            "greetings",
            "--from-beginning",
            "--timeout-ms",
            "300",
        ],
    ));
    assert_eq!(
        values,
        "hello\nwor:ld\nno key here\nempty key\nline\n\nno newline\n"
    );

    // Without --from-beginning the consumer starts at the log end: nothing old is printed.
    assert_eq!(
        ok(run(&data, &["consume", "greetings", "--timeout-ms", "200"])),
        ""
    );

    // A multi-character separator, and --max-records.
    ok(run_with_input(
        &data,
        &["produce", "greetings", "--key-separator", "=>"],
        "a=>b=>c\n",
    ));
    let out = ok(run(
        &data,
        &[
            "consume",
            "greetings",
            "--partition",
            "0",
            "--offset",
            "7",
            "--print-key",
            "--timeout-ms",
            "200",
        ],
    ));
    assert_eq!(out, "a\tb=>c\n");
    let out = ok(run(
        &data,
        &[
            "consume",
            "greetings",
            "--from-beginning",
            "--max-records",
            "2",
            "--timeout-ms",
            "0",
        ],
    ));
    assert_eq!(out, "hello\nwor:ld\n");
}

#[test]
fn keyed_records_spread_over_partitions_and_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(
        &data,
        &["topic", "create", "keyed", "--partitions", "4"],
    ));
    let input: String = (0..40)
        .map(|i| format!("key{}|value{i}\n", i % 8))
        .collect();
    let offsets = ok(run_with_input(
        &data,
        &[
            "produce",
            "keyed",
            "--key-separator",
            "|",
            "--print-offsets",
        ],
        &input,
    ));
    let acked: Vec<(i32, i64)> = offsets
        .lines()
        .map(|l| {
            let (p, o) = l.split_once('\t').expect("partition<TAB>offset");
            (p.parse().expect("partition"), o.parse().expect("offset"))
        })
        .collect();
    assert_eq!(acked.len(), 40);

    let consumed = ok(run(
        &data,
        &[
            "consume",
            "keyed",
            "--from-beginning",
            "--print-partition",
            "--print-offset",
            "--print-key",
            "--timeout-ms",
            "300",
        ],
    ));
    let mut got: Vec<(i32, i64, String, String)> = consumed
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "{l}");
            (
                f[0].parse().expect("partition"),
                f[1].parse().expect("offset"),
                f[2].to_string(),
                f[3].to_string(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(i32, i64, String, String)> = acked
        .iter()
        .enumerate()
        .map(|(i, &(p, o))| (p, o, format!("key{}", i % 8), format!("value{i}")))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    // Equal keys share a partition.
    for i in 8..40 {
        assert_eq!(acked[i].0, acked[i % 8].0);
    }
}

#[test]
fn consume_one_partition_from_an_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(&data, &["topic", "create", "t", "--partitions", "2"]));
    let input: String = (0..10).map(|i| format!("p1-{i}\n")).collect();
    let offsets = ok(run_with_input(
        &data,
        &["produce", "t", "--partition", "1", "--print-offsets"],
        &input,
    ));
    assert_eq!(offsets.lines().last(), Some("1\t9"));
    ok(run_with_input(
        &data,
        &["produce", "t", "--partition", "0"],
        "p0-0\n",
    ));

    let out = ok(run(
        &data,
        &[
            "consume",
            "t",
            "--partition",
            "1",
            "--offset",
            "7",
            "--print-offset",
            "--timeout-ms",
            "300",
        ],
    ));
    assert_eq!(out, "7\tp1-7\n8\tp1-8\n9\tp1-9\n");
    let out = ok(run(
        &data,
        &[
            "consume",
            "t",
            "--partition",
            "0",
            "--from-beginning",
            "--timeout-ms",
            "300",
        ],
    ));
    assert_eq!(out, "p0-0\n");
    // The log end is a valid start: nothing to print.
    let out = ok(run(
        &data,
        &[
            "consume",
            "t",
            "--partition",
            "1",
            "--offset",
            "10",
            "--timeout-ms",
            "200",
        ],
    ));
    assert_eq!(out, "");

    let message = user_error(run(&data, &["consume", "t", "--offset", "3"]));
    assert!(message.contains("--offset needs --partition"), "{message}");
    let message = user_error(run(
        &data,
        &["consume", "t", "--partition", "1", "--offset", "11"],
    ));
    assert!(message.contains("out of range"), "{message}");
    let describe = ok(run(&data, &["topic", "describe", "t"]));
    let rows = partition_rows(&describe);
    assert_eq!(rows[0][2], 1, "{describe}");
    assert_eq!(rows[1][2], 10, "{describe}");
    assert_eq!(rows[1][3], 10, "{describe}");
}

#[test]
fn perf_produce_then_perf_consume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = run(
        &data,
        &[
            "perf",
            "produce",
            "--topic",
            "bench",
            "--records",
            "2000",
            "--record-size",
            "100",
            "--partitions",
            "2",
        ],
    );
    let stdout = ok(out);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let figures = json(&stdout);
    assert_eq!(figures["records"], 2000);
    assert_eq!(figures["bytes"], 200_000);
    assert_eq!(figures["fsync_at_end"], false);
    assert!(
        figures["seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{stdout}"
    );
    assert!(
        figures["records_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{stdout}"
    );
    assert!(
        figures["mb_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{stdout}"
    );
    let latency = &figures["latency_ms"];
    let (p50, p99, max) = (
        latency["p50"].as_f64(),
        latency["p99"].as_f64(),
        latency["max"].as_f64(),
    );
    assert!(
        matches!((p50, p99, max), (Some(a), Some(b), Some(c)) if a <= b && b <= c),
        "{stdout}"
    );

    let describe = ok(run(&data, &["topic", "describe", "bench"]));
    let rows = partition_rows(&describe);
    assert_eq!(rows.len(), 2, "{describe}");
    assert_eq!(rows.iter().map(|r| r[2]).sum::<i64>(), 2000, "{describe}");

    // A second run appends to the existing topic and can fsync at the end.
    let stdout = ok(run(
        &data,
        &[
            "perf",
            "produce",
            "--topic",
            "bench",
            "--records",
            "500",
            "--record-size",
            "10",
            "--flush-at-end",
        ],
    ));
    let figures = json(&stdout);
    assert_eq!(figures["records"], 500);
    assert_eq!(figures["bytes"], 5000);
    assert_eq!(figures["fsync_at_end"], true);

    let stdout = ok(run(
        &data,
        &["perf", "consume", "--topic", "bench", "--records", "2500"],
    ));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let figures = json(&stdout);
    assert_eq!(figures["records"], 2500);
    assert_eq!(figures["bytes"], 205_000);
    assert!(
        figures["records_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{stdout}"
    );

    let stdout = ok(run(
        &data,
        &[
            "perf",
            "consume",
            "--topic",
            "bench",
            "--records",
            "100",
            "--max-partition-fetch-bytes",
            "1",
        ],
    ));
    assert_eq!(json(&stdout)["records"], 100);

    let message = user_error(run(
        &data,
        &["perf", "consume", "--topic", "bench", "--records", "2501"],
    ));
    assert!(message.contains("fewer than"), "{message}");
}

#[test]
fn a_closed_stdout_pipe_ends_consume_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(
        &data,
        &[
            "perf",
            "produce",
            "--topic",
            "many",
            "--records",
            "50000",
            "--record-size",
            "20",
        ],
    ));
    let mut child = command(
        &data,
        &[
            "consume",
            "many",
            "--from-beginning",
            "--timeout-ms",
            "2000",
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the sluice binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("reading a line");
    assert_eq!(first.trim_end().len(), 20);
    // The reader is dropped here, closing the pipe like `| head -1`.
    let out = child.wait_with_output().expect("waiting for sluice");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_texts_describe_the_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = ok(run(dir.path(), &["--help"]));
    assert!(help.contains("partitioned log"), "{help}");
    assert!(help.contains("Examples:"), "{help}");
    for args in [
        &["topic", "create", "--help"][..],
        &["topic", "describe", "--help"],
        &["produce", "--help"],
        &["consume", "--help"],
        &["perf", "produce", "--help"],
        &["perf", "consume", "--help"],
        &["group", "--help"],
        &["group", "list", "--help"],
        &["group", "describe", "--help"],
        &["group", "reset-offsets", "--help"],
    ] {
        let help = ok(run(dir.path(), args));
        assert!(help.contains("Usage: sluice"), "{args:?}: {help}");
    }
    let consume = ok(run(dir.path(), &["consume", "--help"]));
    assert!(consume.contains("--timeout-ms"), "{consume}");
    assert!(consume.contains("empty string"), "{consume}");
    for flag in [
        "--group",
        "--isolation",
        "read_committed",
        "read_uncommitted",
    ] {
        assert!(consume.contains(flag), "{flag}: {consume}");
    }
    let perf = ok(run(dir.path(), &["perf", "produce", "--help"]));
    for flag in [
        "--transactional",
        "--txn-records",
        "--commit-interval-ms",
        "commit_ms",
    ] {
        assert!(perf.contains(flag), "{flag}: {perf}");
    }
    let perf = ok(run(dir.path(), &["perf", "consume", "--help"]));
    assert!(perf.contains("--isolation"), "{perf}");
    let reset = ok(run(dir.path(), &["group", "reset-offsets", "--help"]));
    for flag in ["--to-earliest", "--to-latest", "--to-offset", "no active"] {
        assert!(reset.contains(flag), "{flag}: {reset}");
    }
    let create = ok(run(dir.path(), &["topic", "create", "--help"]));
    assert!(create.contains("commit"), "{create}");
    let describe = ok(run(dir.path(), &["topic", "describe", "--help"]));
    assert!(describe.contains("LAST-STABLE"), "{describe}");
}
