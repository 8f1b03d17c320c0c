//! Typed errors. None of them ever holds token text.

use crate::record::Tombstone;
use std::sync::Arc;
use std::time::Duration;

/// Why a request could not be authorized. Handed to a caller by a rejected admission, a
/// failed waiter or a response verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session holds no tokens yet: log in first.
    #[error("not authenticated: the session holds no tokens, log in first")]
    NotAuthenticated,
    /// The session is logged out; nothing is sent with a token until the next login.
    #[error("logged out: {0}")]
    LoggedOut(LogoutReason),
    /// The server refused the current token, and refreshing cannot help now: the request
    /// was already replayed with it, or fresh tokens keep being refused and refreshing is
    /// held back (see [`Config::backoff`](crate::Config::backoff)). Not retried, to avoid a
    /// loop.
    #[error("unauthorized: the server rejected the request with the current token")]
    Unauthorized,
    /// The request waited longer than the waiter deadline for a refresh.
    #[error("timed out waiting for the token refresh")]
    Timeout,
    /// The refresh failed transiently as many times as allowed. The session is kept: the
    /// next request starts a new refresh.
    #[error("token refresh failed: {0}")]
    RefreshFailed(Arc<RefreshError>),
}

impl Error {
    /// True if retrying the same request cannot help until the user logs in again.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::NotAuthenticated | Error::LoggedOut(_))
    }

    /// How long the token endpoint asked us to wait, if it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RefreshFailed(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// Why the session was logged out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutReason {
    /// The application called `logout`.
    #[error("logout was requested")]
    Requested,
    /// The token endpoint rejected the refresh for good (e.g. `invalid_grant`).
    #[error("the refresh was rejected: {0}")]
    RefreshRejected(Arc<RefreshError>),
    /// A refresh was needed but the session holds no refresh token.
    #[error("the access token expired and there is no refresh token")]
    NoRefreshToken,
    /// Transient failures exhausted the attempts and the configuration says to log out.
    #[error("refresh attempts were exhausted: {0}")]
    AttemptsExhausted(Arc<RefreshError>),
    /// The store says this login was logged out (by another process, or before this one
    /// started).
    #[error("logged out in the shared store: {0}")]
    Elsewhere(Tombstone),
    /// The store holds another login (another user, or a new login): this session's tokens
    /// are not adopted and the other login's record is left alone. Log in again, or start
    /// a new client to use the other login.
    #[error("the store holds another login; this session is no longer the store's")]
    Superseded,
}

impl LogoutReason {
    /// The tombstone a store keeps for this logout; `None` if the store already says so.
    pub fn tombstone(&self) -> Option<Tombstone> {
        match self {
            LogoutReason::Requested => Some(Tombstone::Requested),
            LogoutReason::RefreshRejected(_) => Some(Tombstone::RefreshRejected),
            LogoutReason::NoRefreshToken => Some(Tombstone::NoRefreshToken),
            LogoutReason::AttemptsExhausted(_) => Some(Tombstone::AttemptsExhausted),
            LogoutReason::Elsewhere(_) | LogoutReason::Superseded => None,
        }
    }
}

/// What went wrong talking to the token endpoint (or any refresh source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}{}", detail_suffix(.detail))]
pub struct RefreshError {
    kind: RefreshErrorKind,
    permanent: bool,
    configuration: bool,
    retry_after: Option<Duration>,
    detail: Option<String>,
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!(": {d}"),
        None => String::new(),
    }
}

/// The category of a [`RefreshError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshErrorKind {
    /// The token endpoint answered an RFC 6749 section 5.2 error code
    /// (`invalid_grant`, `invalid_client`, …).
    #[error("the token endpoint answered error `{code}`")]
    OAuth {
        /// The `error` field if it is an RFC 6749 or RFC 6750 code (`invalid_grant`,
        /// `invalid_client`, `invalid_token`, …), else `other`: any other code is server
        /// text and is never shown.
        code: String,
    },
    /// The token endpoint answered an HTTP status without a usable error body.
    #[error("the token endpoint answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed or was reset.
    #[error("network error")]
    Network,
    /// No answer within the refresh timeout.
    #[error("the refresh timed out")]
    Timeout,
    /// A success status with a body that is not a valid token response.
    #[error("malformed token response")]
    Malformed,
    /// The response body exceeded the size cap.
    #[error("the token response body exceeded {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The token endpoint answered a redirect (3xx). A refresh request is never sent on
    /// to another address (it carries the refresh token and the client's credentials), so
    /// the endpoint URI is wrong: a configuration error (see
    /// [`RefreshError::configuration`]).
    #[error("the token endpoint redirected to {location}; refresh requests never follow redirects, configure the final token endpoint URI")]
    Redirected {
        /// Where the `Location` header pointed, without its query, fragment or user
        /// information and with token-like path segments elided; `(none)` if absent.
        location: String,
    },
    /// The refresh source panicked or was dropped before answering.
    #[error("the refresh was abandoned")]
    Abandoned,
    /// The token store failed around the refresh, e.g. another process held its
    /// refresh lock past the deadline.
    #[error("token store error")]
    Store,
    /// Anything else a custom refresh source reports.
    #[error("refresh source error")]
    Other,
}

impl RefreshError {
    /// A failure worth retrying after a backoff (network, 5xx, 429, timeout, …).
    pub fn transient(kind: RefreshErrorKind) -> Self {
        Self {
            kind,
            permanent: false,
            configuration: false,
            retry_after: None,
            detail: None,
        }
    }

    /// A failure of the application's setup, not of the user's tokens (a token endpoint
    /// that redirects, the client's credentials refused): retrying at once cannot help
    /// and logging the user out would destroy tokens that may well be good. The session
    /// keeps its tokens, fails the waiting requests with this error, emits
    /// [`Event::RefreshFailed`](crate::Event::RefreshFailed) and starts no refresh until
    /// [`Backoff::cap`](crate::Backoff::cap) has passed or a login: a request that needs
    /// one meanwhile fails at once with the same error. A fixed deployment then recovers
    /// by itself.
    pub fn configuration(kind: RefreshErrorKind) -> Self {
        Self {
            kind,
            permanent: false,
            configuration: true,
            retry_after: None,
            detail: None,
        }
    }

    /// A failure that logs the session out (e.g. `invalid_grant`).
    pub fn permanent(kind: RefreshErrorKind) -> Self {
        Self {
            kind,
            permanent: true,
            configuration: false,
            retry_after: None,
            detail: None,
        }
    }

    /// Adds the server's `Retry-After`, which the backoff honours.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Adds a human-readable detail. It must never contain token text.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The category.
    pub fn kind(&self) -> &RefreshErrorKind {
        &self.kind
    }

    /// True if this failure logs the session out.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// True if this failure is the application's configuration, not the tokens (see
    /// [`RefreshError::configuration`]): it does not log out, and refreshing waits.
    pub fn is_configuration(&self) -> bool {
        self.configuration
    }

    /// The server's requested delay before the next try, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The human-readable detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_clear() {
        let e = RefreshError::permanent(RefreshErrorKind::OAuth {
            code: "invalid_grant".into(),
        })
        .with_detail("refresh token revoked");
        assert_eq!(
            e.to_string(),
            "the token endpoint answered error `invalid_grant`: refresh token revoked"
        );
        let w = Error::LoggedOut(LogoutReason::RefreshRejected(Arc::new(e)));
        assert!(w.is_permanent());
        assert!(w
            .to_string()
            .starts_with("logged out: the refresh was rejected"));
        let t = Error::RefreshFailed(Arc::new(
            RefreshError::transient(RefreshErrorKind::Status { status: 503 })
                .with_retry_after(Duration::from_secs(7)),
        ));
        assert_eq!(t.retry_after(), Some(Duration::from_secs(7)));
        assert!(!t.is_permanent());
    }
}
