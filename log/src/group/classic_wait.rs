//! How a parked classic JoinGroup or SyncGroup gets its answer without holding a thread, and
//! the timer that ends join barriers, pending syncs and sessions on time.
//!
//! A call that must wait (the join barrier, a follower's SyncGroup) gets a [`ClassicReply`]:
//! a future (a server awaits it on its reactor, no thread parked) that can also be waited
//! on by blocking ([`ClassicReply::wait`]). The group keeps the other half, a [`Waiter`],
//! in the member; the transition that answers the member posts into it, which wakes the
//! future's waker or the blocked thread. A `Waiter` dropped without an answer (the group
//! or the coordinator went away) answers `Closed`, so no caller waits forever.
//!
//! Nobody waiting runs the group's timers: the [`ClassicTimer`] is a condition the
//! coordinator's timer thread (started with the first classic group, see
//! `broker::classic_groups`) sleeps on until the earliest deadline any transition scheduled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// What a waiter is answered with when it is dropped unanswered.
const GONE: &str = "group coordinator";

struct SlotState<T> {
    reply: Option<Result<T>>,
    waker: Option<Waker>,
    /// The reply was posted (and maybe taken since).
    posted: bool,
}

/// Where one answer is left for one caller.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    cv: Condvar,
}

impl<T> Slot<T> {
    fn post(&self, reply: Result<T>) {
        let waker = {
            let mut state = self.state.lock();
            if state.posted {
                return;
            }
            state.posted = true;
            state.reply = Some(reply);
            state.waker.take()
        };
        self.cv.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The group's half of a parked call: post the answer into it.
pub(crate) struct Waiter<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> std::fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}

impl<T> Waiter<T> {
    /// Answers the caller (a caller that went away is not told).
    pub(crate) fn post(mut self, reply: Result<T>) {
        if let Some(slot) = self.slot.take() {
            slot.post(reply);
        }
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.post(Err(Error::Closed(GONE)));
        }
    }
}

/// A new parked call: the group keeps the [`Waiter`], the caller gets the [`ClassicReply`].
pub(crate) fn park<T>() -> (Waiter<T>, ClassicReply<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            reply: None,
            waker: None,
            posted: false,
        }),
        cv: Condvar::new(),
    });
    (
        Waiter {
            slot: Some(Arc::clone(&slot)),
        },
        ClassicReply {
            state: ReplyState::Waiting(slot),
        },
    )
}

enum ReplyState<T> {
    Ready(Option<Result<T>>),
    Waiting(Arc<Slot<T>>),
}

/// The answer to a classic JoinGroup or SyncGroup: there at once, or once the group posts
/// it (the join barrier completes, the leader's assignment arrives, a rebalance or the
/// broker's close fails the call). Await it (no thread is held while it waits) or block on
/// it with [`wait`](Self::wait). Dropping it abandons the answer; the member stays in the
/// group as if its client had disconnected.
pub struct ClassicReply<T> {
    state: ReplyState<T>,
}

impl<T> std::fmt::Debug for ClassicReply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            ReplyState::Ready(_) => "ready",
            ReplyState::Waiting(_) => "waiting",
        };
        f.debug_struct("ClassicReply")
            .field("state", &state)
            .finish()
    }
}

impl<T> ClassicReply<T> {
    /// An answer available at once.
    pub(crate) fn ready(reply: Result<T>) -> Self {
        Self {
            state: ReplyState::Ready(Some(reply)),
        }
    }

    /// Whether the answer is there (awaiting or waiting on it returns at once).
    pub fn is_ready(&self) -> bool {
        match &self.state {
            ReplyState::Ready(_) => true,
            ReplyState::Waiting(slot) => slot.state.lock().posted,
        }
    }

    /// Blocks the calling thread until the answer is there.
    pub fn wait(self) -> Result<T> {
        match self.state {
            ReplyState::Ready(reply) => reply.unwrap_or_else(|| Err(taken())),
            ReplyState::Waiting(slot) => {
                let mut state = slot.state.lock();
                loop {
                    if let Some(reply) = state.reply.take() {
                        return reply;
                    }
                    if state.posted {
                        return Err(taken());
                    }
                    slot.cv.wait(&mut state);
                }
            }
        }
    }
}

fn taken() -> Error {
    Error::IllegalState("a classic group reply was taken twice".into())
}

// The answer is only ever moved out, never pinned in place.
impl<T> Unpin for ClassicReply<T> {}

impl<T> Future for ClassicReply<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            ReplyState::Ready(reply) => Poll::Ready(reply.take().unwrap_or_else(|| Err(taken()))),
            ReplyState::Waiting(slot) => {
                let mut state = slot.state.lock();
                if let Some(reply) = state.reply.take() {
                    return Poll::Ready(reply);
                }
                if state.posted {
                    return Poll::Ready(Err(taken()));
                }
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[derive(Debug, Default)]
struct TimerState {
    /// The earliest deadline scheduled since the timer thread last looked.
    next: Option<Instant>,
    stopped: bool,
    started: bool,
}

/// When the coordinator's timer thread must next run the classic groups' timers.
#[derive(Debug, Default)]
pub(crate) struct ClassicTimer {
    state: Mutex<TimerState>,
    cv: Condvar,
}

impl ClassicTimer {
    /// Asks for a run at `at` (or earlier, if one is already due sooner).
    pub(crate) fn schedule(&self, at: Instant) {
        let mut state = self.state.lock();
        if state.next.is_none_or(|next| at < next) {
            state.next = Some(at);
            self.cv.notify_all();
        }
    }

    /// Whether the thread still has to be started; true once (the caller starts it).
    pub(crate) fn claim_start(&self) -> bool {
        let mut state = self.state.lock();
        let first = !state.started && !state.stopped;
        state.started = true;
        first
    }

    /// The thread is about to run the timers: what is scheduled from now on is new.
    pub(crate) fn begin_run(&self) -> bool {
        let mut state = self.state.lock();
        state.next = None;
        !state.stopped
    }

    /// Sleeps until `computed` (the earliest deadline the run found), an earlier scheduled
    /// one, or `longest` from now; false once stopped.
    pub(crate) fn sleep(&self, computed: Option<Instant>, longest: Duration) -> bool {
        let mut state = self.state.lock();
        let cap = Instant::now() + longest;
        loop {
            if state.stopped {
                return false;
            }
            let until = [state.next, computed, Some(cap)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(cap);
            if Instant::now() >= until {
                return true;
            }
            self.cv.wait_until(&mut state, until);
        }
    }

    /// Ends the thread (at its next wake-up, which this causes).
    pub(crate) fn stop(&self) {
        self.state.lock().stopped = true;
        self.cv.notify_all();
    }
}
