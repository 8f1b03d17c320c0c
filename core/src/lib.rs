//! reauth-core: the sans-IO token lifecycle machine (docs arrive with the machine).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod challenge;
mod command;
mod config;
mod credential;
mod error;
mod ids;
mod json;
pub mod oauth2;
mod origin;
pub mod protocol;
mod redact;
mod retry_after;
mod token;

pub use command::{Admission, Command, Event, RefreshOutcome, Verdict};
pub use config::{Backoff, Config, OnExhausted, RefreshTrigger};
pub use credential::{Attempt, Credential};
pub use error::{Error, LogoutReason, RefreshError, RefreshErrorKind};
pub use ids::{Generation, RefreshId, WaiterId};
pub use origin::{Origin, OriginError};
pub use protocol::RefreshProtocol;
pub use retry_after::parse_retry_after;
pub use token::{AccessToken, InvalidToken, RefreshToken, StoredTokens, TokenSet, MAX_LIFETIME};
