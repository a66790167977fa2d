//! The broker's maintenance thread: fsyncs sealed segments in the background (so a roll never
//! stalls a producer), honours `fsync = interval:MS`, and runs retention (`cleanup = delete`
//! topics) and compaction (`cleanup = compact` topics) every `retention_check_interval`. It
//! holds only a weak reference, so dropping the last broker handle ends it.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Broker, BrokerConfig, Inner};
use crate::util::now_ms;

#[derive(Debug, Default)]
struct StopFlag {
    stopped: Mutex<bool>,
    cv: Condvar,
}

/// Owns the thread; [`stop`](Handle::stop) ends it and waits for it.
#[derive(Debug)]
pub(crate) struct Handle {
    flag: Arc<StopFlag>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    pub(crate) fn start(inner: Weak<Inner>, config: &BrokerConfig) -> Self {
        let flag = Arc::new(StopFlag::default());
        let thread_flag = Arc::clone(&flag);
        let tick = config.flush_check_interval.max(Duration::from_millis(1));
        let retention_every = config.retention_check_interval;
        let thread = std::thread::Builder::new()
            .name("sluice-log-maintenance".into())
            .spawn(move || run(inner, thread_flag, tick, retention_every))
            .map_err(|e| tracing::error!(error = %e, "could not start the log maintenance thread"))
            .ok();
        Self {
            flag,
            thread: Mutex::new(thread),
        }
    }

    pub(crate) fn stop(&self) {
        *self.flag.stopped.lock() = true;
        self.flag.cv.notify_all();
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        // The thread itself may drop the last broker handle; it must not join itself.
        if thread.thread().id() != std::thread::current().id() {
            let _ = thread.join();
        }
    }
}

fn run(inner: Weak<Inner>, flag: Arc<StopFlag>, tick: Duration, retention_every: Duration) {
    let mut next_retention = crate::util::deadline_after(retention_every);
    loop {
        {
            let mut stopped = flag.stopped.lock();
            if !*stopped {
                flag.cv.wait_for(&mut stopped, tick);
            }
            if *stopped {
                return;
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        let broker = Broker { inner };
        let now = now_ms();
        for topic in broker.topics().all() {
            let partitions: Vec<_> = topic.partitions.read().clone();
            for partition in partitions {
                if let Err(e) = partition.flush_if_due(now) {
                    tracing::error!(topic = %topic.name, partition = partition.id(), error = %e, "background fsync failed");
                }
            }
        }
        if let Err(e) = broker.abort_expired_transactions() {
            tracing::error!(error = %e, "aborting expired transactions failed");
        }
        broker.expire_group_members();
        if Instant::now() >= next_retention {
            next_retention = crate::util::deadline_after(retention_every);
            if let Err(e) = broker.run_retention() {
                tracing::error!(error = %e, "retention failed");
            }
            if let Err(e) = broker.run_compaction() {
                tracing::error!(error = %e, "compaction failed");
            }
        }
    }
}
