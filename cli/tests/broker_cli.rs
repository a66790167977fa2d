//! `sluice broker` as a process: it serves kcat, holds its data directory against other
//! `sluice` processes (exit code 2, nothing touched), and on SIGTERM or SIGINT shuts down
//! cleanly, keeping every acknowledged record for the next start.

mod served;

use std::io::Write;
use std::process::{Command, Stdio};

use served::RunningBroker;

fn kcat(args: &[&str], input: Option<&str>) -> std::process::Output {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (make test installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).expect("kcat stdin");
    }
    drop(stdin);
    child.wait_with_output().expect("kcat runs")
}

fn produce(addr: &str, topic: &str, lines: &str) {
    let out = kcat(
        &["-b", addr, "-P", "-t", topic, "-K", ":", "-X", "acks=all"],
        Some(lines),
    );
    assert!(
        out.status.success(),
        "kcat -P failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn consume_all(addr: &str, topic: &str) -> String {
    let out = kcat(
        &[
            "-b",
            addr,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%s\n",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "kcat -C failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sigterm_shuts_down_cleanly_and_a_restart_keeps_every_record() {
    let mut broker = RunningBroker::start(&[]);
    produce(&broker.addr, "greetings", "a:hello\nb:world\n");
    assert_eq!(consume_all(&broker.addr, "greetings"), "a=hello\nb=world\n");
    let status = broker.stop_with("TERM");
    assert!(
        status.success(),
        "sluice broker exited with {status:?} on SIGTERM"
    );

    let data = broker.data.clone();
    let mut again = RunningBroker::start_on(&data, &[]);
    produce(&again.addr, "greetings", "c:again\n");
    assert_eq!(
        consume_all(&again.addr, "greetings"),
        "a=hello\nb=world\nc=again\n"
    );
    let status = again.stop_with("INT");
    assert!(
        status.success(),
        "sluice broker exited with {status:?} on SIGINT"
    );
}

#[test]
fn a_second_process_on_the_data_directory_gets_exit_code_2_and_touches_nothing() {
    let broker = RunningBroker::start(&[]);
    produce(&broker.addr, "held", "k:v\n");
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("data dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names
    };
    let before = listing(&broker.data);
    for args in [
        vec!["broker", "--listen", "127.0.0.1:0"],
        vec!["topic", "list"],
        vec!["topic", "create", "other"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--data")
            .arg(&broker.data)
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("sluice runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("in use"), "{args:?}: {stderr}");
    }
    assert_eq!(listing(&broker.data), before);
    assert_eq!(consume_all(&broker.addr, "held"), "k=v\n");
}

#[test]
fn bad_flags_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data")
        .arg(dir.path().join("d"))
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--advertised-listener",
            "nohostport",
        ])
        .output()
        .expect("sluice runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--advertised-listener"));
}
