//! What every request handler shares: the broker, the settings, the address clients are told
//! to use, and the signal that wakes fetches waiting for new data. Also the one way handlers
//! run a broker call that may block (an fsync, a transaction's end) off the reactor, and the
//! way they wait for a classic group's answer (a join barrier, the leader's assignment)
//! without holding any thread: [`Context::parked`].

use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;
use sluice_log::Broker;
use sluice_log::group::ClassicReply;
use tokio::sync::watch;

use crate::config::ServerConfig;

/// Shared by all connections of one server.
#[derive(Debug, Clone)]
pub struct Context {
    /// The log being served.
    pub broker: Broker,
    /// The server's settings.
    pub config: Arc<ServerConfig>,
    /// The host clients connect to (Metadata, FindCoordinator).
    pub host: StrBytes,
    /// The port clients connect to.
    pub port: i32,
    /// Bumped after every append to the log; long-polling fetches wait on it.
    pub appends: watch::Receiver<u64>,
    /// The cluster id Metadata and DescribeCluster report: stable for a data directory.
    pub cluster_id: StrBytes,
    /// Frames captured so far per (API key, version), when capturing.
    pub captured: Arc<parking_lot::Mutex<std::collections::HashMap<(i16, i16), usize>>>,
}

/// How many frames of one API and version are captured.
const CAPTURE_PER_VERSION: usize = 16;

/// This server's node id: it is the only node of its cluster.
pub const NODE_ID: i32 = 0;

/// A broker call failed to run at all (it panicked, or the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("a broker call did not complete: {0}")]
pub struct CallFailed(String);

impl From<CallFailed> for sluice_log::Error {
    fn from(e: CallFailed) -> Self {
        sluice_log::Error::IllegalState(e.0)
    }
}

impl Context {
    /// Writes `frame` to the capture directory, if one is set and this API and version
    /// have not filled their share.
    pub fn capture(&self, frame: &[u8]) {
        let Some(dir) = &self.config.capture_dir else {
            return;
        };
        if frame.len() < 4 {
            return;
        }
        let key = (
            i16::from_be_bytes([frame[0], frame[1]]),
            i16::from_be_bytes([frame[2], frame[3]]),
        );
        {
            let mut captured = self.captured.lock();
            let count = captured.entry(key).or_default();
            if *count >= CAPTURE_PER_VERSION {
                return;
            }
            *count += 1;
        }
        let path = dir.join(format!(
            "{}-{}-{:08x}.bin",
            key.0,
            key.1,
            crc32c::crc32c(frame)
        ));
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, frame)) {
            tracing::warn!(path = %path.display(), error = %e, "capturing a frame failed");
        }
    }

    /// Runs `call` on the blocking pool with a clone of the broker, so a call that waits (an
    /// fsync, a transaction's end) never stalls the reactor. A panic inside becomes an error
    /// for this request only. Calls that wait for other clients (a JoinGroup, a SyncGroup)
    /// must not hold a pool thread while they do: see [`parked`](Self::parked).
    pub async fn blocking<T, F>(&self, call: F) -> Result<T, CallFailed>
    where
        T: Send + 'static,
        F: FnOnce(&Broker) -> T + Send + 'static,
    {
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || call(&broker))
            .await
            .map_err(|e| CallFailed(e.to_string()))
    }

    /// Starts a classic group call (`begin` takes the group lock briefly, so it runs on the
    /// blocking pool) and awaits its answer on the reactor: a JoinGroup parked at the join
    /// barrier or a follower's SyncGroup waiting for the leader holds no thread, however
    /// many there are and however long the rebalance timeout.
    pub async fn parked<T, F>(&self, begin: F) -> Result<T, sluice_log::Error>
    where
        T: Send + 'static,
        F: FnOnce(&Broker) -> ClassicReply<T> + Send + 'static,
    {
        self.blocking(begin).await?.await
    }
}

/// A `StrBytes` from any string.
pub fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
