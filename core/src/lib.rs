//! # reauth-core
//!
//! The sans-IO heart of [reauth](https://docs.rs/reauth): a deterministic state machine
//! that keeps one set of OAuth2 tokens fresh for any number of concurrent requests, plus
//! the OAuth2 (RFC 6749) and RFC 6750 codecs as pure functions over [`http`](https://docs.rs/http/1) types.
//!
//! The machine does no I/O, spawns nothing, never sleeps and never reads a clock: every
//! input carries `now: Instant`, and everything the machine wants done (a refresh call,
//! a store operation, waking a request) comes out as a [`Command`]. It also runs the
//! protocol that keeps one session record shared by many processes and machines (see
//! [the persistence protocol](#the-persistence-protocol)). That makes it usable from any runtime (the `reqwest` and `ureq` adapters
//! are thin drivers of it) and makes its guarantees testable by arithmetic on time.
//!
//! ## The guarantees
//!
//! 1. At most one refresh is in flight, overdue ones included: any number of 401s for
//!    the current token cause exactly one refresh, and sessions sharing a store (other
//!    processes, other machines) take one refresh lease, so they refresh one at a time.
//! 2. A 401 for a request sent with an older token (a *stale 401*) starts no refresh; the
//!    request is replayed with the current credential.
//! 3. A replay that gets 401 fails with [`Error::Unauthorized`] if it was sent with the
//!    current token (no loop); one sent with an older token is tried again with the
//!    newer one (each try needs a newer generation, so it ends). Refreshed tokens that
//!    keep being refused hold refreshing back on the backoff schedule.
//! 4. Every waiter is resolved exactly once (resumed or failed), including on logout,
//!    permanent failure, timeouts and cancellation. Every waiter has a deadline.
//! 5. After logout, no credential is issued until the next login; the logout is written
//!    to the store as a tombstone, so it holds for every session sharing it and no older
//!    session can bring the tokens back.
//! 6. Transient refresh failures back off exponentially with full jitter (seeded, so
//!    tests are exact), honour `Retry-After`, and never log out; permanent ones
//!    (`invalid_grant`, …) log out and fail every waiter. A rejected *client*
//!    (`invalid_client`, `unauthorized_client`, a redirecting token endpoint) is the app's
//!    configuration, not the user's session: the tokens are kept, waiters fail with the
//!    typed configuration error, and refreshing is held back for the backoff cap.
//! 7. A refresh whose answer has not arrived is *in doubt*: it is never superseded by
//!    another refresh presenting the same refresh token, however late it is, until the
//!    driver reports its outcome (at the latest at its deadline). Its late success is
//!    installed; an outcome for an older refresh, or one after a login or logout, is
//!    ignored.
//! 8. Proactive refresh: a background refresh starts in the stale window while requests
//!    keep flowing; within the leeway before expiry requests wait for it. An idle
//!    session does not rotate tokens on a timer ([`Config::keep_warm`] opts in). The
//!    server's 401 always wins over the local expiry.
//! 9. A rotated refresh token replaces the old one in one compare-and-swap of the store's
//!    record, done before any waiter resumes; a response without one keeps the old one.
//!    Tokens of another login (another [`Lineage`]) are never adopted.
//!
//! Each rule has a named transcript test (`core/tests/rules.rs`), every (phase, input)
//! pair is in a transition table test, a property test drives random schedules of up to
//! thousands of concurrent requests through the `check` module's invariant checker
//! (feature `testing`), which the fuzz targets reuse, and a deterministic simulator runs
//! several sessions against one store and one authorization server.
//!
//! ## Phases
//!
//! ```text
//!            login                 stale window                     success
//!   Empty ------------> Valid ----------------> ValidRefreshing ----------------> Valid
//!                        |  ^    (requests flow)       |
//!   401 for the current  |  | success                  | 401 or expiry: joins the
//!   token, or expiry     v  |                          | refresh already in flight
//!                     Refreshing <---------------------+
//!                        |  ^
//!      transient failure |  | backoff timer fires: next try
//!                        v  |
//!                      Backoff
//!                        |
//!     attempts exhausted v
//!                      Expired ---- next request ----> Refreshing (fresh attempts)
//!
//!   any phase -- logout, permanent failure, expiry without a refresh token,
//!                a tombstone or another login in the store --> LoggedOut
//!   any phase -- login --> Valid (queued requests resume with the new token)
//! ```
//!
//! | phase | a new request |
//! |---|---|
//! | [`Phase::Empty`] | rejected `NotAuthenticated` (or acquires, for grants without a refresh token) |
//! | [`Phase::Valid`] | sent at once |
//! | [`Phase::ValidRefreshing`] | sent at once with the current token |
//! | [`Phase::Refreshing`] | queued as a waiter |
//! | [`Phase::Backoff`] | queued as a waiter |
//! | [`Phase::Expired`] | starts a new refresh, queued |
//! | [`Phase::LoggedOut`] | rejected `LoggedOut` |
//!
//! ## The persistence protocol
//!
//! A store holds one [`Record`]: the [`Lineage`] of a login (made at login, kept through
//! every rotation), a version that only grows, and the tokens or a [`Tombstone`]. Each
//! refresh (in `Refreshing` and `ValidRefreshing`) is an *episode* of store commands and
//! one refresh call, all issued by the session and answered through
//! [`Session::handle_store`] and [`Session::handle_refresh`]:
//!
//! ```text
//!   Lease(lineage, ttl) --busy--> LeaseRetry timer --> Read --> newer tokens? adopt : Lease
//!     | granted
//!     v
//!   Read ----- newer tokens of this lineage ----------------> adopt, Release, Valid
//!     |  ----- tombstone of this lineage -------------------> LoggedOut (Elsewhere)
//!     |  ----- another lineage -----------------------------> LoggedOut (Superseded)
//!     | the version this session holds (or nothing)
//!     v
//!   StartRefresh (in doubt until answered, at the latest at its deadline)
//!     | success                              | permanent failure     | transient
//!     v                                      v                       v
//!   Write(expect: version read) ---------> Write(tombstone)        Release, Backoff
//!     | written: install, resume, Release    (a logout sticks: retried over newer
//!     | conflict: the newer record wins       versions of its lineage)
//!     v   (adopt it, or tombstone / another lineage as above)
//!   Valid
//! ```
//!
//! - **The lease** lives [`Config::refresh_deadline`] + [`Config::lease_margin`]: a holder that crashes frees it when
//!   its time is up; one that overruns it cannot overwrite newer tokens, because every
//!   write is a compare-and-swap at the version it read (the version is the fence).
//! - **login** makes a new lineage and writes it over whatever the store holds
//!   ([`Expect::Any`]); **logout** writes a tombstone; [`Session::restore`] takes up a
//!   record at start-up without writing it back.
//! - **A store that fails** is reported ([`Event::StoreFailed`]); the episode goes on
//!   without it (single-flight within this process only) and nothing is logged out
//!   because the store is away.
//! - **One store operation at a time**: the next is issued when the last is answered, so
//!   a write always expects the version the previous write made.
//!
//! ## The caller's duties
//!
//! The machine is driven by one loop (an adapter, or your own):
//!
//! 1. Feed every input with the current time: [`Session::begin_request`],
//!    [`Session::handle_response`], [`Session::handle_refresh`],
//!    [`Session::handle_store`], [`Session::cancel`], [`Session::login`],
//!    [`Session::logout`], [`Session::restore`].
//! 2. After every input, call [`Session::poll_command`] until it returns `None` and carry
//!    out each command: start the refresh (and report its outcome with the same
//!    [`RefreshId`] by its deadline), carry out the store operation on your
//!    [`TokenStore`] (and report it with the same [`StoreOpId`]), resume or fail the
//!    named waiter, publish the event.
//! 3. Then call [`Session::poll_timeout`] and call [`Session::handle_timeout`] when that
//!    instant comes (earlier or repeated calls are harmless). Deadlines only move after
//!    an input, so ask again after each one.
//! 4. Send a request only with the credential the machine gave for it, and report its
//!    response with the same [`Attempt`].
//! 5. A request that fails at the network level (no response: refused, reset, timed
//!    out) says nothing about the token, so there is no input for it: drop its
//!    [`Attempt`] and retry or fail as you see fit. The session keeps no record of the
//!    attempts it hands out, so nothing waits for a report: no waiter, refresh or
//!    deadline (`core/tests/unanswered.rs` holds such a session against one whose
//!    requests all got `200`). To retry, call [`Session::begin_request`] again; the retry
//!    carries the current credential. The same holds for the attempt of a replay
//!    ([`Verdict::Replay`]) and of a resumed waiter ([`Command::Resume`]). A *refresh*
//!    call that fails at the network level is another matter: the session waits for it,
//!    so report it to [`Session::handle_refresh`] as
//!    `RefreshError::transient(RefreshErrorKind::Network)` (see [`RefreshError`]).
//!
//! ## Drive loop
//!
//! A whole storm, driven by hand: 100 requests get 401, one refresh runs, all 100 replay.
//! The store is a [`MemoryStore`], answered at once.
//!
//! ```
//! use reauth_core::{
//!     AccessToken, Admission, Command, Config, MemoryStore, Origin, RefreshOutcome,
//!     RefreshToken, Session, StoreCommand, StoreReply, TokenSet, TokenStore, Verdict,
//! };
//! use http::{HeaderMap, StatusCode, Uri};
//! use std::time::{Duration, Instant, SystemTime};
//!
//! /// Carries out every command; returns the refreshes to start and the waiters resumed.
//! fn drain(s: &mut Session, store: &MemoryStore, now: Instant) -> (Vec<Command>, usize) {
//!     let (mut refreshes, mut resumed) = (Vec::new(), 0);
//!     while let Some(command) = s.poll_command() {
//!         match command {
//!             Command::Store { id, op } => {
//!                 let outcome = match op {
//!                     StoreCommand::Lease { lineage, ttl } => {
//!                         store.lease(lineage, ttl).map(StoreReply::Lease)
//!                     }
//!                     StoreCommand::Read => store.read().map(StoreReply::Read),
//!                     StoreCommand::Write { expect, record } => store
//!                         .compare_and_swap(expect, &record.saved(now, SystemTime::now()))
//!                         .map(StoreReply::Swap),
//!                     StoreCommand::Release { lineage, lease } => {
//!                         store.release(lineage, lease).map(|()| StoreReply::Released)
//!                     }
//!                     other => unreachable!("{other:?}"),
//!                 };
//!                 s.handle_store(now, SystemTime::now(), id, outcome);
//!             }
//!             c @ Command::StartRefresh { .. } => refreshes.push(c),
//!             Command::Resume { attempt, .. } => {
//!                 assert!(attempt.is_replay()); // send again with attempt.header_value()
//!                 resumed += 1;
//!             }
//!             _ => {} // events
//!         }
//!     }
//!     (refreshes, resumed)
//! }
//!
//! let (mut session, store) = (
//!     Session::new(Config::new(Origin::parse("https://api.example.com")?)),
//!     MemoryStore::new(),
//! );
//! let t0 = Instant::now();
//! session.login(t0, TokenSet::new(AccessToken::new("at-1")?)
//!     .with_refresh_token(RefreshToken::new("rt-1")?)
//!     .with_expires_in(Duration::from_secs(3600)));
//! drain(&mut session, &store, t0); // the login's record is written
//!
//! let uri: Uri = "https://api.example.com/items/1".parse()?;
//! let mut sent = Vec::new();
//! for _ in 0..100 {
//!     match session.begin_request(t0, &uri) {
//!         Admission::Send(attempt) => sent.push(attempt), // attach attempt.header_value()
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! // The server answers every request 401: the token was revoked early.
//! for attempt in &sent {
//!     let verdict = session.handle_response(
//!         t0, attempt, StatusCode::UNAUTHORIZED, &HeaderMap::new(), true);
//!     assert!(matches!(verdict, Verdict::Wait(_)));
//! }
//!
//! // Lease, re-read, then exactly one refresh for 100 401s.
//! let (refreshes, _) = drain(&mut session, &store, t0);
//! let [Command::StartRefresh { id, refresh_token, .. }] = &refreshes[..] else {
//!     panic!("{refreshes:?}")
//! };
//! assert_eq!(refresh_token.as_ref().unwrap().secret(), "rt-1");
//!
//! // The token endpoint answers (the adapter did the HTTP call).
//! let t1 = t0 + Duration::from_millis(120);
//! let tokens = TokenSet::new(AccessToken::new("at-2")?)
//!     .with_refresh_token(RefreshToken::new("rt-2")?)
//!     .with_expires_in(Duration::from_secs(3600));
//! session.handle_refresh(t1, *id, RefreshOutcome::Success(tokens));
//! // The rotated tokens are written first, then every waiter resumes.
//! let (_, resumed) = drain(&mut session, &store, t1);
//! assert_eq!(resumed, 100);
//! let saved = store.read()?.unwrap();
//! assert_eq!(saved.tokens().unwrap().refresh_token.as_ref().unwrap().secret(), "rt-2");
//! // Next deadline: the background refresh before the new token expires.
//! assert!(session.poll_timeout().is_some_and(|at| at > t1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Secrets
//!
//! Access and refresh tokens are never shown by `Debug` or `Display` (they print
//! `<redacted N bytes>`), never appear in errors, and the prepared header value is marked
//! sensitive. A token is attached only to requests whose origin is on the allow-list
//! ([`Config::allowed_origins`], by default only the API origin): [`Session::begin_request`]
//! answers [`Admission::Anonymous`] for any other.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod challenge;
#[cfg(feature = "testing")]
pub mod check;
mod command;
mod config;
mod credential;
mod error;
mod ids;
mod jitter;
mod json;
mod machine;
pub mod oauth2;
mod origin;
pub mod protocol;
mod record;
mod redact;
mod retry_after;
#[cfg(feature = "testing")]
pub mod sim;
mod state;
mod store;
mod timer;
mod token;
mod waiters;

pub use command::{
    Admission, Command, Event, RefreshOutcome, StoreCommand, StoreOutcome, StoreReply, Verdict,
};
pub use config::{Backoff, Config, OnExhausted, RefreshTrigger, TriggerFn};
pub use credential::{Attempt, Credential};
pub use error::{Error, LogoutReason, RefreshError, RefreshErrorKind};
pub use ids::{Generation, RefreshId, StoreOpId, WaiterId};
pub use machine::Session;
pub use origin::{NearMiss, Origin, OriginError, Target};
pub use protocol::RefreshProtocol;
pub use record::{Entry, Expect, Lease, LeaseId, Lineage, Record, Swap, Tombstone};
pub use retry_after::parse_retry_after;
pub use state::{Phase, Snapshot};
pub use store::{
    AsyncTokenStore, Changed, MemoryStore, StoreError, StoreErrorKind, StoreFuture, TokenStore,
};
pub use token::{
    AccessToken, InvalidToken, RefreshToken, SavedTokens, StoredTokens, TokenSet, MAX_LIFETIME,
};
