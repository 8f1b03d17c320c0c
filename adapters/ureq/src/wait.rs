//! What a parked request blocks on: its answer from the session, or a nudge to re-read the
//! session's next deadline.

use reauth_core::Attempt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

pub(crate) type Outcome = Result<Attempt, reauth_core::Error>;

/// One parked request's notifier. The session's answer arrives exactly once; nudges may
/// come any number of times and never crowd the answer out.
#[derive(Default)]
pub(crate) struct Waiter {
    slot: Mutex<Slot>,
    changed: Condvar,
}

#[derive(Default)]
struct Slot {
    outcome: Option<Outcome>,
    recheck: bool,
}

/// Why [`Waiter::wait_until`] returned.
pub(crate) enum Woke {
    /// The session answered.
    Answered(Outcome),
    /// The session's next deadline moved earlier: re-read it.
    Recheck,
    /// The instant passed.
    Due,
}

impl Waiter {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Only plain assignments happen under this lock: a poisoned slot is still whole.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session's answer.
    pub(crate) fn answer(&self, outcome: Outcome) {
        self.lock().outcome = Some(outcome);
        self.changed.notify_one();
    }

    /// Asks the parked thread to re-read the session's next deadline.
    pub(crate) fn nudge(&self) {
        self.lock().recheck = true;
        self.changed.notify_one();
    }

    /// Blocks until the answer, a nudge, or `until`, whichever comes first. An answer that
    /// is already there wins.
    pub(crate) fn wait_until(&self, until: Instant) -> Woke {
        let mut slot = self.lock();
        loop {
            if let Some(outcome) = slot.outcome.take() {
                return Woke::Answered(outcome);
            }
            if std::mem::take(&mut slot.recheck) {
                return Woke::Recheck;
            }
            let now = Instant::now();
            if now >= until {
                return Woke::Due;
            }
            slot = match self.changed.wait_timeout(slot, until - now) {
                Ok((slot, _)) => slot,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The answer, if it has arrived.
    pub(crate) fn try_take(&self) -> Option<Outcome> {
        self.lock().outcome.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn answers_win_over_nudges_and_deadlines() {
        let w = Waiter::default();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(matches!(w.wait_until(soon), Woke::Due));
        w.nudge();
        w.nudge();
        assert!(matches!(w.wait_until(soon), Woke::Recheck));
        w.nudge();
        w.answer(Err(reauth_core::Error::Timeout));
        assert!(matches!(
            w.wait_until(soon),
            Woke::Answered(Err(reauth_core::Error::Timeout))
        ));
        assert!(matches!(w.wait_until(Instant::now()), Woke::Recheck));
        assert!(w.try_take().is_none());
    }

    #[test]
    fn a_blocked_thread_wakes_on_a_nudge_and_on_its_answer() {
        let w = Arc::new(Waiter::default());
        let far = Instant::now() + Duration::from_secs(30);
        let other = w.clone();
        let t = std::thread::spawn(move || {
            let first = matches!(other.wait_until(far), Woke::Recheck);
            let second = matches!(
                other.wait_until(far),
                Woke::Answered(Ok(_)) | Woke::Answered(Err(_))
            );
            (first, second)
        });
        std::thread::sleep(Duration::from_millis(20));
        w.nudge();
        std::thread::sleep(Duration::from_millis(20));
        w.answer(Err(reauth_core::Error::NotAuthenticated));
        assert_eq!(t.join().unwrap(), (true, true));
    }
}
