//! Which tokio runtime the session's tasks run on.
//!
//! A client may outlive the runtime it was built on (built in one `#[tokio::main]` or
//! test, used from another), and a task spawned on a runtime that is gone never runs: the
//! session would sit in `Refreshing` until every waiter timed out. So a refresh or store
//! task goes to the runtime of the request (or call) that asked for it, and only failing
//! that to the runtime the timer task runs on; and the timer task, which fires the
//! session's deadlines, is started again on the next request's runtime once its own is
//! gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::runtime::Handle;
use tokio::sync::Notify;

pub(crate) struct Runtimes {
    home: Mutex<Home>,
    /// True while a timer task is alive: the check every request makes, without a lock.
    alive: AtomicBool,
    /// Wakes parked requests when the timer task ended with its runtime, so that one of
    /// them starts it again on its own.
    gone: Notify,
}

/// The runtime the timer task runs on, if it is alive, and the number of its run.
struct Home {
    run: u64,
    handle: Option<Handle>,
}

impl Runtimes {
    pub(crate) fn new() -> Self {
        Self {
            home: Mutex::new(Home {
                run: 0,
                handle: None,
            }),
            alive: AtomicBool::new(false),
            gone: Notify::new(),
        }
    }

    pub(crate) fn timer_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Where to spawn the session's work: the caller's runtime, else the timer's.
    pub(crate) fn spawner(&self) -> Option<Handle> {
        Handle::try_current().ok().or_else(|| {
            let home = self.home.lock().unwrap_or_else(PoisonError::into_inner);
            home.handle.clone()
        })
    }

    /// Claims the timer for a new run on `handle`: its number, or `None` if a timer task
    /// is alive already.
    pub(crate) fn claim(&self, handle: &Handle) -> Option<u64> {
        let mut home = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        if self.alive.load(Ordering::Acquire) {
            return None;
        }
        home.run += 1;
        home.handle = Some(handle.clone());
        self.alive.store(true, Ordering::Release);
        Some(home.run)
    }

    /// The timer task of `run` ended (its runtime shut down, or it was never started).
    pub(crate) fn ended(&self, run: u64) {
        let mut home = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        if home.run == run && home.handle.is_some() {
            home.handle = None;
            self.alive.store(false, Ordering::Release);
            drop(home);
            self.gone.notify_waiters();
        }
    }

    /// Resolves when the timer task ends. Enable it before checking [`timer_alive`], or
    /// the wake-up can be lost.
    ///
    /// [`timer_alive`]: Self::timer_alive
    pub(crate) fn gone(&self) -> tokio::sync::futures::Notified<'_> {
        self.gone.notified()
    }
}
