//! `consume --group` and `sluice group list|describe|reset-offsets`.

use std::path::Path;

use super::cli_support::group_rows;
use super::{ok, run, run_with_input, text, user_error};

/// The summed lag of `group describe`.
fn total_lag(describe: &str) -> i64 {
    group_rows(describe)
        .iter()
        .map(|r| r.4.parse::<i64>().expect("numeric lag"))
        .sum()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn consume_group(data: &Path, topic: &str, group: &str, extra: &[&str]) -> String {
    let mut args = vec!["consume", topic, "--group", group, "--timeout-ms", "300"];
    args.extend_from_slice(extra);
    ok(run(data, &args))
}

#[test]
fn consume_with_a_group_commits_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(&data, &["topic", "create", "t", "--partitions", "2"]));
    let first: String = (0..6).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(run_with_input(
        &data,
        &["produce", "t", "--key-separator", ":"],
        &first,
    ));

    let out = consume_group(&data, "t", "g", &["--from-beginning"]);
    assert_eq!(sorted_lines(&out), ["v0", "v1", "v2", "v3", "v4", "v5"]);
    // Everything was committed: the same group gets nothing more, even from the beginning.
    assert_eq!(consume_group(&data, "t", "g", &["--from-beginning"]), "");

    ok(run_with_input(
        &data,
        &["produce", "t", "--key-separator", ":"],
        "k6:v6\nk7:v7\nk8:v8\n",
    ));
    let out = consume_group(&data, "t", "g", &[]);
    assert_eq!(sorted_lines(&out), ["v6", "v7", "v8"]);

    assert_eq!(ok(run(&data, &["group", "list"])), "g\n");
    let describe = ok(run(&data, &["group", "describe", "g"]));
    assert!(describe.contains("Group: g"), "{describe}");
    assert!(describe.contains("No active members"), "{describe}");
    let rows = group_rows(&describe);
    assert_eq!(rows.len(), 2, "{describe}");
    assert_eq!(total_lag(&describe), 0, "{describe}");

    // Two new records are the lag; --max-records commits only what it printed.
    ok(run_with_input(
        &data,
        &["produce", "t", "--partition", "1"],
        "x\ny\n",
    ));
    let describe = ok(run(&data, &["group", "describe", "g"]));
    assert_eq!(total_lag(&describe), 2, "{describe}");
    let row = &group_rows(&describe)[1];
    assert_eq!(row.0, "t");
    assert_eq!(row.1, 1);
    let (committed, end): (i64, i64) = (
        row.2.parse().expect("committed"),
        row.3.parse().expect("log end"),
    );
    assert_eq!(end - committed, 2, "{describe}");
    assert_eq!(
        consume_group(&data, "t", "g", &["--max-records", "1"]),
        "x\n"
    );
    let describe = ok(run(&data, &["group", "describe", "g"]));
    assert_eq!(total_lag(&describe), 1, "{describe}");
    assert_eq!(consume_group(&data, "t", "g", &[]), "y\n");

    // Back to the start: the group reads everything again.
    let out = ok(run(
        &data,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
    ));
    assert!(out.starts_with("TOPIC"), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines().skip(1).all(|l| l.ends_with(" 0")),
        "every partition back at 0: {out}"
    );
    let out = consume_group(&data, "t", "g", &[]);
    assert_eq!(out.lines().count(), 11, "{out}");
    let mut expected: Vec<String> = (0..9).map(|i| format!("v{i}")).collect();
    expected.extend(["x".to_string(), "y".to_string()]);
    expected.sort();
    assert_eq!(sorted_lines(&out), expected);

    // To the end: nothing is left; to an offset: from there (clamped to the log end).
    ok(run(
        &data,
        &["group", "reset-offsets", "g", "--topic", "t", "--to-latest"],
    ));
    assert_eq!(consume_group(&data, "t", "g", &[]), "");
    let out = ok(run(
        &data,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-offset",
            "1000",
        ],
    ));
    let describe = ok(run(&data, &["group", "describe", "g"]));
    assert_eq!(total_lag(&describe), 0, "{out}\n{describe}");

    // Another group is independent of g.
    assert_eq!(consume_group(&data, "t", "other", &[]), "");
    assert_eq!(ok(run(&data, &["group", "list"])), "g\nother\n");
}

#[test]
fn a_new_group_starts_at_the_log_end_unless_from_beginning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(&data, &["topic", "create", "t"]));
    ok(run_with_input(&data, &["produce", "t"], "old1\nold2\n"));
    assert_eq!(consume_group(&data, "t", "late", &[]), "");
    ok(run_with_input(&data, &["produce", "t"], "new\n"));
    assert_eq!(consume_group(&data, "t", "late", &[]), "new\n");
    assert_eq!(
        consume_group(&data, "t", "early", &["--from-beginning"]),
        "old1\nold2\nnew\n"
    );
}

#[test]
fn group_flags_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ok(run(&data, &["topic", "create", "t", "--partitions", "2"]));

    for args in [
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--partition",
            "0",
            "--offset",
            "0",
        ][..],
        &["consume", "t", "--group", "g", "--offset", "3"],
        &["consume", "t", "--group", "g", "--partition", "1"],
    ] {
        let message = user_error(run(&data, args));
        assert!(
            message.contains("--group cannot be used with --partition or --offset"),
            "{args:?}: {message}"
        );
    }
    let message = user_error(run(&data, &["consume", "t", "--group", ""]));
    assert!(message.contains("group id"), "{message}");
    let message = user_error(run(
        &data,
        &["consume", "nope", "--group", "g", "--timeout-ms", "100"],
    ));
    assert!(message.contains("unknown topic `nope`"), "{message}");

    for args in [
        &["group", "reset-offsets", "g", "--topic", "t"][..],
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest",
        ],
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-latest",
            "--to-offset",
            "3",
        ],
    ] {
        let message = user_error(run(&data, args));
        assert!(message.contains("exactly one of"), "{args:?}: {message}");
    }
    let message = user_error(run(
        &data,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "nope",
            "--to-earliest",
        ],
    ));
    assert!(message.contains("unknown topic `nope`"), "{message}");
    let message = user_error(run(&data, &["group", "describe", "nope"]));
    assert!(message.contains("unknown group `nope`"), "{message}");
    assert_eq!(
        ok(run(&data, &["group", "list"])),
        "",
        "no group was created"
    );
    // clap rejects an unknown level (exit 2) and lists the valid ones.
    let out = run(&data, &["consume", "t", "--isolation", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("read_committed, read_uncommitted"),
        "{stderr}"
    );
}
