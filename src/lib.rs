#![doc = include_str!("../README.md")]
//!
//! ## Features of this crate
//!
//! This facade re-exports the sans-IO core at the crate root ([`Session`] and its
//! inputs; the crate `reauth-core` holds the full drive loop and the caller's duties) and,
//! behind features, the adapters and the stores:
//!
//! | feature | item | what |
//! |---|---|---|
//! | `reqwest` (default) | [`reqwest`](mod@crate::reqwest) | async adapter over reqwest 0.13 (re-exported) on tokio, incl. a `reqwest_middleware` 0.5 middleware |
//! | `ureq` (default) | [`ureq`](mod@crate::ureq) | blocking adapter: an agent wrapper over ureq 3.1 (re-exported), plus a ureq middleware |
//! | `tower` | `reauth::tower` | tower layer for any tower HTTP service: hyper-util's client, a tonic `Channel` (with `tonic`: gRPC `UNAUTHENTICATED` as a 401, request bodies replayed up to a cap) |
//! | `file-store` (default) | [`FileStore`] | tokens in a file across restarts; processes sharing it refresh one at a time |
//! | `keyring` | `KeyringStore` | tokens in the platform's credential store (Keychain, Credential Manager, keyutils, Android); `keyring_core` re-exported |
//! | `redis` | `RedisStore` | the session record in Redis (the `reauth-redis` crate; redis-rs re-exported as `reauth::redis`): replicas on many machines refresh once per expiry; Redis away, each process goes on with its tokens |
//!
//! ## Which store
//!
//! | store | pick it when | it cannot |
//! |---|---|---|
//! | [`MemoryStore`] (the default) | the process logs in each time it starts, or holds tokens it was handed | survive a restart |
//! | [`FileStore`] | a CLI, daemon or server that must stay logged in across restarts, several processes sharing one session | keep the tokens from anyone who can read the user's files (it is a `0600` JSON file) |
//! | `KeyringStore` | a desktop or mobile app that should keep refresh tokens in the platform's secure storage | share a session across processes without a lock file (give it one); hold records over 2560 bytes on Windows; outlive a reboot on Linux keyutils |
//! | `RedisStore` | replicas on many machines sharing one login | keep working as one fleet while Redis is away (each process then refreshes on its own, nobody is logged out) |
//! | your own [`TokenStore`] | another shared database | — (it implements compare-and-swap and the lease) |
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
#[cfg(any(feature = "file-store", feature = "keyring"))]
mod lock_file;
#[cfg(any(feature = "file-store", feature = "keyring"))]
mod token_format;
#[cfg(feature = "file-store")]
pub use file_store::{FileStore, FileStoreError};
#[cfg(feature = "keyring")]
mod keyring_store;
/// The keyring ecosystem's API that [`KeyringStore::with_store`] takes a store of, by its
/// own name.
#[cfg(feature = "keyring")]
#[doc(no_inline)]
pub use ::keyring_core;
#[cfg(feature = "keyring")]
pub use keyring_store::{KeyringStore, KeyringStoreError};

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

#[cfg(feature = "tower")]
pub mod tower {
    //! The tower adapter: an [`AuthLayer`] that keeps any tower HTTP service
    //! authenticated (hyper-util's client, a tonic `Channel`), with gRPC's
    //! `UNAUTHENTICATED` as a refresh trigger. The crate `reauth-tower`'s docs are the
    //! manual; `examples/hyper_client.rs` runs it against the embedded testkit.
    pub use reauth_tower::*;
}

#[cfg(feature = "ureq")]
pub mod ureq {
    #![doc = include_str!("docs/ureq.md")]
    #[doc(no_inline)]
    pub use ::ureq;
    pub use reauth_ureq::*;
}
