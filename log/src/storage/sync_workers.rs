//! Waiting for durability without holding a thread: the broker's fsync workers.
//!
//! A server answering acks=all produces must not park a thread per waiting request, nor hop
//! to a thread pool and back for every wait: under load that hop is what keeps a partition's
//! next fsync from starting while answers are being sent, so each group-commit round covers
//! fewer batches. Instead a waiter registers "durable up to offset N on this partition" and
//! gets a [`DurableWait`], a future. A partition with waiters sits at most once in a queue;
//! a worker takes it, fsyncs it up to the highest offset asked for at that moment (through
//! the partition's gate, so the fsync is shared with every other waiter, embedded ones
//! included), and answers every waiter it covered. Waiters that arrive during that fsync are
//! kept, and the worker queues the partition again as soon as it has answered, so the next
//! fsync follows at once, and one partition never holds more than one worker.
//!
//! Workers are threads, started on demand up to [`MAX_WORKERS`]: fsyncs of different
//! partitions run side by side, while one partition's fsyncs stay one at a time (its gate).
//! [`SyncWorkers::stop`] answers everything queued, then ends the workers; a wait registered
//! after that is refused with [`Error::Closed`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use futures::FutureExt;
use futures::channel::oneshot;
use parking_lot::{Condvar, Mutex};
use rustc_hash::FxHashMap;

use super::partition::Partition;
use crate::error::{Error, Result};

/// Most fsync worker threads a broker runs; more partitions than this with waiters take turns.
pub const MAX_WORKERS: usize = 8;

/// The broker's fsync workers. See the module doc.
#[derive(Debug, Default)]
pub(crate) struct SyncWorkers {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Partitions with waiters not yet taken by a worker, each at most once.
    queue: VecDeque<Arc<Partition>>,
    /// Waiters by partition (keyed by the partition's address, which the `Arc` held here
    /// keeps unique).
    waiting: FxHashMap<usize, Waiting>,
    workers: usize,
    idle: usize,
    stopped: bool,
}

#[derive(Debug)]
struct Waiting {
    partition: Arc<Partition>,
    waiters: Vec<(i64, oneshot::Sender<Result<()>>)>,
    /// In the queue.
    queued: bool,
    /// A worker is fsyncing it: new waiters wait for that worker to queue it again, so one
    /// partition never holds more than one worker.
    in_flight: bool,
}

fn key(partition: &Arc<Partition>) -> usize {
    Arc::as_ptr(partition) as usize
}

impl SyncWorkers {
    /// A future that resolves once every offset of `partition` below `up_to` is durable (or
    /// with the error that prevented it).
    pub(crate) fn wait(&self, partition: Arc<Partition>, up_to: i64) -> DurableWait {
        if partition.durable_through(up_to) {
            return DurableWait::ready(Ok(()));
        }
        if let Err(e) = partition.fsync_failed() {
            return DurableWait::ready(Err(e));
        }
        let (tx, rx) = oneshot::channel();
        let spawn = {
            let mut state = self.shared.state.lock();
            if state.stopped {
                return DurableWait::ready(Err(Error::Closed("broker")));
            }
            let entry = state
                .waiting
                .entry(key(&partition))
                .or_insert_with(|| Waiting {
                    partition: Arc::clone(&partition),
                    waiters: Vec::new(),
                    queued: false,
                    in_flight: false,
                });
            entry.waiters.push((up_to, tx));
            if !entry.queued && !entry.in_flight {
                entry.queued = true;
                state.queue.push_back(partition);
            }
            // One more worker while more partitions wait than workers are idle.
            let spawn = state.queue.len() > state.idle && state.workers < MAX_WORKERS;
            if spawn {
                state.workers += 1;
            }
            spawn
        };
        if spawn {
            self.spawn_worker();
        } else {
            self.shared.work.notify_one();
        }
        DurableWait {
            state: WaitState::Waiting(rx),
        }
    }

    /// Starts a worker thread. Under the lock of the thread list, so [`stop`](Self::stop)
    /// either joins it or it is never started (stop then answers its partition).
    fn spawn_worker(&self) {
        let mut threads = self.threads.lock();
        if self.shared.state.lock().stopped {
            self.shared.state.lock().workers -= 1;
            return;
        }
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new()
            .name("sluice-log-fsync".into())
            .spawn(move || run(&shared));
        match started {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                tracing::error!(error = %e, "could not start an fsync worker thread");
                let orphaned = {
                    let mut state = self.shared.state.lock();
                    state.workers -= 1;
                    if state.workers == 0 {
                        // Nobody would take the queue: its waiters get the error now
                        // rather than wait for the next one to try.
                        let queued: Vec<_> = state.queue.drain(..).collect();
                        queued
                            .iter()
                            .filter_map(|p| state.waiting.remove(&key(p)))
                            .collect()
                    } else {
                        Vec::new()
                    }
                };
                for waiting in orphaned {
                    for (_, tx) in waiting.waiters {
                        let _ = tx.send(Err(Error::IllegalState(format!(
                            "could not start a thread to fsync {}-{}: {e}",
                            waiting.partition.topic(),
                            waiting.partition.id()
                        ))));
                    }
                }
            }
        }
    }

    /// Answers every queued wait, then ends the workers and waits for them. Later waits are
    /// refused.
    pub(crate) fn stop(&self) {
        self.shared.state.lock().stopped = true;
        self.shared.work.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock());
        let me = std::thread::current().id();
        for thread in threads {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
        // A worker never started (the stop came first) leaves its partition to be answered
        // here.
        let leftover: Vec<Waiting> = {
            let mut state = self.shared.state.lock();
            state.queue.clear();
            state.waiting.drain().map(|(_, w)| w).collect()
        };
        for waiting in leftover {
            answer(&waiting.partition, waiting.waiters);
        }
    }
}

/// A worker: takes a queued partition, fsyncs it as far as its waiters ask, answers them.
fn run(shared: &Shared) {
    while let Some((partition, target)) = next(shared) {
        let synced = partition.sync_up_to(target);
        let answered = {
            let mut state = shared.state.lock();
            let Some(entry) = state.waiting.get_mut(&key(&partition)) else {
                continue;
            };
            let waiters = std::mem::take(&mut entry.waiters);
            let covered = if synced.is_ok() {
                let (done, rest): (Vec<_>, Vec<_>) = waiters
                    .into_iter()
                    .partition(|(up_to, _)| partition.durable_through(*up_to));
                // Those left arrived during this fsync: the partition goes back in the queue.
                entry.waiters = rest;
                done
            } else {
                waiters
            };
            entry.in_flight = false;
            if entry.waiters.is_empty() {
                state.waiting.remove(&key(&partition));
            } else {
                entry.queued = true;
                state.queue.push_back(Arc::clone(&partition));
            }
            covered
        };
        match synced {
            Ok(()) => {
                for (_, tx) in answered {
                    let _ = tx.send(Ok(()));
                }
            }
            Err(_) => answer(&partition, answered),
        }
    }
}

/// The next queued partition and the highest offset its waiters ask for; `None` once the
/// workers are stopped and nothing is queued.
fn next(shared: &Shared) -> Option<(Arc<Partition>, i64)> {
    let mut state = shared.state.lock();
    loop {
        if let Some(partition) = state.queue.pop_front() {
            let target = state.waiting.get_mut(&key(&partition)).map_or(0, |w| {
                w.queued = false;
                w.in_flight = true;
                w.waiters.iter().map(|(up_to, _)| *up_to).max().unwrap_or(0)
            });
            return Some((partition, target));
        }
        if state.stopped {
            state.workers -= 1;
            return None;
        }
        state.idle += 1;
        shared.work.wait(&mut state);
        state.idle -= 1;
    }
}

/// Answers each waiter with its own attempt: after a failed fsync (final for the partition)
/// that is its [`Error::StorageFailed`] at once, naming the partition.
fn answer(partition: &Partition, waiters: Vec<(i64, oneshot::Sender<Result<()>>)>) {
    for (up_to, tx) in waiters {
        let _ = tx.send(partition.sync_up_to(up_to));
    }
}

/// Resolves once the offsets asked for are durable; see [`Broker::durable`](crate::Broker::durable).
/// Await it (no thread is held meanwhile) or block on it with [`wait`](Self::wait).
#[derive(Debug)]
pub struct DurableWait {
    state: WaitState,
}

#[derive(Debug)]
enum WaitState {
    Ready(Option<Result<()>>),
    Waiting(oneshot::Receiver<Result<()>>),
}

impl DurableWait {
    pub(crate) fn ready(result: Result<()>) -> Self {
        Self {
            state: WaitState::Ready(Some(result)),
        }
    }

    /// Blocks the calling thread until the wait resolves.
    pub fn wait(self) -> Result<()> {
        futures::executor::block_on(self)
    }
}

impl Future for DurableWait {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.state {
            WaitState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(Error::Closed("durable wait"))))
            }
            WaitState::Waiting(rx) => rx
                .poll_unpin(cx)
                .map(|answer| answer.unwrap_or(Err(Error::Closed("broker")))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on what it did not expect
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::SyncWorkers;
    use crate::broker::Acks;
    use crate::error::Error;
    use crate::storage::Partition;
    use crate::storage::test_support::{batch, commit_partition};

    fn partition(dir: &std::path::Path) -> Arc<Partition> {
        commit_partition(dir, 1 << 30)
    }

    #[test]
    fn waits_from_many_threads_resolve_only_once_their_offsets_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let workers = SyncWorkers::default();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let (p, workers) = (&p, &workers);
                s.spawn(move || {
                    let mut waits = Vec::new();
                    for i in 0..50u8 {
                        let (_, up_to) = p.append_deferred(batch(&[t, i]), Acks::All).unwrap();
                        let up_to = up_to.unwrap();
                        waits.push((up_to, workers.wait(Arc::clone(p), up_to)));
                    }
                    for (up_to, wait) in waits {
                        wait.wait().unwrap();
                        assert!(p.info().durable_offset >= up_to, "answered before durable");
                    }
                });
            }
        });
        assert_eq!(p.info().durable_offset, 200);
        workers.stop();
    }

    #[test]
    fn a_failed_fsync_answers_every_waiter_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let workers = SyncWorkers::default();
        let ups: Vec<i64> = (0..8u8)
            .map(|i| {
                p.append_deferred(batch(&[i]), Acks::All)
                    .unwrap()
                    .1
                    .unwrap()
            })
            .collect();
        p.fail_next_fsync.store(true, Ordering::Release);
        let waits: Vec<_> = ups
            .iter()
            .map(|&up_to| workers.wait(Arc::clone(&p), up_to))
            .collect();
        let results: Vec<_> = waits.into_iter().map(|w| w.wait()).collect();
        assert!(results.iter().all(|r| r.is_err()), "{results:?}");
        assert_eq!(p.info().durable_offset, 0);
        // A wait registered after the failure is refused at once.
        let late = workers.wait(Arc::clone(&p), 8).wait();
        assert!(matches!(late, Err(Error::StorageFailed { .. })), "{late:?}");
        workers.stop();
    }

    #[test]
    fn stop_answers_the_queued_waits_and_refuses_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let workers = SyncWorkers::default();
        let waits: Vec<_> = (0..16u8)
            .map(|i| {
                let up_to = p
                    .append_deferred(batch(&[i]), Acks::All)
                    .unwrap()
                    .1
                    .unwrap();
                workers.wait(Arc::clone(&p), up_to)
            })
            .collect();
        workers.stop();
        for wait in waits {
            wait.wait().unwrap();
        }
        assert_eq!(p.info().durable_offset, 16);
        let up_to = p
            .append_deferred(batch(b"late"), Acks::All)
            .unwrap()
            .1
            .unwrap();
        let late = workers.wait(Arc::clone(&p), up_to).wait();
        assert!(matches!(late, Err(Error::Closed(_))), "{late:?}");
        // An offset already durable needs no worker and is answered even after the stop.
        workers.wait(Arc::clone(&p), 16).wait().unwrap();
    }
}
