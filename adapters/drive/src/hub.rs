//! The session behind a short lock, the notifiers of parked requests, and the work one
//! input leaves for the adapter.

use reauth_core::{
    Admission, Attempt, Command, Error, Event, Origin, RefreshId, RefreshToken, Session,
    StoreCommand, StoreOpId, Target, WaiterId,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tracing::{debug, info, warn};

/// The session and the notifiers of the requests parked on it. `N` wakes one parked
/// request: a oneshot sender, a condition variable.
#[derive(Debug)]
pub struct Drive<N> {
    /// The machine. Feed it inputs inside [`Hub::with`].
    pub session: Session,
    parked: HashMap<WaiterId, N>,
    /// Origins already warned about as near misses of the allow-list: once each is
    /// enough to find the slip, and a request loop must not flood the log.
    warned: HashSet<Origin>,
}

/// Near-miss origins warned about, at most: beyond that, only the debug line says why.
const MAX_WARNED: usize = 64;

impl<N> Drive<N> {
    /// [`Session::begin_request`], saying why a request goes out without the token: a
    /// debug line naming its origin and the allow-list, and a warning (once per origin)
    /// when the origin nearly matches an allowed one, e.g. `localhost` against
    /// `127.0.0.1`, or another port. No token text is ever logged.
    pub fn begin_request<T: Target + ?Sized>(&mut self, now: Instant, target: &T) -> Admission {
        let admission = self.session.begin_request(now, target);
        if matches!(admission, Admission::Anonymous) {
            self.anonymous(target);
        }
        admission
    }

    fn anonymous<T: Target + ?Sized>(&mut self, target: &T) {
        let allowed = &self.session.config().allowed_origins;
        let near = allowed
            .iter()
            .find_map(|o| o.near_miss(target).map(|kind| (o, kind)));
        if near.is_none() && !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let Ok(origin) = Origin::of(target) else {
            debug!("reauth sending without the token: not an http(s) URL with a host");
            return;
        };
        debug!(%origin, ?allowed, "reauth sending without the token: origin not on the allow-list");
        let Some((close, kind)) = near else { return };
        if self.warned.len() < MAX_WARNED && !self.warned.contains(&origin) {
            warn!(
                %origin,
                allowed = %close,
                near_miss = %kind,
                "reauth sending without the token to {origin}: not on the allow-list, but \
                 {kind} of the allowed {close} (add it to Config::allowed_origins if it should \
                 get the token)"
            );
            self.warned.insert(origin);
        }
    }

    /// Parks a request: `notifier` fires when the session resumes or fails `waiter`. Call
    /// it inside the same [`Hub::with`] as the input that answered `Wait`.
    pub fn park(&mut self, waiter: WaiterId, notifier: N) {
        self.parked.insert(waiter, notifier);
    }

    /// The parked request gave up (dropped, timed out on its own): the session forgets it.
    pub fn cancel(&mut self, waiter: WaiterId) {
        self.parked.remove(&waiter);
        self.session.cancel(waiter);
    }

    /// The notifiers of the parked requests, in no particular order.
    pub fn notifiers(&self) -> impl Iterator<Item = &N> + '_ {
        self.parked.values()
    }

    /// Number of parked requests.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}

/// A refresh the session asked for: run it, report its outcome with
/// [`Session::handle_refresh`] and the same id by `deadline`.
#[derive(Debug)]
pub struct Refresh {
    /// The id to report with.
    pub id: RefreshId,
    /// The refresh token to present.
    pub refresh_token: Option<RefreshToken>,
    /// Abort the call and report a transient timeout by then.
    pub deadline: Instant,
}

/// What one input left to do, sorted by kind; [`carry_out`](Self::carry_out) does it in
/// order through the adapter's [`Io`].
#[derive(Debug)]
#[must_use]
pub struct Work<N> {
    wake: Vec<(N, Result<Attempt, Error>)>,
    events: Vec<Event>,
    store: Vec<(StoreOpId, StoreCommand)>,
    refreshes: Vec<Refresh>,
    /// The session's next deadline moved earlier than before the input: a timer (or a
    /// parked thread sleeping until it) must look again.
    pub deadline_earlier: bool,
}

/// The I/O an adapter performs for the session.
pub trait Io {
    /// What wakes one parked request.
    type Notifier;
    /// Wakes a parked request with what the session decided for it.
    fn wake(&self, notifier: Self::Notifier, outcome: Result<Attempt, Error>);
    /// Hands an event to the application (after it was logged).
    fn publish(&self, event: Event);
    /// Carries out a store operation, then reports it with [`Session::handle_store`].
    fn store(&self, id: StoreOpId, op: StoreCommand);
    /// Runs a refresh, then reports it with [`Session::handle_refresh`].
    fn refresh(&self, refresh: Refresh);
}

impl<N> Work<N> {
    /// Wakes, then logs and publishes events, then starts store operations and refreshes:
    /// a waiter never waits behind a slow store or refresh.
    pub fn carry_out(self, io: &impl Io<Notifier = N>) {
        for (notifier, outcome) in self.wake {
            io.wake(notifier, outcome);
        }
        for event in self.events {
            if event.is_problem() {
                warn!("reauth {event}");
            } else {
                info!("reauth {event}");
            }
            io.publish(event);
        }
        for (id, op) in self.store {
            io.store(id, op);
        }
        for refresh in self.refreshes {
            io.refresh(refresh);
        }
    }

    /// True if there is nothing to carry out.
    pub fn is_empty(&self) -> bool {
        self.wake.is_empty()
            && self.events.is_empty()
            && self.store.is_empty()
            && self.refreshes.is_empty()
    }
}

/// A [`Drive`] behind a short lock: never held across I/O or an `.await`.
#[derive(Debug)]
pub struct Hub<N> {
    drive: Mutex<State<N>>,
}

#[derive(Debug)]
struct State<N> {
    drive: Drive<N>,
    /// The next deadline after the last input.
    deadline: Option<Instant>,
}

impl<N> Hub<N> {
    /// Wraps a session.
    pub fn new(session: Session) -> Self {
        let deadline = session.poll_timeout();
        Self {
            drive: Mutex::new(State {
                drive: Drive {
                    session,
                    parked: HashMap::new(),
                    warned: HashSet::new(),
                },
                deadline,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<N>> {
        // Every input leaves the session consistent, so a panic elsewhere (which poisons
        // the lock) must not take the whole client down with it.
        self.drive.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the session without feeding it anything.
    pub fn peek<R>(&self, f: impl FnOnce(&Drive<N>) -> R) -> R {
        f(&self.lock().drive)
    }

    /// Like [`peek`](Self::peek), without blocking: `None` if the lock is held (e.g. by
    /// this very thread, further up while it unwinds).
    pub fn try_with<R>(&self, f: impl FnOnce(&mut Drive<N>) -> R) -> Option<R> {
        let mut state = match self.drive.try_lock() {
            Ok(s) => s,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(f(&mut state.drive))
    }

    /// Feeds the session an input under the lock (`f` gets the current time), drains what
    /// it produced, and returns `f`'s result with the work to carry out once the lock is
    /// released. `None` on the fast path: nothing to do.
    pub fn with<R>(&self, f: impl FnOnce(&mut Drive<N>, Instant) -> R) -> (R, Option<Work<N>>) {
        let now = Instant::now();
        let mut state = self.lock();
        let before = tracing::enabled!(tracing::Level::DEBUG).then(|| state.drive.session.phase());
        let result = f(&mut state.drive, now);
        if let Some(before) = before {
            let after = state.drive.session.phase();
            if before != after {
                let generation = state.drive.session.generation().get();
                debug!(from = ?before, to = ?after, generation, "reauth phase change");
            }
        }
        let next = state.drive.session.poll_timeout();
        let deadline_earlier = match (next, state.deadline) {
            (Some(next), Some(before)) => next < before,
            (Some(_), None) => true,
            (None, _) => false,
        };
        state.deadline = next;
        if !state.drive.session.has_commands() && !deadline_earlier {
            return (result, None);
        }
        let mut work = Work {
            wake: Vec::new(),
            events: Vec::new(),
            store: Vec::new(),
            refreshes: Vec::new(),
            deadline_earlier,
        };
        let drive = &mut state.drive;
        while let Some(command) = drive.session.poll_command() {
            match command {
                Command::StartRefresh {
                    id,
                    refresh_token,
                    deadline,
                } => work.refreshes.push(Refresh {
                    id,
                    refresh_token,
                    deadline,
                }),
                Command::Resume { waiter, attempt } => {
                    // A notifier that is gone belongs to a request that gave up.
                    if let Some(n) = drive.parked.remove(&waiter) {
                        work.wake.push((n, Ok(attempt)));
                    }
                }
                Command::Fail { waiter, error } => {
                    if let Some(n) = drive.parked.remove(&waiter) {
                        work.wake.push((n, Err(error)));
                    }
                }
                Command::Store { id, op } => work.store.push((id, op)),
                Command::Event(e) => work.events.push(e),
                other => debug!(command = ?other, "reauth: a command this adapter does not know"),
            }
        }
        (result, Some(work))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reauth_core::{AccessToken, Config, Origin, RefreshToken, TokenSet, Verdict};
    use std::cell::RefCell;
    use std::time::Duration;

    #[derive(Default)]
    struct Record {
        log: RefCell<Vec<String>>,
    }

    impl Io for Record {
        type Notifier = &'static str;
        fn wake(&self, n: &'static str, outcome: Result<Attempt, Error>) {
            self.log
                .borrow_mut()
                .push(format!("wake {n} {}", outcome.is_ok()));
        }
        fn publish(&self, event: Event) {
            self.log.borrow_mut().push(format!("event {event}"));
        }
        fn store(&self, id: StoreOpId, op: StoreCommand) {
            let kind = format!("{op:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or_default();
            self.log.borrow_mut().push(format!("store {id} {kind}"));
        }
        fn refresh(&self, r: Refresh) {
            self.log.borrow_mut().push(format!("refresh {}", r.id));
        }
    }

    #[test]
    fn work_is_sorted_and_requests_that_gave_up_are_skipped() {
        let hub: Hub<&'static str> = Hub::new(Session::new(Config::new(
            Origin::parse("https://api.test").unwrap(),
        )));
        let io = Record::default();
        let (_, work) = hub.with(|d, now| {
            d.session.login(
                now,
                TokenSet::new(AccessToken::new("a").unwrap())
                    .with_refresh_token(RefreshToken::new("r").unwrap())
                    .with_expires_in(Duration::from_secs(100)),
            )
        });
        let work = work.expect("the login's write");
        assert!(work.deadline_earlier, "the token's timers appeared");
        work.carry_out(&io);
        assert_eq!(io.log.borrow().as_slice(), ["store s1 Write"]);
        let uri: http::Uri = "https://api.test/x".parse().unwrap();
        // The fast path leaves nothing to carry out.
        let (admission, work) = hub.with(|d, now| d.session.begin_request(now, &uri));
        assert!(work.is_none());
        let reauth_core::Admission::Send(a) = admission else {
            panic!()
        };
        let (w1, _) = hub.with(|d, now| {
            let v = d.session.handle_response(
                now,
                &a,
                http::StatusCode::UNAUTHORIZED,
                &http::HeaderMap::new(),
                true,
            );
            let Verdict::Wait(w) = v else { panic!("{v:?}") };
            d.park(w, "first");
            w
        });
        let (w2, _) = hub.with(|d, now| {
            let reauth_core::Admission::Wait(w) = d.session.begin_request(now, &uri) else {
                panic!()
            };
            d.park(w, "second");
            w
        });
        hub.with(|d, _| d.cancel(w2));
        assert_eq!(
            hub.peek(|d| d.notifiers().copied().collect::<Vec<_>>()),
            ["first"]
        );
        assert_eq!(hub.peek(|d| d.parked()), 1);
        assert!(w1 != w2);
        assert!(hub.try_with(|d| d.parked()).is_some());
    }
}
