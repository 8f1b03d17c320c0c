//! reauth-core: the sans-IO token lifecycle machine.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod challenge;
pub mod check;
mod command;
mod config;
mod credential;
mod error;
mod ids;
mod jitter;
mod machine;
mod origin;
mod state;
mod timer;
mod token;
mod waiters;

pub use command::{Admission, Command, Event, RefreshOutcome, Verdict};
pub use config::{Backoff, Config, OnExhausted, RefreshTrigger, TriggerFn};
pub use credential::{Attempt, Credential};
pub use error::{Error, LogoutReason, RefreshError, RefreshErrorKind};
pub use ids::{Generation, RefreshId, WaiterId};
pub use machine::Session;
pub use origin::{Origin, OriginError};
pub use state::{Phase, Snapshot};
pub use token::{AccessToken, InvalidToken, RefreshToken, StoredTokens, TokenSet, MAX_LIFETIME};
