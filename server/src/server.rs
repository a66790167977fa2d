//! The listening server: it owns a tokio runtime, accepts connections (capped per IP
//! address), hands each to its own task, and shuts down cleanly within its grace period:
//! stop accepting, stop reading requests, drop fetches still waiting for data, let every
//! other request in flight finish and its answer be written until the grace period ends,
//! then return (the caller flushes and closes the broker).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_log::Broker;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::context::{Context, text};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The runtime could not be built.
    #[error("starting the server's runtime failed: {0}")]
    Runtime(#[source] std::io::Error),
    /// The address could not be bound.
    #[error("binding {addr} failed: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Serves a [`Broker`] over Kafka's wire protocol. See the crate doc.
#[derive(Debug)]
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    local_addr: SocketAddr,
    stop: watch::Sender<Option<Instant>>,
    done: Option<tokio::task::JoinHandle<()>>,
    appends: AppendWatcher,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts serving `broker` on the server's
    /// own threads. Returns once the socket is listening.
    pub fn bind(
        broker: Broker,
        addr: SocketAddr,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .thread_name("sluice-server")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let (host, port) = match &config.advertised_listener {
            Some((host, port)) => (host.clone(), *port),
            None => (local_addr.ip().to_string(), local_addr.port()),
        };
        let appends = AppendWatcher::start(broker.clone());
        let ctx = context(broker, config, host, port, appends.receiver());
        let (stop, stopped) = watch::channel(None);
        let done = runtime.spawn(accept_loop(ctx, listener, stopped));
        tracing::info!(%local_addr, "serving the Kafka protocol");
        Ok(Self {
            runtime: Some(runtime),
            local_addr,
            stop,
            done: Some(done),
            appends,
        })
    }

    /// The address bound (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and reading requests, drops fetches still waiting for data, lets
    /// every other request in flight finish and its answer be written, and closes every
    /// connection; returns within about `grace` in all (what is unfinished by then is
    /// dropped). The broker itself stays open: the caller closes it. A classic JoinGroup or
    /// SyncGroup parked at its group's barrier is a request in flight too, and would hold the
    /// shutdown for the whole grace: call [`Broker::close_classic_groups`] first (as `sluice
    /// broker` does) to answer those at once, when no other server will serve the broker's
    /// classic groups again.
    pub fn shutdown(mut self, grace: Duration) {
        self.stop_now(grace);
    }

    fn stop_now(&mut self, grace: Duration) {
        let now = Instant::now();
        // A grace beyond a year is as good as unbounded (and cannot overflow the clock).
        let deadline = now
            .checked_add(grace.min(Duration::from_secs(365 * 86_400)))
            .unwrap_or(now);
        let _ = self.stop.send(Some(deadline));
        if let (Some(runtime), Some(done)) = (self.runtime.as_ref(), self.done.take()) {
            let _ = runtime.block_on(async {
                tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), done).await
            });
        }
        if let Some(runtime) = self.runtime.take() {
            // One grace period in all: blocking broker calls still running get what is left.
            runtime.shutdown_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        self.appends.stop();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.runtime.is_some() {
            self.stop_now(Duration::from_secs(5));
        }
    }
}

/// The state every connection shares.
pub(crate) fn context(
    broker: Broker,
    config: ServerConfig,
    host: String,
    port: u16,
    appends: watch::Receiver<u64>,
) -> Context {
    Context {
        cluster_id: text(cluster_id(&broker)),
        broker,
        config: Arc::new(config),
        host: text(host),
        port: i32::from(port),
        appends,
        captured: Arc::default(),
    }
}

/// A stable id for the data directory's cluster: derived from its path.
fn cluster_id(broker: &Broker) -> String {
    let path = broker.data_dir().to_string_lossy().into_owned();
    let a = crc32c::crc32c(path.as_bytes());
    let b = crc32c::crc32c_append(a, b"sluice");
    format!("sluice-{a:08x}{b:08x}")
}

async fn accept_loop(
    ctx: Context,
    listener: TcpListener,
    mut stopped: watch::Receiver<Option<Instant>>,
) {
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(Option::is_some) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment, keep serving the rest.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = peer.ip();
        {
            let mut counts = per_ip.lock();
            let count = counts.entry(ip).or_default();
            if *count >= ctx.config.max_connections_per_ip {
                tracing::warn!(%peer, max = ctx.config.max_connections_per_ip, "refusing a connection: too many from this address (max.connections.per.ip)");
                continue;
            }
            *count += 1;
        }
        let ctx = ctx.clone();
        let slot = Slot {
            counts: Arc::clone(&per_ip),
            ip,
        };
        let shutdown = stopped.clone();
        connections.spawn(crate::connection::serve(ctx, stream, peer, shutdown, slot));
        // Reap finished connections so the set does not grow with every one ever accepted.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!(
        open = connections.len(),
        "no longer accepting; finishing requests in flight"
    );
    while connections.join_next().await.is_some() {}
}

/// A connection's place in the per-IP count, given back when dropped (before the socket
/// closes, so a client that saw the close may connect again at once).
#[derive(Debug)]
pub(crate) struct Slot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A thread that turns the log's append signal into a tokio watch channel, so fetches wait
/// for data without holding a thread each.
#[derive(Debug)]
pub(crate) struct AppendWatcher {
    rx: watch::Receiver<u64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AppendWatcher {
    pub(crate) fn start(broker: Broker) -> Self {
        let (tx, rx) = watch::channel(broker.append_sequence());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sluice-server-appends".into())
            .spawn(move || {
                use std::sync::atomic::Ordering;
                let mut seen = broker.append_sequence();
                while !flag.load(Ordering::Acquire) {
                    broker.wait_for_append(seen, Instant::now() + Duration::from_millis(200));
                    let now = broker.append_sequence();
                    if now != seen {
                        seen = now;
                        let _ = tx.send(now);
                    }
                }
            })
            .map_err(|e| tracing::error!(error = %e, "could not start the append watcher; fetches will wait their full max wait"))
            .ok();
        Self { rx, stop, thread }
    }

    pub(crate) fn receiver(&self) -> watch::Receiver<u64> {
        self.rx.clone()
    }

    pub(crate) fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
