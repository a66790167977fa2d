//! `sluice broker` as a real process for tests: started on an ephemeral loopback port over a
//! temporary data directory, its address read from the first line it prints, stopped with
//! SIGTERM (or SIGKILL) when the test is done.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running `sluice broker`.
pub struct RunningBroker {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl RunningBroker {
    /// Starts a broker on a new temporary directory with `extra` flags.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut broker = Self::start_on(&data, extra);
        broker._dir = Some(dir);
        broker
    }

    /// Starts a broker on `data` (kept by the caller).
    pub fn start_on(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--data")
            .arg(data)
            .args(["broker", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("SLUICE_DATA")
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_TEST_BROKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sluice broker starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("reading the broker's first line");
        let addr = first
            .split_whitespace()
            .nth(4)
            .filter(|_| first.starts_with("sluice broker listening on"))
            .unwrap_or_else(|| panic!("unexpected first line from sluice broker: {first:?}"))
            .to_string();
        Self {
            child,
            addr,
            data: data.to_path_buf(),
            _dir: None,
        }
    }

    /// Sends `signal` (TERM, INT, KILL) and waits for the process to end.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        self.child.wait().expect("waiting for sluice broker")
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop_with("KILL");
        }
    }
}
