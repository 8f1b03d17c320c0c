//! # reauth-core
//!
//! The sans-IO heart of [reauth](https://docs.rs/reauth): a deterministic state machine
//! that keeps one set of OAuth2 tokens fresh for any number of concurrent requests, plus
//! the OAuth2 (RFC 6749) and RFC 6750 codecs as pure functions over [`http`] types.
//!
//! The machine does no I/O, spawns nothing, never sleeps and never reads a clock: every
//! input carries `now: Instant`, and everything the machine wants done comes out as a
//! [`Command`]. That makes it usable from any runtime (the `reqwest` and `ureq` adapters
//! are thin drivers of it) and makes its guarantees testable by arithmetic on time.
//!
//! ## The guarantees
//!
//! 1. At most one refresh is in flight, ever: any number of 401s for the current token
//!    cause exactly one refresh.
//! 2. A 401 for a request sent with an older token (a *stale 401*) starts no refresh; the
//!    request is replayed with the current credential.
//! 3. A request replays at most once: a 401 on the replay fails with
//!    [`Error::Unauthorized`] instead of looping.
//! 4. Every waiter is resolved exactly once (resumed or failed), including on logout,
//!    permanent failure, timeouts and cancellation. Every waiter has a deadline.
//! 5. After logout, no credential is issued until the next login.
//! 6. Transient refresh failures back off exponentially with full jitter (seeded, so
//!    tests are exact), honour `Retry-After`, and never log out; permanent ones
//!    (`invalid_grant`, …) log out, fail every waiter and forget the tokens.
//! 7. A refresh outcome that arrives after its timeout, or for an older refresh, is
//!    ignored.
//! 8. Proactive refresh: a background refresh starts in the stale window while requests
//!    keep flowing; within the leeway before expiry requests wait for it. The server's
//!    401 always wins over the local expiry.
//! 9. A rotated refresh token replaces the old one in one [`Command::Persist`], emitted
//!    before any waiter resumes; a response without one keeps the old one.
//!
//! Each rule has a named transcript test (`core/tests/rules.rs`), every (phase, input)
//! pair is in a transition table test, and a property test drives random schedules of
//! up to thousands of concurrent requests through the [`check`] module's invariant
//! checker, which the fuzz targets reuse.
//!
//! ## Phases
//!
//! ```text
//!            login                 stale window                     success
//!   Empty ------------> Valid ----------------> ValidRefreshing ----------------> Valid
//!                        |  ^                          |
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
//!   any phase -- logout, permanent failure, expiry without a refresh token --> LoggedOut
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
//! ## The caller's duties
//!
//! The machine is driven by one loop (an adapter, or your own):
//!
//! 1. Feed every input with the current time: [`Session::begin_request`],
//!    [`Session::handle_response`], [`Session::handle_refresh`], [`Session::cancel`],
//!    [`Session::login`], [`Session::logout`].
//! 2. After every input, call [`Session::poll_command`] until it returns `None` and carry
//!    out each command: start the refresh (and report its outcome with the same
//!    [`RefreshId`]), resume or fail the named waiter, persist or forget the tokens,
//!    publish the event.
//! 3. Then call [`Session::poll_timeout`] and call [`Session::handle_timeout`] when that
//!    instant comes (earlier or repeated calls are harmless). Deadlines only move after
//!    an input, so ask again after each one.
//! 4. Send a request only with the credential the machine gave for it, and report its
//!    response with the same [`Attempt`].
//!
//! ## Drive loop
//!
//! A whole storm, driven by hand: 100 requests get 401, one refresh runs, all 100 replay.
//!
//! ```
//! use reauth_core::{
//!     AccessToken, Admission, Command, Config, Origin, RefreshOutcome, RefreshToken,
//!     Session, TokenSet, Verdict,
//! };
//! use http::{HeaderMap, StatusCode, Uri};
//! use std::time::{Duration, Instant};
//!
//! let mut session = Session::new(Config::new(Origin::parse("https://api.example.com")?));
//! let t0 = Instant::now();
//! session.login(t0, TokenSet::new(AccessToken::new("at-1")?)
//!     .with_refresh_token(RefreshToken::new("rt-1")?)
//!     .with_expires_in(Duration::from_secs(3600)));
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
//! let mut waiting = 0;
//! for attempt in &sent {
//!     match session.handle_response(t0, attempt, StatusCode::UNAUTHORIZED, &HeaderMap::new()) {
//!         Verdict::Wait(_) => waiting += 1,
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! assert_eq!(waiting, 100);
//!
//! // Drain the commands: exactly one refresh for 100 401s.
//! let mut refresh = None;
//! while let Some(command) = session.poll_command() {
//!     match command {
//!         Command::StartRefresh { id, refresh_token } => {
//!             assert!(refresh.replace(id).is_none(), "a second refresh");
//!             assert_eq!(refresh_token.unwrap().secret(), "rt-1");
//!         }
//!         Command::Persist(_) => {} // the login's tokens: save them
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//!
//! // The token endpoint answers (the adapter did the HTTP call).
//! let t1 = t0 + Duration::from_millis(120);
//! let tokens = TokenSet::new(AccessToken::new("at-2")?)
//!     .with_refresh_token(RefreshToken::new("rt-2")?)
//!     .with_expires_in(Duration::from_secs(3600));
//! session.handle_refresh(t1, refresh.unwrap(), RefreshOutcome::Success(tokens));
//!
//! let mut resumed = 0;
//! while let Some(command) = session.poll_command() {
//!     match command {
//!         Command::Persist(stored) => assert_eq!(stored.refresh_token().unwrap().secret(), "rt-2"),
//!         Command::Event(_) => {}
//!         Command::Resume { attempt, .. } => {
//!             assert!(attempt.is_replay()); // send again with attempt.header_value()
//!             resumed += 1;
//!         }
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! assert_eq!(resumed, 100);
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
pub use origin::{Origin, OriginError, Target};
pub use protocol::RefreshProtocol;
pub use record::{Entry, Expect, Lease, LeaseId, Lineage, Record, Swap, Tombstone};
pub use retry_after::parse_retry_after;
pub use state::{Phase, Snapshot};
pub use store::{MemoryStore, StoreError, StoreErrorKind, TokenStore};
pub use token::{
    AccessToken, InvalidToken, RefreshToken, SavedTokens, StoredTokens, TokenSet, MAX_LIFETIME,
};
