//! The queue of requests waiting for a refresh.
//!
//! Waiter ids only grow and every waiter gets the same timeout, so the queue is sorted by
//! id and by deadline at once: the front holds the next deadline, and a cancellation is a
//! binary search. A cancelled waiter leaves a tombstone until it reaches the front. Each
//! slot is 32 bytes, which keeps a storm of a million waiters cheap.

use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) id: u64,
    pub(crate) deadline: Instant,
    /// Resuming this waiter means replaying a request that already got a 401.
    pub(crate) replay: bool,
    pub(crate) live: bool,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Waiters {
    queue: VecDeque<Slot>,
    live: usize,
}

impl Waiters {
    pub(crate) fn push(&mut self, id: u64, deadline: Instant, replay: bool) {
        debug_assert!(self.queue.back().is_none_or(|s| s.id < id));
        self.queue.push_back(Slot {
            id,
            deadline,
            replay,
            live: true,
        });
        self.live += 1;
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Marks waiter `id` cancelled. False if it is not queued (unknown or resolved).
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        if !cancel_in(&mut self.queue, id) {
            return false;
        }
        self.live -= 1;
        self.prune();
        true
    }

    fn prune(&mut self) {
        while self.queue.front().is_some_and(|s| !s.live) {
            self.queue.pop_front();
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queue.front().map(|s| s.deadline)
    }

    /// Removes and returns the live waiters whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: Instant) -> VecDeque<Slot> {
        let n = self.queue.partition_point(|s| s.deadline <= now);
        let expired: VecDeque<Slot> = self.queue.drain(..n).filter(|s| s.live).collect();
        self.live -= expired.len();
        self.prune();
        expired
    }

    /// Removes every waiter, returning the live ones in order.
    pub(crate) fn take_all(&mut self) -> VecDeque<Slot> {
        self.live = 0;
        let mut all = std::mem::take(&mut self.queue);
        all.retain(|s| s.live);
        all
    }
}

/// Marks `id` dead in a queue sorted by id. False if absent or already dead.
pub(crate) fn cancel_in(queue: &mut VecDeque<Slot>, id: u64) -> bool {
    match queue.binary_search_by_key(&id, |s| s.id) {
        Ok(i) if queue[i].live => {
            queue[i].live = false;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slot_is_small() {
        assert!(std::mem::size_of::<Slot>() <= 32);
    }

    #[test]
    fn cancel_expire_and_drain() {
        let t0 = Instant::now();
        let mut w = Waiters::default();
        for i in 0..5 {
            w.push(i, t0 + Duration::from_secs(i), false);
        }
        assert!(w.cancel(0));
        assert!(!w.cancel(0));
        assert!(!w.cancel(99));
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(w.cancel(2));
        let expired = w.take_expired(t0 + Duration::from_secs(2));
        assert_eq!(expired.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(w.live(), 2);
        let rest = w.take_all();
        assert_eq!(rest.iter().map(|s| s.id).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(w.live(), 0);
        assert_eq!(w.next_deadline(), None);
    }
}
