//! The adapter's error type.

/// Why a request through the adapter failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session could not authorize the request: not logged in, logged out, the
    /// refresh failed, the wait timed out, or a replay was refused again.
    #[error(transparent)]
    Auth(#[from] reauth_core::Error),
    /// ureq failed to send the request or read the response, or (with the agent's
    /// `http_status_as_error`, ureq's default) the final answer was a 4xx or 5xx status:
    /// [`ureq::Error::StatusCode`].
    #[error(transparent)]
    Http(#[from] ureq::Error),
    /// The request could not be built: an invalid URI, header name or header value.
    #[error("invalid request: {0}")]
    Request(#[source] http::Error),
    /// The session dropped this request's wait without answering (a bug: please report).
    #[error("the session dropped this request's wait without answering")]
    Disconnected,
}

impl Error {
    /// The session's answer, if this is an authorization error.
    pub fn auth(&self) -> Option<&reauth_core::Error> {
        match self {
            Error::Auth(e) => Some(e),
            _ => None,
        }
    }

    /// True if retrying cannot help until the user logs in again.
    pub fn is_logged_out(&self) -> bool {
        self.auth().is_some_and(reauth_core::Error::is_permanent)
    }

    /// The HTTP status, if ureq turned a 4xx or 5xx answer into this error
    /// (`http_status_as_error`).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http(ureq::Error::StatusCode(code)) => Some(*code),
            _ => None,
        }
    }
}

impl From<http::Error> for Error {
    fn from(e: http::Error) -> Self {
        Error::Request(e)
    }
}

/// Why [`AgentBuilder::build`](crate::AgentBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No refresh source was given.
    #[error("no refresh source: call oauth2(), protocol() or refresh_fn() on the builder")]
    NoRefreshSource,
}
