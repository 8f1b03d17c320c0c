//! What goes in (refresh outcomes) and what comes out (admissions, verdicts, commands,
//! events) of the session.

use crate::credential::Attempt;
use crate::error::{Error, LogoutReason, RefreshError};
use crate::ids::{Generation, RefreshId, StoreOpId, WaiterId};
use crate::record::{Expect, Lease, LeaseId, Lineage, Record, Swap};
use crate::store::StoreError;
use crate::token::{RefreshToken, StoredTokens, TokenSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The synchronous answer to [`Session::begin_request`](crate::Session::begin_request).
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use]
pub enum Admission {
    /// Send now with this attempt's credential.
    Send(Attempt),
    /// Wait: a refresh is needed or under way. The waiter is resolved later by exactly one
    /// [`Command::Resume`] or [`Command::Fail`].
    Wait(WaiterId),
    /// The request's origin is not on the allow-list: send it without any credential.
    Anonymous,
    /// Do not send.
    Reject(Error),
}

/// The answer to [`Session::handle_response`](crate::Session::handle_response).
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use]
pub enum Verdict {
    /// Hand the response to the caller.
    Done,
    /// The 401 was for an older token: send the request again, now, with this attempt.
    Replay(Attempt),
    /// Wait for the refresh, then replay with the attempt from [`Command::Resume`].
    Wait(WaiterId),
    /// Fail the request with this error (e.g. a replay got 401 again).
    Fail(Error),
}

/// The result of a refresh, reported with
/// [`Session::handle_refresh`](crate::Session::handle_refresh).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// New tokens. A set without a refresh token keeps the old one.
    Success(TokenSet),
    /// The refresh failed; [`RefreshError::is_permanent`] decides between backoff and
    /// logout.
    Failed(RefreshError),
}

/// Work for the caller, drained with [`Session::poll_command`](crate::Session::poll_command).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command {
    /// Run refresh `id` and report its outcome with the same id. `refresh_token` is `None`
    /// for grants that need none (see
    /// [`Config::requires_refresh_token`](crate::Config::requires_refresh_token)).
    StartRefresh {
        /// The id to report the outcome with.
        id: RefreshId,
        /// The refresh token to present.
        refresh_token: Option<RefreshToken>,
        /// Report by then at the latest: abort the call and report a transient
        /// [`Timeout`](crate::RefreshErrorKind::Timeout) failure if no answer came. Until
        /// the outcome is reported the refresh is *in doubt*: the session starts no other
        /// refresh, and a late success is installed.
        deadline: Instant,
    },
    /// Waiter `waiter` may go: send (or replay) the request with `attempt`.
    Resume {
        /// The waiter.
        waiter: WaiterId,
        /// The attempt to send.
        attempt: Attempt,
    },
    /// Waiter `waiter` failed with `error`.
    Fail {
        /// The waiter.
        waiter: WaiterId,
        /// Why.
        error: Error,
    },
    /// Carry out store operation `op` on the session's store and report the outcome with
    /// [`Session::handle_store`](crate::Session::handle_store) and the same `id`. At most
    /// one is outstanding at a time.
    Store {
        /// The id to report the outcome with.
        id: StoreOpId,
        /// What to do.
        op: StoreCommand,
    },
    /// Tell the application something happened.
    Event(Event),
}

/// One store operation the session asks for. Each maps to one [`TokenStore`](crate::TokenStore)
/// method; [`StoreReply`] is what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreCommand {
    /// [`TokenStore::lease`](crate::TokenStore::lease): answer [`StoreReply::Lease`].
    Lease {
        /// Whose refresh lease.
        lineage: Lineage,
        /// How long it may be held.
        ttl: Duration,
    },
    /// [`TokenStore::read`](crate::TokenStore::read): answer [`StoreReply::Read`].
    Read,
    /// [`TokenStore::compare_and_swap`](crate::TokenStore::compare_and_swap), with the
    /// record converted by [`Record::saved`]: answer [`StoreReply::Swap`].
    Write {
        /// What the store must hold for the write to happen.
        expect: Expect,
        /// The record to write.
        record: Box<Record<StoredTokens>>,
    },
    /// [`TokenStore::release`](crate::TokenStore::release): answer [`StoreReply::Released`].
    Release {
        /// Whose lease.
        lineage: Lineage,
        /// Which lease.
        lease: LeaseId,
    },
}

/// What a store operation answered, for [`Session::handle_store`](crate::Session::handle_store).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreReply {
    /// The answer to [`StoreCommand::Lease`].
    Lease(Lease),
    /// The answer to [`StoreCommand::Read`].
    Read(Option<Record>),
    /// The answer to [`StoreCommand::Write`].
    Swap(Swap),
    /// The answer to [`StoreCommand::Release`].
    Released,
}

/// The outcome of a store operation: its reply, or why the store failed.
pub type StoreOutcome = Result<StoreReply, StoreError>;

/// Something an application may want to show or log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A refresh succeeded; requests now use `generation`.
    Refreshed {
        /// The new token generation.
        generation: Generation,
        /// When the new access token expires, if known.
        expires_at: Option<Instant>,
    },
    /// A refresh failed transiently. The session is kept.
    RefreshFailed {
        /// What went wrong.
        error: Arc<RefreshError>,
        /// Consecutive failures so far in this episode.
        attempt: u32,
        /// When the next try is scheduled; `None` if attempts are exhausted.
        retry_at: Option<Instant>,
    },
    /// The session is logged out: show the login screen.
    LoggedOut {
        /// Why.
        reason: LogoutReason,
    },
    /// Another process (or machine) sharing the store refreshed: the session took its
    /// tokens, without a refresh of its own.
    Adopted {
        /// The new token generation.
        generation: Generation,
    },
    /// The refresh in flight has not answered within the refresh timeout. It is still in
    /// doubt: no other refresh starts until it answers or its deadline passes.
    RefreshOverdue {
        /// The refresh.
        id: RefreshId,
    },
    /// The store failed. The session goes on with the tokens in memory; refreshes are
    /// single-flight within this process only until the store answers again.
    StoreFailed {
        /// What went wrong (never holds token text).
        error: StoreError,
    },
}

impl Event {
    /// True for events worth a warning in logs: a failed refresh or a logout.
    pub fn is_problem(&self) -> bool {
        !matches!(self, Event::Refreshed { .. } | Event::Adopted { .. })
    }
}

/// One line for logs, without secrets, e.g. `token refreshed (generation g3)`.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Refreshed { generation, .. } => {
                write!(f, "token refreshed (generation {generation})")
            }
            Event::RefreshFailed {
                error,
                attempt,
                retry_at,
            } => {
                let next = if retry_at.is_some() {
                    "will retry"
                } else {
                    "attempts exhausted"
                };
                write!(f, "refresh failed (attempt {attempt}, {next}): {error}")
            }
            Event::LoggedOut { reason } => write!(f, "session logged out: {reason}"),
            Event::Adopted { generation } => write!(
                f,
                "took the tokens another process refreshed (generation {generation})"
            ),
            Event::RefreshOverdue { id } => write!(
                f,
                "refresh {id} has not answered within the refresh timeout; still waiting for it"
            ),
            Event::StoreFailed { error } => {
                write!(f, "{error}; going on with the tokens in memory")
            }
        }
    }
}
