//! Glue shared by every adapter, still without I/O: the session plus the table of parked
//! requests, and the commands sorted into the effects an adapter must carry out.
//!
//! An adapter keeps one [`Hub`] behind a short mutex. Under the lock it feeds an input,
//! registers the notifier of a request that must wait, and calls [`Hub::drain`]. After
//! releasing the lock it carries out the [`Effects`] in the order of their fields: store
//! first (so rotated tokens are saved before anyone uses them), then wake the parked
//! requests, then publish events, then start refreshes.
//!
//! `N` is whatever wakes one parked request: a `tokio::sync::oneshot::Sender` for the
//! async adapter, a `std::sync::mpsc::SyncSender` for the blocking one.

use crate::command::{Admission, Command, Event, RefreshOutcome, Verdict};
use crate::credential::Attempt;
use crate::error::Error;
use crate::ids::{RefreshId, WaiterId};
use crate::machine::Session;
use crate::store::{SavedTokens, StoreError, TokenStore};
use crate::token::RefreshToken;
use http::{HeaderMap, StatusCode, Uri};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Instant, SystemTime};

/// What a request should do next.
#[derive(Debug)]
#[non_exhaustive]
pub enum Next {
    /// Send with this attempt's credential.
    Send(Attempt),
    /// Send without any credential (the origin is not on the allow-list).
    SendAnonymous,
    /// Park until the registered notifier fires; [`Hub::register`] it before unlocking.
    Wait(WaiterId),
    /// Hand the response just received to the caller.
    Deliver,
    /// Fail the request.
    Fail(Error),
}

/// A store operation, in the order the session asked for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreOp {
    /// Save these tokens, replacing what the store holds.
    Save(SavedTokens),
    /// Delete the stored tokens.
    Clear,
}

impl StoreOp {
    /// Carries the operation out on `store`.
    pub fn apply(&self, store: &dyn TokenStore) -> Result<(), StoreError> {
        match self {
            StoreOp::Save(tokens) => store.save(tokens),
            StoreOp::Clear => store.clear(),
        }
    }
}

/// A fresh backoff-jitter seed for [`Config::seed`](crate::Config::seed), different for every
/// call, so that many clients do not retry in lockstep. Tests fix the seed instead.
pub fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

/// The work that one drain of the session produced, sorted by kind. Carry it out in field
/// order.
#[derive(Debug)]
#[non_exhaustive]
pub struct Effects<N> {
    /// Store operations, in order. Do them first.
    pub store: Vec<StoreOp>,
    /// Parked requests to wake, with what they get.
    pub wake: Vec<(N, Result<Attempt, Error>)>,
    /// Events for the application.
    pub events: Vec<Event>,
    /// Refreshes to start: report each outcome with [`Hub::refresh_done`].
    pub refreshes: Vec<(RefreshId, Option<RefreshToken>)>,
}

impl<N> Default for Effects<N> {
    fn default() -> Self {
        Self {
            store: Vec::new(),
            wake: Vec::new(),
            events: Vec::new(),
            refreshes: Vec::new(),
        }
    }
}

impl<N> Effects<N> {
    /// True if there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
            && self.wake.is_empty()
            && self.events.is_empty()
            && self.refreshes.is_empty()
    }
}

/// A session and the notifiers of the requests parked on it.
#[derive(Debug)]
pub struct Hub<N> {
    session: Session,
    parked: HashMap<WaiterId, N>,
}

impl<N> Hub<N> {
    /// Wraps a session.
    pub fn new(session: Session) -> Self {
        Self {
            session,
            parked: HashMap::new(),
        }
    }

    /// The session, for getters.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, for mutators such as `login` and `logout`. Drain afterwards.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Logs in with tokens loaded from a store. `now` and `wall` are the same moment on the
    /// monotonic and the wall clock; a token that expired meanwhile is refreshed before use.
    /// Drain afterwards.
    pub fn restore(&mut self, now: Instant, wall: SystemTime, saved: &SavedTokens) {
        self.session.login(now, saved.to_token_set(wall));
    }

    /// Admits a new request to `uri`.
    pub fn begin(&mut self, now: Instant, uri: &Uri) -> Next {
        match self.session.begin_request(now, uri) {
            Admission::Send(a) => Next::Send(a),
            Admission::Wait(w) => Next::Wait(w),
            Admission::Anonymous => Next::SendAnonymous,
            Admission::Reject(e) => Next::Fail(e),
        }
    }

    /// A response arrived for `attempt`. A request whose body cannot be sent again
    /// (`replayable` false) is never replayed: the session still learns of the 401 and
    /// refreshes for the next call, and the caller gets this response.
    pub fn respond(
        &mut self,
        now: Instant,
        attempt: &Attempt,
        status: StatusCode,
        headers: &HeaderMap,
        replayable: bool,
    ) -> Next {
        match self.session.handle_response(now, attempt, status, headers) {
            Verdict::Done => Next::Deliver,
            Verdict::Replay(_) if !replayable => Next::Deliver,
            Verdict::Wait(w) if !replayable => {
                self.session.cancel(w);
                Next::Deliver
            }
            Verdict::Replay(a) => Next::Send(a),
            Verdict::Wait(w) => Next::Wait(w),
            Verdict::Fail(e) => Next::Fail(e),
        }
    }

    /// Parks a request: `notifier` fires when the session resumes or fails `waiter`.
    /// Call it under the same lock as the input that returned [`Next::Wait`].
    pub fn register(&mut self, waiter: WaiterId, notifier: N) {
        self.parked.insert(waiter, notifier);
    }

    /// The parked request gave up (dropped, timed out on its own). Its notifier is
    /// dropped and the session forgets it.
    pub fn cancel(&mut self, waiter: WaiterId) {
        self.parked.remove(&waiter);
        self.session.cancel(waiter);
    }

    /// Refresh `id` finished.
    pub fn refresh_done(&mut self, now: Instant, id: RefreshId, outcome: RefreshOutcome) {
        self.session.handle_refresh(now, id, outcome);
    }

    /// Fires due deadlines.
    pub fn timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
    }

    /// Number of parked requests.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// The notifiers of the parked requests, in no particular order: e.g. to make parked
    /// threads re-read [`Session::poll_timeout`] when the next deadline moved earlier.
    pub fn notifiers(&self) -> impl Iterator<Item = &N> + '_ {
        self.parked.values()
    }

    /// Drains every pending command into effects. `now` and `wall` are the same moment
    /// on the monotonic and the wall clock; they turn expiry instants into wall time for
    /// the store.
    #[must_use]
    pub fn drain(&mut self, now: Instant, wall: SystemTime) -> Effects<N> {
        self.drain_with(now, || wall)
    }

    /// Like [`drain`](Self::drain), but calls `wall` (e.g. `SystemTime::now`) only when a
    /// store operation needs the wall clock, and then once: this saves a clock read on the
    /// hot path of every request.
    #[must_use]
    pub fn drain_with(&mut self, now: Instant, wall: impl Fn() -> SystemTime) -> Effects<N> {
        let mut read = None;
        let mut fx = Effects::default();
        while let Some(command) = self.session.poll_command() {
            match command {
                Command::StartRefresh { id, refresh_token } => {
                    fx.refreshes.push((id, refresh_token))
                }
                Command::Resume { waiter, attempt } => {
                    // A notifier that is gone belongs to a request that gave up.
                    if let Some(n) = self.parked.remove(&waiter) {
                        fx.wake.push((n, Ok(attempt)));
                    }
                }
                Command::Fail { waiter, error } => {
                    if let Some(n) = self.parked.remove(&waiter) {
                        fx.wake.push((n, Err(error)));
                    }
                }
                Command::Persist(stored) => {
                    let wall = *read.get_or_insert_with(&wall);
                    fx.store
                        .push(StoreOp::Save(SavedTokens::from_stored(&stored, now, wall)))
                }
                Command::Forget => fx.store.push(StoreOp::Clear),
                Command::Event(e) => fx.events.push(e),
            }
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessToken, Config, Origin, RefreshToken, TokenSet};
    use std::time::Duration;

    #[test]
    fn sorts_commands_and_skips_requests_that_gave_up() {
        let mut hub: Hub<&'static str> = Hub::new(Session::new(Config::new(
            Origin::parse("https://api.test").unwrap(),
        )));
        let (t0, wall) = (Instant::now(), SystemTime::now());
        hub.session_mut().login(
            t0,
            TokenSet::new(AccessToken::new("a").unwrap())
                .with_refresh_token(RefreshToken::new("r").unwrap())
                .with_expires_in(Duration::from_secs(100)),
        );
        let fx = hub.drain(t0, wall);
        assert!(matches!(&fx.store[..], [StoreOp::Save(_)]));
        let uri: Uri = "https://api.test/x".parse().unwrap();
        let Next::Send(a) = hub.begin(t0, &uri) else {
            panic!()
        };
        let Next::Wait(w1) = hub.respond(t0, &a, StatusCode::UNAUTHORIZED, &HeaderMap::new(), true)
        else {
            panic!()
        };
        hub.register(w1, "first");
        let Next::Wait(w2) = hub.begin(t0, &uri) else {
            panic!()
        };
        hub.register(w2, "second");
        let mut parked: Vec<_> = hub.notifiers().copied().collect();
        parked.sort_unstable();
        assert_eq!(parked, ["first", "second"]);
        hub.cancel(w2);
        assert_eq!(hub.notifiers().collect::<Vec<_>>(), [&"first"]);
        // A non-replayable request learns of the 401 but is not parked.
        assert!(matches!(
            hub.respond(t0, &a, StatusCode::UNAUTHORIZED, &HeaderMap::new(), false),
            Next::Deliver
        ));
        let fx = hub.drain(t0, wall);
        let [(id, _)] = fx.refreshes[..] else {
            panic!("{fx:?}")
        };
        hub.refresh_done(
            t0,
            id,
            RefreshOutcome::Success(TokenSet::new(AccessToken::new("b").unwrap())),
        );
        let fx = hub.drain(t0, wall);
        assert_eq!(fx.wake.len(), 1);
        assert_eq!(fx.wake[0].0, "first");
        assert_eq!(fx.events.len(), 1);
        assert_eq!(hub.parked(), 0);
        assert_eq!(hub.session().waiting(), 0);
    }

    #[test]
    fn store_ops_apply_and_restore_round_trips() {
        use crate::{MemoryStore, Phase};
        let config = || Config::new(Origin::parse("https://api.test").unwrap());
        let mut hub: Hub<()> = Hub::new(Session::new(config()));
        let (t0, wall) = (Instant::now(), SystemTime::now());
        hub.session_mut().login(
            t0,
            TokenSet::new(AccessToken::new("a").unwrap())
                .with_refresh_token(RefreshToken::new("r").unwrap())
                .with_expires_in(Duration::from_secs(100)),
        );
        let store = MemoryStore::new();
        for op in hub.drain(t0, wall).store {
            op.apply(&store).unwrap();
        }
        let saved = store.load().unwrap().expect("saved");
        // A new process, 40 s later: the token has 60 s left and is used at once.
        let mut next: Hub<()> = Hub::new(Session::new(config()));
        let (t1, wall1) = (Instant::now(), wall + Duration::from_secs(40));
        next.restore(t1, wall1, &saved);
        assert_eq!(next.session().phase(), Phase::Valid);
        let expires = next.session().snapshot().expires_at.unwrap();
        assert_eq!(expires.duration_since(t1), Duration::from_secs(60));
        // 400 s later it has expired: the restore itself asks for a refresh.
        let mut late: Hub<()> = Hub::new(Session::new(config()));
        late.restore(t1, wall + Duration::from_secs(400), &saved);
        assert!(!late.drain(t1, wall).refreshes.is_empty());
        StoreOp::Clear.apply(&store).unwrap();
        assert!(store.load().unwrap().is_none());
        // The lazy drain reads the wall clock only for a store operation, and once.
        let reads = std::cell::Cell::new(0);
        let counted = || {
            reads.set(reads.get() + 1);
            wall
        };
        assert!(next.drain_with(t1, counted).store.len() == 1);
        assert_eq!(reads.get(), 1);
        let uri: Uri = "https://api.test/x".parse().unwrap();
        assert!(matches!(next.begin(t1, &uri), Next::Send(_)));
        assert!(next.drain_with(t1, counted).is_empty());
        assert_eq!(reads.get(), 1);
        assert_ne!(random_seed(), random_seed());
    }
}
