//! The harness's waits: each polls the condition it waits for (every [`POLL`]) and gives
//! up on the run as hung after a generous deadline, saying what it waited for.

use std::time::{Duration, Instant};

use sluice_log::{Broker, OffsetSpec, TopicPartition};

use super::FaultHarness;
use crate::app::{AppHandle, AppState};
use crate::error::{Error, Result};

/// How often the harness's waits look at the condition they wait for.
const POLL: Duration = Duration::from_millis(10);

/// How long the harness waits for a condition before it gives up on the run as hung.
pub(super) const HANG_GUARD: Duration = Duration::from_secs(60);

/// Polls `done` every [`POLL`] until it holds; fails after [`HANG_GUARD`], saying what it
/// waited for and what `seen` describes of the last state.
pub(super) fn poll_until(
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
    seen: impl Fn() -> String,
) -> Result<()> {
    let deadline = Instant::now() + HANG_GUARD;
    while !done()? {
        if Instant::now() > deadline {
            return Err(Error::IllegalState(format!(
                "gave up after {HANG_GUARD:?} waiting for {what} ({})",
                seen()
            )));
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

impl<IK, IV, OK, OV> FaultHarness<IK, IV, OK, OV> {
    /// Whether every task is `handle`'s by the group's word, not only by its own (a zombie
    /// still believes it owns what it lost): the group's members are exactly its threads.
    pub(super) fn owns_every_task(&self, broker: &Broker, handle: &AppHandle) -> bool {
        handle.tasks().len()
            == self.topology.sub_topologies().len() * self.input.partitions as usize
            && broker.describe_group(&self.application_id).members.len() == self.config.num_threads
    }

    /// Waits until the instance runs every task and the group's committed offsets reach the
    /// end of every input partition.
    pub(super) fn wait_until_consumed(&self, broker: &Broker, handle: &AppHandle) -> Result<()> {
        let inputs: Vec<TopicPartition> = (0..self.input.partitions)
            .map(|p| TopicPartition::new(self.input.name.clone(), p))
            .collect();
        let app = || {
            format!(
                "app {:?}: {}",
                handle.state(),
                handle.error().unwrap_or_default()
            )
        };
        poll_until(
            "every input to be committed",
            || {
                if handle.state() == AppState::Error {
                    return Err(Error::IllegalState(format!(
                        "input not all committed ({})",
                        app()
                    )));
                }
                let mut done = true;
                for (tp, committed) in broker.offset_fetch(&self.application_id, &inputs, false)? {
                    let end = broker
                        .list_offsets(&tp.topic, tp.partition, OffsetSpec::Latest)?
                        .map_or(0, |l| l.offset);
                    done &= committed.unwrap_or(0) >= end;
                }
                Ok(done
                    && self.owns_every_task(broker, handle)
                    && handle.state() == AppState::Running)
            },
            app,
        )
    }

    /// Waits until no transaction is open on the output or the store's changelog (the broker
    /// times out one a crashed instance left), failing past four transaction timeouts.
    pub(super) fn wait_until_no_open_transactions(&self, broker: &Broker) -> Result<()> {
        let mut topics = vec![self.output.name.clone()];
        if let Some((_, spec)) = &self.store {
            topics.push(spec.name.clone());
        }
        let deadline =
            Instant::now() + self.config.transaction_timeout * 4 + Duration::from_secs(10);
        loop {
            let mut open = false;
            for topic in &topics {
                for p in broker.topic_metadata(topic)?.partitions {
                    open |= p.last_stable_offset < p.high_watermark;
                }
            }
            if !open {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::IllegalState(format!(
                    "a transaction on {topics:?} is still open after the transaction timeout"
                )));
            }
            std::thread::sleep(POLL);
        }
    }
}
