//! The harness's waits: each polls the condition it waits for (every [`POLL`]) and gives
//! up on the run as hung after a generous deadline, saying what it waited for.

use std::time::{Duration, Instant};

use sluice_log::TopicPartition;
use sluice_log::cluster::{Cluster, OffsetAt};

use super::{FaultHarness, RunNames};
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
    /// Whether `handle` runs every task. An instance gets them all only from an assignment
    /// in which the group gave it everything, so after a zombie has lost its tasks this is
    /// the group's word, not only the instance's.
    pub(super) fn owns_every_task(&self, handle: &AppHandle) -> bool {
        handle.tasks().len() == self.sub_topologies * self.input.partitions as usize
    }

    /// Waits until `a` and `b` split the tasks between them, each task run by exactly one:
    /// the last rebalance has reached both instances' threads, so the next assignment
    /// either sees is a new one.
    pub(super) fn wait_until_split(&self, a: &AppHandle, b: &AppHandle) -> Result<()> {
        let every = self.sub_topologies * self.input.partitions as usize;
        poll_until(
            "the two instances to split the tasks (the last rebalance settled)",
            || {
                let mut tasks = a.tasks();
                tasks.extend(b.tasks());
                let run = tasks.len();
                tasks.sort();
                tasks.dedup();
                Ok(run == every && tasks.len() == every)
            },
            || format!("one runs {:?}, the other {:?}", a.tasks(), b.tasks()),
        )
    }

    /// Waits until the instance runs every task and the group's committed offsets reach the
    /// end of every input partition.
    pub(super) fn wait_until_consumed<C: Cluster>(
        &self,
        cluster: &C,
        names: &RunNames,
        handle: &AppHandle,
    ) -> Result<()> {
        let inputs: Vec<TopicPartition> = (0..self.input.partitions)
            .map(|p| TopicPartition::new(names.input.clone(), p))
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
                let committed = cluster
                    .committed_offsets(&names.application_id, &inputs)
                    .map_err(Error::cluster)?;
                let mut done = true;
                for (tp, offset) in committed {
                    let end = cluster
                        .list_offset(&tp, OffsetAt::Latest)
                        .map_err(Error::cluster)?;
                    done &= offset.unwrap_or(0) >= end;
                }
                // The app's own check too: every source, repartition topics included, read to
                // its end, upstream first.
                Ok(done
                    && handle.caught_up()?
                    && self.owns_every_task(handle)
                    && handle.state() == AppState::Running)
            },
            app,
        )
    }
}
