//! Running a topology on a broker (docs/architecture.md §3): an [`App`] is one instance of an
//! application. [`App::start`] prepares the topics (repartition, changelog and dead-letter
//! topics; co-partitioning checked against the broker), opens the instance's RocksDB and
//! starts `num_threads` stream threads, each a member of the application's group with one
//! read_committed consumer and one transactional producer, running the commit loop of
//! docs/architecture.md §3.1. More instances on the same broker share the tasks and rebalance as they
//! come and go.
//!
//! ```no_run
//! # use sluice_runtime::{app::App, AppConfig, topology::Topology};
//! # fn topology() -> Topology { unimplemented!() }
//! let broker = sluice_log::Broker::open(std::path::Path::new("data"), Default::default())?;
//! let app = App::new("wordcount", topology(), AppConfig::default().with_state_dir("state"))?;
//! let handle = app.start(&broker)?;
//! // ... later: commit, flush state, leave the group.
//! handle.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod committer;
mod global;
mod idle;
mod membership;
mod metrics;
mod processing;
mod purge;
mod setup;
mod shared;
mod task_manager;
mod thread;

pub use metrics::AppMetrics;
pub use shared::AppState;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_log::TopicPartition;
use sluice_log::cluster::{Cluster, OffsetAt};

use crate::config::AppConfig;
use crate::error::{Error, Result};
use crate::state::StateDb;
use crate::topology::Topology;
use shared::Shared;

/// How often [`AppHandle::wait_until_caught_up`] looks again when no commit wakes it.
const CAUGHT_UP_RECHECK: Duration = Duration::from_millis(100);

/// One instance of an application.
#[derive(Debug, Clone)]
pub struct App {
    application_id: String,
    topology: Arc<Topology>,
    config: AppConfig,
}

impl App {
    /// An app `application_id` (its group id, transactional id prefix and topic prefix)
    /// running `topology` with `config`.
    pub fn new(
        application_id: impl Into<String>,
        topology: Topology,
        config: AppConfig,
    ) -> Result<Self> {
        let application_id = application_id.into();
        if application_id.is_empty()
            || !application_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(Error::Config {
                key: "application.id",
                reason: format!(
                    "{application_id:?} must be non-empty ASCII letters, digits, '.', '_' or '-' (it prefixes topic names)"
                ),
            });
        }
        if config.num_threads == 0 {
            return Err(Error::Config {
                key: "num.stream.threads",
                reason: "must be at least 1".into(),
            });
        }
        if config.effective_commit_interval().is_zero() {
            return Err(Error::Config {
                key: "commit.interval.ms",
                reason: "must be positive".into(),
            });
        }
        // The topology's own topics are named after the app.
        let topology = topology
            .for_application(&application_id)
            .map_err(Error::from)?;
        Ok(Self {
            application_id,
            topology: Arc::new(topology),
            config,
        })
    }

    /// The topology as this app runs it (its internal topics named `<application id>-...`).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// The state directory in effect.
    pub fn state_dir(&self) -> PathBuf {
        self.config
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("sluice-state").join(&self.application_id))
    }

    /// Starts the instance on `cluster` (the embedded `sluice_log::Broker`, or a Kafka
    /// cluster through `sluice-kafka`) and returns at once; the threads join the group,
    /// restore their tasks' stores and process.
    pub fn start<C: Cluster>(&self, cluster: &C) -> Result<AppHandle> {
        let dir = self.state_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::Config {
            key: "state.dir",
            reason: format!("cannot create {}: {e}", dir.display()),
        })?;
        let instance_id = setup::instance_id(&dir)?;
        let plan =
            setup::prepare_topics(cluster, &self.application_id, &self.topology, &self.config)?;
        let db = StateDb::open(&dir.join("rocksdb"))?;
        let state_bytes_written = db.bytes_written();
        let global = global::GlobalUpdater::bootstrap(&db, cluster, &self.topology, &self.config)?;
        let shared = Arc::new(Shared::new(self.config.num_threads));
        let context = Arc::new(thread::ThreadContext {
            application_id: Arc::from(self.application_id.as_str()),
            instance_id: instance_id.clone(),
            topology: self.topology.clone(),
            config: self.config.clone(),
            db,
            cluster: cluster.clone(),
            plan,
            shared: shared.clone(),
            task_owners: parking_lot::Mutex::default(),
        });
        let mut threads = Vec::new();
        for index in 0..self.config.num_threads {
            let context = context.clone();
            let name = format!(
                "{}-{}-StreamThread-{index}",
                self.application_id, instance_id
            );
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || thread::run(context, index))
                .map_err(|e| Error::IllegalState(format!("cannot start a stream thread: {e}")))?;
            threads.push(spawned);
        }
        if let Some(updater) = global {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!(
                    "{}-{instance_id}-GlobalThread",
                    self.application_id
                ))
                .spawn(move || updater.run(shared))
                .map_err(|e| Error::IllegalState(format!("cannot start the global thread: {e}")))?;
            threads.push(spawned);
        }
        tracing::info!(app = %self.application_id, instance = %instance_id, threads = self.config.num_threads, "app started");
        // Upstream first, so catching up is not seen before records still on their way
        // through a repartition topic are processed.
        let sources = self.topology.source_topics_upstream_first();
        let progress = {
            let (cluster, group) = (cluster.clone(), self.application_id.clone());
            GroupProgress(Arc::new(move || {
                group_caught_up(&cluster, &group, &sources)
            }))
        };
        Ok(AppHandle {
            shared,
            threads,
            instance_id,
            progress,
            application_id: self.application_id.clone(),
            state_bytes_written,
        })
    }

    /// Runs the instance on `cluster` until it fails (the error is returned) or every
    /// thread stops.
    pub fn run<C: Cluster>(&self, cluster: &C) -> Result<()> {
        self.start(cluster)?.wait()
    }
}

/// Whether `group` has committed every partition of `topics` up to its log end.
fn group_caught_up<C: Cluster>(cluster: &C, group: &str, topics: &[String]) -> Result<bool> {
    for topic in topics {
        let partitions = cluster
            .partition_count(topic)
            .map_err(Error::cluster)?
            .ok_or_else(|| Error::MissingTopic {
                topic: topic.clone(),
                role: "source",
            })?;
        let tps: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(topic.as_str(), p))
            .collect();
        let committed = cluster
            .committed_offsets(group, &tps)
            .map_err(Error::cluster)?;
        for (tp, offset) in committed {
            let end = cluster
                .list_offset(&tp, OffsetAt::Latest)
                .map_err(Error::cluster)?;
            let from = match offset {
                Some(o) => o,
                None => cluster
                    .list_offset(&tp, OffsetAt::Earliest)
                    .map_err(Error::cluster)?,
            };
            if from < end {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Asks the cluster whether the app's group has caught up with its inputs.
#[derive(Clone)]
struct GroupProgress(Arc<dyn Fn() -> Result<bool> + Send + Sync>);

impl std::fmt::Debug for GroupProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupProgress")
    }
}

/// A running instance.
#[derive(Debug)]
pub struct AppHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    instance_id: String,
    /// Asks the cluster whether its group (the application id) has committed the topics its
    /// tasks read up to their ends, for [`wait_until_caught_up`](Self::wait_until_caught_up).
    progress: GroupProgress,
    application_id: String,
    /// The bytes the instance's write batches put in RocksDB (`StateDb::apply`).
    state_bytes_written: Arc<std::sync::atomic::AtomicU64>,
}

impl AppHandle {
    /// The instance's state.
    pub fn state(&self) -> AppState {
        self.shared.state()
    }

    /// This instance's id (kept in the state directory, so a restart has the same one).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The tasks this instance runs now, over all its threads.
    pub fn tasks(&self) -> Vec<crate::task::TaskId> {
        self.shared.tasks()
    }

    /// Throughput and commit figures so far.
    pub fn metrics(&self) -> AppMetrics {
        AppMetrics {
            state_bytes_written: self
                .state_bytes_written
                .load(std::sync::atomic::Ordering::Relaxed),
            ..self.shared.metrics.snapshot()
        }
    }

    /// The error that put the app in `Error`, as text.
    pub fn error(&self) -> Option<String> {
        self.shared.error_text()
    }

    /// Waits until the state is `wanted` or `timeout` passes; returns whether it is.
    pub fn wait_for_state(&self, wanted: AppState, timeout: Duration) -> bool {
        self.shared.wait_for(|s| s == wanted, timeout)
    }

    /// Whether the app is running and its group (the application id) has committed every
    /// partition of every topic its tasks read (inputs and repartition topics) to the log
    /// end; an error if the app failed.
    pub fn caught_up(&self) -> Result<bool> {
        match self.state() {
            AppState::Error => Err(Error::IllegalState(format!(
                "app `{}` failed: {}",
                self.application_id,
                self.error().unwrap_or_default()
            ))),
            AppState::Running => (self.progress.0)(),
            _ => Ok(false),
        }
    }

    /// Waits until the app has [caught up](Self::caught_up) with everything written to its
    /// inputs so far; returns whether it did within `timeout` (`Duration::MAX` waits as long
    /// as it takes), or the app's error if it failed meanwhile. Checks after each commit.
    pub fn wait_until_caught_up(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Read before checking, so a commit landing in between ends the wait below.
            let commits = self.shared.metrics.commits();
            if self.caught_up()? {
                return Ok(true);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            // A state change (the end of a rebalance, a failure) commits nothing: look again
            // at least this often.
            let wait = deadline.map_or(CAUGHT_UP_RECHECK, |d| (d - now).min(CAUGHT_UP_RECHECK));
            self.shared.metrics.wait_for_commit(commits, wait);
        }
    }

    /// Stops cleanly: each thread commits, flushes its state, closes its tasks and leaves
    /// the group. Returns the error that stopped the app, if one did.
    pub fn shutdown(self) -> Result<()> {
        self.shared.request_shutdown();
        self.wait()
    }

    /// Waits until every thread has stopped (after a failure, or a shutdown from another
    /// handle) and returns the failure, if any.
    pub fn wait(mut self) -> Result<()> {
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                self.shared.fail(Error::IllegalState(
                    "a stream thread panicked outside a task".into(),
                ));
            }
        }
        self.shared.finish();
        match self.shared.take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Fault injection: while paused, the threads keep processing but stop heartbeating,
    /// so the group gives their tasks to other instances after the session timeout and
    /// this instance becomes a zombie (its commits are refused until it rejoins). Only with
    /// the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn pause_heartbeats(&self, paused: bool) {
        self.shared.pause_heartbeats(paused);
    }

    /// Fault injection: every thread stops dead, as in a kill -9 of the process (nothing
    /// is committed, flushed, aborted or applied; the group is not left). Waits for them.
    /// Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn kill(mut self) {
        self.shared.crash();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shared.request_shutdown();
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }
}
