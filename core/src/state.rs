//! The session's phases. The transitions between them all live in `machine.rs`.

use crate::credential::Credential;
use crate::error::LogoutReason;
use crate::ids::{Generation, RefreshId};
use crate::record::Lineage;
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

/// Where a refresh episode is: leasing, re-reading the store, calling the token endpoint,
/// saving. The same steps run in the foreground (requests wait) and in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Waiting for the store's answer to a lease request.
    Lease,
    /// Another holder has the lease; the `LeaseRetry` timer re-reads and asks again.
    LeaseBusy,
    /// Re-reading the record, `leased` or as a poll while another holder refreshes.
    Read { leased: bool },
    /// The refresh call is in flight (in doubt once overdue).
    Call(RefreshId),
    /// Writing the refreshed tokens; they are installed once the write is answered.
    Save,
}

/// A background refresh's progress while the token is still good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Background {
    Idle,
    Running(Step),
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
        step: Step,
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
                background: Background::Running(_),
            } => Phase::ValidRefreshing,
            State::Valid { .. } => Phase::Valid,
            State::Refreshing { .. } => Phase::Refreshing,
            State::Backoff => Phase::Backoff,
            State::Expired => Phase::Expired,
            State::LoggedOut { .. } => Phase::LoggedOut,
        }
    }

    /// The step of the refresh episode under way, if any.
    pub(crate) fn step(&self) -> Option<Step> {
        match *self {
            State::Valid {
                background: Background::Running(step),
            }
            | State::Refreshing { step } => Some(step),
            _ => None,
        }
    }

    pub(crate) fn refresh_in_flight(&self) -> Option<RefreshId> {
        match self.step() {
            Some(Step::Call(id)) => Some(id),
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
    /// When this session's own refresh got these tokens: a 401 soon after means fresh
    /// tokens are refused. `None` for a login's or a restored or adopted set, whose first
    /// refusal always refreshes.
    pub(crate) refreshed_at: Option<Instant>,
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
    /// The login the tokens belong to, once known.
    pub lineage: Option<Lineage>,
    /// The version of the store's record the tokens came from or went to, once known.
    pub version: Option<u64>,
}
