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
//!
//! Refreshes go through [`begin_refresh`] and [`finish_refresh`] (or [`run_refresh`] in
//! one call, for a blocking adapter) around their I/O, so that processes sharing a token
//! store refresh one at a time; report the [`RefreshDone`] with [`Hub::refresh_finished`].
//! A blocking adapter's whole refresh is:
//!
//! ```
//! # use reauth_core::driver::{run_refresh, Hub};
//! # use reauth_core::{RefreshId, RefreshOutcome, RefreshToken, TokenStore};
//! # use std::sync::Mutex;
//! # use std::time::{Duration, Instant, SystemTime};
//! # fn call_token_endpoint(_: Option<RefreshToken>) -> RefreshOutcome { unimplemented!() }
//! fn refresh(hub: &Mutex<Hub<()>>, store: &dyn TokenStore, id: RefreshId,
//!            token: Option<RefreshToken>, timeout: Duration) {
//!     // Outside the hub lock: may wait for another process's refresh.
//!     let done = run_refresh(store, token, timeout, SystemTime::now, call_token_endpoint);
//!     let mut hub = hub.lock().unwrap();
//!     hub.refresh_finished(Instant::now(), id, done);
//!     // … then drain and carry out the effects as usual.
//! }
//! ```
//!
//! ## Cross-process refresh
//!
//! The session guarantees one refresh at a time *within* a process. Processes that share
//! one store (a token file) also need it *across* processes: with refresh-token rotation,
//! two of them presenting the same refresh token get the second one refused as a replay,
//! and the server revokes the whole token family (RFC 9700 section 4.14.2). So an adapter
//! wraps the I/O of every refresh in two calls:
//!
//! 1. [`begin_refresh`] takes the store's refresh lock (waiting at most a deadline) and
//!    re-reads the store. If another process already rotated the tokens, the refresh is
//!    answered from the store ([`RefreshStart::Done`], no HTTP call: the stale check,
//!    across processes). Otherwise it says which refresh token to present
//!    ([`RefreshStart::Proceed`]).
//! 2. [`finish_refresh`] saves the outcome (the rotated refresh token merged in, the
//!    expiry made absolute) *before* releasing the lock, so that the next process to take
//!    the lock reads the new tokens, never the rotated-away ones.
//!
//! The [`RefreshDone`] goes to [`Hub::refresh_finished`], which skips the session's own store write for it (it was already done under the lock).
//!
//! A store without a lock ([`TokenStore::lock_refresh`] answers `Ok(None)`, e.g.
//! [`MemoryStore`](crate::MemoryStore)) is not read or written here at all: the refresh
//! proceeds with the session's token and the session's own `Persist` saves the result, in
//! order, exactly as without this module.
//!
//! ### Rules
//!
//! - **Adopt**: under the lock, the store holds a refresh token other than the one the
//!   session asked to present → another process rotated it. If the stored access token
//!   has not expired, it is the outcome (no HTTP call); if it has, the *stored* refresh
//!   token is presented instead of the session's stale one.
//! - **Empty or unreadable store** under the lock → refresh with the session's token and
//!   save the result (an unreadable file was already set aside by the store).
//! - **Changed while refreshing**: before saving, the store is read again. If it no
//!   longer holds what `begin_refresh` saw, somebody wrote it without the lock (a login,
//!   a logout): their write wins. New tokens there are adopted; an emptied store means
//!   "logged out elsewhere" and the refresh fails permanently.
//! - **`invalid_grant` and other permanent failures**: under the lock the store was
//!   re-read before presenting the token, so the refusal is about the newest token and
//!   is final, unless the re-read before clearing shows new tokens written meanwhile
//!   (adopted instead). Otherwise the store is cleared while the lock is still held, so
//!   no other process presents the dead token again.
//! - **Lock timeout** → a transient failure ([`RefreshErrorKind::Store`](crate::RefreshErrorKind::Store)): the session
//!   backs off and tries again, usually adopting the other process's tokens then. Any
//!   other lock failure (e.g. the lock file cannot be created) → refresh without the lock,
//!   reporting the error, so a read-only folder does not stop a single process.

mod refresh;

pub use refresh::{
    begin_refresh, finish_refresh, run_refresh, RefreshDone, RefreshGuard, RefreshStart,
};

use crate::command::{Admission, Command, Event, RefreshOutcome, Verdict};
use crate::credential::Attempt;
use crate::error::Error;
use crate::ids::{RefreshId, WaiterId};
use crate::machine::Session;
use crate::origin::Target;
use crate::store::{SavedTokens, StoreError, TokenStore};
use crate::token::{RefreshToken, TokenSet};
use http::{HeaderMap, StatusCode};
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
    /// The store already holds what the next `Persist` or `Forget` would write: skip it.
    /// Set by an input, consumed (or dropped) by the next drain.
    store_done: bool,
}

impl<N> Hub<N> {
    /// Wraps a session.
    pub fn new(session: Session) -> Self {
        Self {
            session,
            parked: HashMap::new(),
            store_done: false,
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

    /// Admits a new request to `uri`.
    pub fn begin<T: Target + ?Sized>(&mut self, now: Instant, uri: &T) -> Next {
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

    /// Refresh `id` finished, with an outcome the store has not seen (the session's
    /// `Persist` or `Forget` follows). Prefer [`refresh_finished`](Self::refresh_finished).
    pub fn refresh_done(&mut self, now: Instant, id: RefreshId, outcome: RefreshOutcome) {
        self.session.handle_refresh(now, id, outcome);
    }

    /// Refresh `id` finished through [`finish_refresh`] (or was answered by
    /// [`begin_refresh`]). If the store already holds the outcome, the session's store
    /// command for it is skipped: writing it again after the refresh lock is released
    /// could overwrite a newer rotation by another process.
    pub fn refresh_finished(&mut self, now: Instant, id: RefreshId, done: RefreshDone) {
        let (outcome, store_done) = done.into_parts();
        self.store_done = store_done;
        self.session.handle_refresh(now, id, outcome);
    }

    /// Logs in with tokens just loaded from the store, without writing them back: the
    /// store may have moved on (another process refreshed) since they were read.
    pub fn restore(&mut self, now: Instant, tokens: TokenSet) {
        self.store_done = true;
        self.session.login(now, tokens);
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

    /// True if [`drain`](Self::drain) has anything to do; when false, skipping it changes
    /// nothing (the fast path of every request).
    #[must_use]
    pub fn needs_drain(&self) -> bool {
        self.store_done || self.session.has_commands()
    }

    /// Drains every pending command into effects. `now` and `wall()` are the same moment
    /// on the monotonic and the wall clock; they turn expiry instants into wall time for
    /// the store. `wall` is called only if tokens are to be saved.
    #[must_use]
    pub fn drain(&mut self, now: Instant, wall: impl Fn() -> SystemTime) -> Effects<N> {
        let mut fx = Effects::default();
        let mut wall_now = None;
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
                Command::Persist(_) | Command::Forget if self.store_done => {
                    self.store_done = false;
                }
                Command::Persist(stored) => {
                    let wall = *wall_now.get_or_insert_with(&wall);
                    fx.store
                        .push(StoreOp::Save(SavedTokens::from_stored(&stored, now, wall)));
                }
                Command::Forget => fx.store.push(StoreOp::Clear),
                Command::Event(e) => fx.events.push(e),
            }
        }
        self.store_done = false;
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
        assert!(hub.needs_drain());
        let fx = hub.drain(t0, || wall);
        assert!(matches!(&fx.store[..], [StoreOp::Save(_)]));
        assert!(!hub.needs_drain());
        let uri: http::Uri = "https://api.test/x".parse().unwrap();
        let Next::Send(a) = hub.begin(t0, &uri) else {
            panic!()
        };
        // The fast path leaves nothing to drain: adapters skip the call.
        assert!(!hub.needs_drain());
        assert!(hub.drain(t0, || wall).is_empty());
        let Next::Wait(w1) = hub.respond(t0, &a, StatusCode::UNAUTHORIZED, &HeaderMap::new(), true)
        else {
            panic!()
        };
        assert!(
            hub.needs_drain(),
            "a 401 that starts a refresh leaves a command"
        );
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
        let fx = hub.drain(t0, || wall);
        let [(id, _)] = fx.refreshes[..] else {
            panic!("{fx:?}")
        };
        hub.refresh_done(
            t0,
            id,
            RefreshOutcome::Success(TokenSet::new(AccessToken::new("b").unwrap())),
        );
        let fx = hub.drain(t0, || wall);
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
        for op in hub.drain(t0, || wall).store {
            op.apply(&store).unwrap();
        }
        let saved = store.load().unwrap().expect("saved");
        // A new process, 40 s later: the token has 60 s left and is used at once.
        let mut next: Hub<()> = Hub::new(Session::new(config()));
        let (t1, wall1) = (Instant::now(), wall + Duration::from_secs(40));
        next.restore(t1, saved.to_token_set(wall1));
        // The restore's note for the next drain (skip the write-back) counts as work.
        assert!(next.needs_drain());
        assert_eq!(next.session().phase(), Phase::Valid);
        let expires = next.session().snapshot().expires_at.unwrap();
        assert_eq!(expires.duration_since(t1), Duration::from_secs(60));
        // 400 s later it has expired: the restore itself asks for a refresh.
        let mut late: Hub<()> = Hub::new(Session::new(config()));
        late.restore(t1, saved.to_token_set(wall + Duration::from_secs(400)));
        assert!(!late.drain(t1, || wall).refreshes.is_empty());
        StoreOp::Clear.apply(&store).unwrap();
        assert!(store.load().unwrap().is_none());
        // The lazy drain reads the wall clock only for a store operation, and once.
        let reads = std::cell::Cell::new(0);
        let counted = || {
            reads.set(reads.get() + 1);
            wall
        };
        // Restored tokens are not written back: the store already holds them.
        assert!(next.drain(t1, counted).store.is_empty());
        assert_eq!(reads.get(), 0);
        next.session_mut().login(t1, saved.to_token_set(wall1));
        assert!(next.drain(t1, counted).store.len() == 1);
        assert_eq!(reads.get(), 1);
        let uri: http::Uri = "https://api.test/x".parse().unwrap();
        assert!(matches!(next.begin(t1, &uri), Next::Send(_)));
        assert!(next.drain(t1, counted).is_empty());
        assert_eq!(reads.get(), 1);
        assert_ne!(random_seed(), random_seed());
    }
}
