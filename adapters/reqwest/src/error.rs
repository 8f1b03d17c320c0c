//! The adapter's error type.

/// Why a request through the adapter failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session could not authorize the request: not logged in, logged out, the
    /// refresh failed, the wait timed out, or a replay was refused again.
    #[error(transparent)]
    Auth(#[from] reauth_core::Error),
    /// reqwest failed to send the request or read the response.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// A later middleware in a `reqwest_middleware` chain failed.
    #[error(transparent)]
    Middleware(reqwest_middleware::Error),
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
}

/// Why [`ClientBuilder::build`](crate::ClientBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `build` must run inside a tokio runtime: refreshes and timers are spawned on it.
    #[error("reauth-reqwest needs a tokio runtime: build the client inside one")]
    NoRuntime,
    /// No refresh source was given.
    #[error("no refresh source: call oauth2(), protocol() or refresh_fn() on the builder")]
    NoRefreshSource,
    /// The internal token-endpoint client could not be built.
    #[error("could not build the token-endpoint client: {0}")]
    TokenClient(#[source] reqwest::Error),
}
