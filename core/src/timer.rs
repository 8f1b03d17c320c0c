//! The session's timers: a tiny table walked by `handle_timeout`.

use std::time::Instant;

/// Every deadline the session can have, besides the waiters' own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The refresh in flight is overdue (still in doubt: nothing else starts).
    RefreshTimeout,
    /// Another holder has the refresh lease: look at the store again.
    LeaseRetry,
    /// The next refresh try after a transient failure.
    Backoff,
    /// The token enters its stale window: start a background refresh.
    StaleWindow,
    /// The token is too close to expiry to send: requests wait for a refresh.
    Expiry,
}

const ALL: [Timer; 5] = [
    Timer::RefreshTimeout,
    Timer::LeaseRetry,
    Timer::Backoff,
    Timer::StaleWindow,
    Timer::Expiry,
];

#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    at: [Option<Instant>; 5],
    /// The earliest of `at`, kept up to date by every change. Why: drivers ask for the
    /// next deadline (and fire what is due) on every request, and timers change rarely.
    earliest: Option<(Timer, Instant)>,
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
        self.earliest = self.scan();
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
        self.earliest = self.scan();
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    pub(crate) fn stop_all(&mut self) {
        self.at = [None; 5];
        self.earliest = None;
    }

    /// The earliest timer and its deadline.
    pub(crate) fn next(&self) -> Option<(Timer, Instant)> {
        self.earliest
    }

    fn scan(&self) -> Option<(Timer, Instant)> {
        ALL.iter()
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_earliest() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Expiry, t0 + Duration::from_secs(9));
        t.set(Timer::Backoff, t0 + Duration::from_secs(3));
        assert_eq!(
            t.next(),
            Some((Timer::Backoff, t0 + Duration::from_secs(3)))
        );
        t.stop(Timer::Backoff);
        assert_eq!(t.next(), Some((Timer::Expiry, t0 + Duration::from_secs(9))));
        // Moving the earliest timer later hands the lead to the next one.
        t.set(Timer::StaleWindow, t0 + Duration::from_secs(5));
        t.set(Timer::StaleWindow, t0 + Duration::from_secs(20));
        assert_eq!(t.next(), Some((Timer::Expiry, t0 + Duration::from_secs(9))));
        t.stop_all();
        assert_eq!(t.next(), None);
    }
}
