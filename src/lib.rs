//! `reauth` keeps HTTP clients authenticated.
//!
//! This facade re-exports [`reauth_core`], the sans-IO token lifecycle machine. The
//! async (`reqwest`) and blocking (`ureq`) adapters are selected with cargo features.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use reauth_core as core;
pub use reauth_core::*;
