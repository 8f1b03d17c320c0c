//! A Redis token store for reauth: processes on any number of machines share one login
//! and refresh it once per expiry.
//!
//! [`RedisStore`] implements the session record's primitives ([`TokenStore`]: read,
//! compare-and-swap at a version, the refresh lease) on Redis through redis-rs
//! (re-exported as [`redis`]). Every decision stays in the session: when to lease, what
//! to adopt, what to write. Replicas that share a store and a session name refresh once
//! between them: one holds the lease and refreshes, the others wait, re-read and adopt
//! the new tokens; a logout anywhere is a tombstone everyone sees.
//!
//! Both kinds of adapter are served by redis-rs: the blocking one (ureq) calls the store
//! on one connection of its own; with the `tokio` feature (on by default) the async ones
//! (reqwest, tower) await the same commands ([`AsyncTokenStore`](reauth_core::AsyncTokenStore),
//! offered through [`TokenStore::as_async`]) on redis-rs's `ConnectionManager`, which
//! opens its connection on first use and reconnects after a failure, every answer bounded
//! by the store's timeouts. The start-up read is always a blocking call.
//!
//! ```no_run
//! use reauth_redis::{redis, RedisStore};
//!
//! let store = RedisStore::builder(redis::Client::open("redis://127.0.0.1:6379/")?, "crm")
//!     .build();
//! // `reauth::reqwest::Client::builder(http, config).oauth2(grant).store(store).build()?`
//! # Ok::<(), redis::RedisError>(())
//! ```
//!
//! ## The record
//!
//! The record is a hash under `<prefix><session>:record`:
//!
//! | field | value |
//! |---|---|
//! | `format` | `1`, the layout |
//! | `lineage` | 32 lowercase hex digits |
//! | `version` | the record's version, decimal |
//! | `access_token`, `refresh_token`, `scope` | the tokens' text (absent when there is none) |
//! | `expires_at` | the access token's expiry, UNIX milliseconds (absent if unknown) |
//! | `logged_out` | a tombstone's reason; then no token field is present |
//! | `saved_at` | when it was written, UNIX milliseconds |
//!
//! A hash, not one serialized value: the compare-and-swap script compares `lineage` and
//! `version` with two `HGET`s and needs no JSON inside Redis, and an operator reads a
//! record with `HGETALL` and clears one with `DEL`. An unknown field or value is refused
//! ([`RedisStoreError::Corrupt`]); a later layout gets a higher `format`, which this build
//! reports ([`RedisStoreError::NewerFormat`]) and never overwrites. The lease is the
//! string `<prefix><session>:lease` holding its owner, with Redis's expiry as its time to
//! live.
//!
//! ## Change notifications
//!
//! The compare-and-swap script publishes every written record on `<prefix><session>:changed`.
//! Once an adapter asks ([`TokenStore::watch`]), a thread of the store listens on a
//! connection of its own and tells the session, which re-reads: a replica waiting for
//! another's refresh adopts the new tokens as soon as they are written, not at its next
//! poll, and a logout on one replica reaches the others without a request of theirs. The
//! adapters watch before their start-up read, and the first watch waits (up to the connect
//! timeout) for the subscription, so no write falls between the two. A lost notification
//! (the listener reconnecting) costs only time: after each later subscription the sessions
//! re-read once, and their own polling and next refresh still see every change.
//!
//! ## When Redis fails
//!
//! Every call is bounded by the connect and response timeouts and then fails with
//! [`RedisStoreError::Unavailable`]. The session reports it
//! ([`Event::StoreFailed`](reauth_core::Event::StoreFailed)), keeps serving requests with
//! the tokens it holds, and refreshes single-flight within its own process until Redis
//! answers again; nothing is logged out because Redis is away. A Redis restarted without
//! persistence has lost the record: the next refresh writes it anew.
//!
//! Redis away when a replica starts: [`RedisStoreBuilder::connect`] fails with a typed
//! error; [`RedisStoreBuilder::build`] lets the replica start without tokens, and it takes
//! up the fleet's login from the change notification once Redis is back.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
mod error;
mod scripts;
mod store;
#[cfg(feature = "tokio")]
mod tokio;
mod watch;

pub use error::RedisStoreError;
pub use store::{RedisStore, RedisStoreBuilder};

#[doc(no_inline)]
pub use ::redis;
#[doc(no_inline)]
pub use reauth_core::TokenStore;
