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
    /// The request was redirected more often than the client's
    /// [`max_redirects`](crate::ClientBuilder::max_redirects) allows.
    #[error("more than {limit} redirects")]
    TooManyRedirects {
        /// The limit that was reached.
        limit: usize,
    },
    /// The reqwest client that sent the request followed a redirect itself: the inner
    /// client of a `reqwest_middleware` chain built with reqwest's default redirect policy,
    /// or another client swapped in through [`RequestBuilder::with`](crate::RequestBuilder::with)
    /// (or a later middleware rewrote the request's URL). The token may have gone to an
    /// origin that is not allowed, and the response's status is not counted. Build that client with `redirect(reqwest::redirect::Policy::none())`
    /// ([`Client::inner`](crate::Client::inner) is such a client): reauth then follows
    /// redirects itself.
    #[error(
        "the reqwest client followed a redirect itself; build it with \
         `redirect(Policy::none())` (e.g. reauth's `Client::inner()`) so reauth follows them"
    )]
    ClientFollowedRedirect,
    /// The request was polled outside any tokio runtime, and the runtime the client ran
    /// its timers on is gone: there is nowhere to run the session's refreshes and timers.
    /// Send requests from inside a tokio runtime (any one: the client moves its tasks to
    /// the runtime of the request).
    #[error("no tokio runtime to run the session's refreshes and timers on: send requests from inside one")]
    NoRuntime,
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
    /// `build` must run inside a tokio runtime: the session's timer task starts on it.
    #[error("reauth-reqwest needs a tokio runtime: build the client inside one")]
    NoRuntime,
    /// No refresh source was given.
    #[error("no refresh source: call oauth2(), protocol() or refresh_fn() on the builder")]
    NoRefreshSource,
    /// The API client could not be built from the given `reqwest::ClientBuilder`.
    #[error("could not build the API client: {0}")]
    Client(#[source] reqwest::Error),
    /// The internal token-endpoint client could not be built.
    #[error("could not build the token-endpoint client: {0}")]
    TokenClient(#[source] reqwest::Error),
}
