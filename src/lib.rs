#![doc = include_str!("../README.md")]
//!
//! ## Features of this crate
//!
//! This facade re-exports the sans-IO core ([`reauth_core`]) at the crate root (see
//! its documentation for the state diagram, the drive loop and the caller's duties) and,
//! behind features, the adapters and the file store:
//!
//! | feature | item | what |
//! |---|---|---|
//! | `reqwest` (default) | [`reqwest`](mod@crate::reqwest) | async adapter: tokio + reqwest, incl. a `reqwest_middleware` middleware |
//! | `ureq` (default) | [`ureq`](mod@crate::ureq) | blocking adapter: an agent wrapper over ureq 3, plus a ureq middleware |
//! | `file-store` (default) | [`FileStore`] | tokens in a file across restarts; processes sharing it refresh one at a time |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// One path per item: the core's items at the crate root, nowhere else.
pub use reauth_core::*;

#[cfg(feature = "file-store")]
mod file_store;
#[cfg(feature = "file-store")]
pub use file_store::{FileStore, FileStoreError};

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
