//! # reauth
//!
//! `reauth` keeps HTTP clients authenticated: it attaches a bearer token to outgoing
//! requests, refreshes it before it expires or when the server answers 401, makes sure that
//! any number of concurrent failures cause **exactly one** refresh, queues the waiting
//! requests and replays them with the new token, and logs the session out cleanly when the
//! refresh token itself is dead.
//!
//! This facade re-exports the sans-IO core ([`reauth_core`], also at the crate root) and,
//! behind features, the adapters:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `reqwest` (default) | [`reqwest`](mod@crate::reqwest) | async adapter: tokio + reqwest, incl. a `reqwest_middleware` middleware |
//! | `ureq` (default) | [`ureq`](mod@crate::ureq) | blocking adapter: an agent wrapper over ureq 3, plus a ureq middleware |
//! | `file-store` (default) | [`FileStore`] | tokens in a file across restarts; processes sharing it refresh one at a time |
//!
//! See the [core's documentation](reauth_core) for the state machine, its guarantees and
//! how to drive it from your own runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use reauth_core as core;
pub use reauth_core::*;

#[cfg(feature = "file-store")]
mod file_store;
#[cfg(feature = "file-store")]
pub use file_store::{FileLock, FileStore, FileStoreError};

/// The async adapter over reqwest and tokio ([`reauth_reqwest`]).
#[cfg(feature = "reqwest")]
pub mod reqwest {
    pub use reauth_reqwest::*;
}

/// The blocking adapter over ureq 3 ([`reauth_ureq`]).
#[cfg(feature = "ureq")]
pub mod ureq {
    pub use reauth_ureq::*;
}

/// The README's code blocks, compiled as doctests so the quickstarts stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
