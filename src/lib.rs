#![doc = include_str!("../README.md")]
//!
//! ## Features of this crate
//!
//! This facade re-exports the sans-IO core at the crate root ([`Session`] and its
//! inputs; the crate `reauth-core` holds the full drive loop and the caller's duties) and,
//! behind features, the adapters and the file store:
//!
//! | feature | item | what |
//! |---|---|---|
//! | `reqwest` (default) | [`reqwest`](mod@crate::reqwest) | async adapter over reqwest 0.13 (re-exported) on tokio, incl. a `reqwest_middleware` 0.5 middleware |
//! | `ureq` (default) | [`ureq`](mod@crate::ureq) | blocking adapter: an agent wrapper over ureq 3.1 (re-exported), plus a ureq middleware |
//! | `file-store` (default) | [`FileStore`] | tokens in a file across restarts; processes sharing it refresh one at a time |
//! | `redis` | `RedisStore` | the session record in Redis (the `reauth-redis` crate; redis-rs re-exported as `reauth::redis`): replicas on many machines refresh once per expiry; Redis away, each process goes on with its tokens |
//!
//! ## Many machines
//!
//! Replicas of a service that share one login (one OAuth connection to a third-party
//! API, a worker pool) share its session record through Redis with the `redis` feature:
//! give every replica `RedisStore::builder(reauth::redis::Client::open(url)?, "crm")
//! .build()` as its store. One replica takes the refresh lease and refreshes, the others
//! wait, re-read and adopt the rotated tokens: one token-endpoint call per expiry for
//! the whole fleet (`cargo run --example fleet`). Redis away, requests go on with the
//! tokens in memory and each process refreshes on its own (`Event::StoreFailed` says
//! so); nothing is logged out because Redis is away.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// One path per item: the core's items at the crate root, nowhere else.
pub use reauth_core::*;
// The client crates by their own names, listed (not inlined): their manuals are theirs.
#[doc(no_inline)]
pub use ::http;

#[cfg(feature = "file-store")]
mod file_store;
#[cfg(feature = "file-store")]
pub use file_store::{FileStore, FileStoreError};

#[cfg(feature = "redis")]
#[doc(no_inline)]
pub use reauth_redis::redis;
#[cfg(feature = "redis")]
pub use reauth_redis::{RedisStore, RedisStoreBuilder, RedisStoreError};

#[cfg(feature = "reqwest")]
pub mod reqwest {
    #![doc = include_str!("docs/reqwest.md")]
    #[doc(no_inline)]
    pub use ::reqwest;
    #[doc(no_inline)]
    pub use ::reqwest_middleware;
    pub use reauth_reqwest::*;
}

#[cfg(feature = "ureq")]
pub mod ureq {
    #![doc = include_str!("docs/ureq.md")]
    #[doc(no_inline)]
    pub use ::ureq;
    pub use reauth_ureq::*;
}
