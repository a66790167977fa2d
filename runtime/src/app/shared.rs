//! What an instance's threads and its handle share: each thread's state, the shutdown and
//! crash flags, the first error, and the metrics. The app's state is derived from the
//! threads' (Kafka Streams' `KafkaStreams.State`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::metrics::Metrics;
use crate::error::Error;
use crate::task::TaskId;

/// The state of an app instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppState {
    /// Built, threads not yet running.
    Created,
    /// Some thread is joining the group, restoring or moving tasks.
    Rebalancing,
    /// Every thread is processing.
    Running,
    /// Shutting down cleanly.
    PendingShutdown,
    /// A task failed (or a crash was injected); the threads have stopped or are stopping.
    Error,
    /// Stopped after a clean shutdown.
    NotRunning,
}

/// A thread's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadState {
    /// Not started yet.
    Created,
    /// Joining the group, opening, restoring or moving tasks, or recovering from a fenced
    /// producer or a group that moved on.
    Rebalancing,
    /// Processing its tasks.
    Running,
    /// Making its final commit and leaving the group.
    PendingShutdown,
    /// Done.
    Stopped,
}

pub(crate) struct Shared {
    threads: Mutex<Vec<ThreadState>>,
    changed: Condvar,
    shutdown: AtomicBool,
    crashed: AtomicBool,
    finished: AtomicBool,
    heartbeats_paused: AtomicBool,
    tasks: Mutex<Vec<Vec<TaskId>>>,
    /// Threads past their final commit (or stopped).
    final_commits: Mutex<std::collections::BTreeSet<usize>>,
    error: Mutex<Option<Error>>,
    error_text: Mutex<Option<String>>,
    pub metrics: Metrics,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(threads: usize) -> Self {
        Self {
            threads: Mutex::new(vec![ThreadState::Created; threads]),
            changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            heartbeats_paused: AtomicBool::new(false),
            tasks: Mutex::new(vec![Vec::new(); threads]),
            final_commits: Mutex::default(),
            error: Mutex::new(None),
            error_text: Mutex::new(None),
            metrics: Metrics::default(),
        }
    }

    pub fn state(&self) -> AppState {
        if self.crashed.load(Ordering::SeqCst) || self.error_text.lock().is_some() {
            return AppState::Error;
        }
        let threads = self.threads.lock();
        if self.shutdown.load(Ordering::SeqCst) {
            return if threads.iter().all(|t| *t == ThreadState::Stopped) {
                AppState::NotRunning
            } else {
                AppState::PendingShutdown
            };
        }
        if self.finished.load(Ordering::SeqCst)
            || threads.iter().all(|t| *t == ThreadState::Stopped)
        {
            AppState::NotRunning
        } else if threads.iter().all(|t| *t == ThreadState::Created) {
            AppState::Created
        } else if threads.iter().all(|t| *t == ThreadState::Running) {
            AppState::Running
        } else {
            AppState::Rebalancing
        }
    }

    pub fn set_thread(&self, index: usize, state: ThreadState) {
        let mut threads = self.threads.lock();
        if let Some(slot) = threads.get_mut(index) {
            *slot = state;
        }
        drop(threads);
        self.changed.notify_all();
    }

    pub fn wait_for(&self, wanted: impl Fn(AppState) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.threads.lock();
        loop {
            drop(guard);
            if wanted(self.state()) {
                return true;
            }
            guard = self.threads.lock();
            if self.changed.wait_until(&mut guard, deadline).timed_out() {
                drop(guard);
                return wanted(self.state());
            }
        }
    }

    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    pub fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Thread `index` has made its final commit (or stopped).
    pub fn shutdown_done(&self, index: usize) {
        self.final_commits.lock().insert(index);
        self.changed.notify_all();
    }

    /// Waits (up to `limit`) until every thread has made its final commit.
    pub fn wait_for_final_commits(&self, limit: Duration) {
        let threads = self.threads.lock().len();
        let deadline = Instant::now() + limit;
        let mut guard = self.threads.lock();
        while self.final_commits.lock().len() < threads && !self.crashed() {
            if self.changed.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
    }

    pub fn set_tasks(&self, index: usize, tasks: Vec<TaskId>) {
        if let Some(slot) = self.tasks.lock().get_mut(index) {
            *slot = tasks;
        }
    }

    pub fn tasks(&self) -> Vec<TaskId> {
        let mut all: Vec<TaskId> = self.tasks.lock().iter().flatten().copied().collect();
        all.sort_unstable();
        all
    }

    #[cfg(feature = "fault-injection")]
    pub fn pause_heartbeats(&self, paused: bool) {
        self.heartbeats_paused.store(paused, Ordering::SeqCst);
    }

    pub fn heartbeats_paused(&self) -> bool {
        self.heartbeats_paused.load(Ordering::SeqCst)
    }

    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Records the first failure and asks every thread to stop.
    pub fn fail(&self, error: Error) {
        let mut text = self.error_text.lock();
        if text.is_none() {
            tracing::error!(%error, "stream thread failed; the app stops");
            *text = Some(error.to_string());
            *self.error.lock() = Some(error);
        }
        drop(text);
        self.shutdown.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub fn error_text(&self) -> Option<String> {
        self.error_text.lock().clone()
    }

    pub fn take_error(&self) -> Option<Error> {
        self.error.lock().take()
    }
}
