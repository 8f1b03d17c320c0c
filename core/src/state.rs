//! The session's phases. The transitions between them all live in `machine.rs`.

use crate::credential::Credential;
use crate::error::LogoutReason;
use crate::ids::{Generation, RefreshId};
use crate::token::{AccessToken, RefreshToken, StoredTokens};
use std::time::Instant;

/// Where the session is in the token lifecycle, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// No tokens yet. Requests are rejected (or acquire a token, for grants that need no
    /// refresh token).
    Empty,
    /// The access token is believed good. Requests are sent at once.
    Valid,
    /// The access token is still good and a background refresh is in flight (the token is
    /// in its stale window). Requests are sent at once with the current token.
    ValidRefreshing,
    /// The access token is bad or about to expire; one refresh is in flight and requests
    /// queue behind it.
    Refreshing,
    /// The last refresh failed transiently; the next try is scheduled and requests queue.
    Backoff,
    /// Refresh attempts were exhausted. The session is kept; the next request starts a
    /// new refresh.
    Expired,
    /// The refresh token is dead or the application logged out. Nothing is sent with a
    /// token until the next login.
    LoggedOut,
}

/// A background refresh's progress while the token is still good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Background {
    Idle,
    InFlight(RefreshId),
    /// A background try failed; the `Backoff` timer holds the next one.
    Backoff,
    /// Background tries are exhausted; the token is used until it expires.
    GaveUp,
}

#[derive(Debug, Clone)]
pub(crate) enum State {
    Empty,
    Valid {
        background: Background,
    },
    Refreshing {
        id: RefreshId,
    },
    /// The `Backoff` timer holds the next try.
    Backoff,
    Expired,
    LoggedOut {
        reason: LogoutReason,
    },
}

impl State {
    pub(crate) fn phase(&self) -> Phase {
        match self {
            State::Empty => Phase::Empty,
            State::Valid {
                background: Background::InFlight(_),
            } => Phase::ValidRefreshing,
            State::Valid { .. } => Phase::Valid,
            State::Refreshing { .. } => Phase::Refreshing,
            State::Backoff => Phase::Backoff,
            State::Expired => Phase::Expired,
            State::LoggedOut { .. } => Phase::LoggedOut,
        }
    }

    pub(crate) fn refresh_in_flight(&self) -> Option<RefreshId> {
        match *self {
            State::Valid {
                background: Background::InFlight(id),
            }
            | State::Refreshing { id } => Some(id),
            _ => None,
        }
    }
}

/// The current tokens and the instants derived from their lifetime.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) credential: Credential,
    pub(crate) access: AccessToken,
    pub(crate) refresh: Option<RefreshToken>,
    pub(crate) scope: Option<String>,
    pub(crate) expires_at: Option<Instant>,
    /// From here on a background refresh runs.
    pub(crate) stale_at: Option<Instant>,
    /// From here on the token is not sent; requests wait for a refresh.
    pub(crate) hard_at: Option<Instant>,
}

impl Tokens {
    pub(crate) fn stored(&self) -> StoredTokens {
        StoredTokens {
            access_token: self.access.clone(),
            refresh_token: self.refresh.clone(),
            expires_at: self.expires_at,
            scope: self.scope.clone(),
        }
    }
}

/// What the session holds, without any secret: for status pages, logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The phase.
    pub phase: Phase,
    /// The current token generation (0 before the first login).
    pub generation: Generation,
    /// When the access token expires, if known.
    pub expires_at: Option<Instant>,
    /// True if a refresh token is held.
    pub has_refresh_token: bool,
    /// The granted scope, if known.
    pub scope: Option<String>,
    /// Requests queued behind a refresh.
    pub waiting: usize,
    /// Consecutive transient refresh failures in the current episode.
    pub failed_attempts: u32,
}
