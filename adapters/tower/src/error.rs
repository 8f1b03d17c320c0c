//! The adapter's error types.

/// Why a request through the layer failed on reauth's side. The service's errors are
/// [`tower::BoxError`]s, as tower and tonic expect: this type is inside one (downcast it),
/// next to the wrapped service's own errors, which pass through unchanged.
///
/// ```
/// use reauth_tower::Error;
///
/// let boxed: tower::BoxError = Box::new(Error::Auth(reauth_core::Error::NotAuthenticated));
/// let error = boxed.downcast_ref::<Error>().unwrap();
/// assert!(error.is_logged_out());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session could not authorize the request: not logged in, logged out, the
    /// refresh failed, the wait timed out, or a replay was refused again.
    #[error(transparent)]
    Auth(#[from] reauth_core::Error),
    /// The session dropped this request's wait without answering (a bug: please report).
    #[error("the session dropped this request's wait without answering")]
    Disconnected,
}

impl Error {
    /// The session's answer, if this is an authorization error.
    pub fn auth(&self) -> Option<&reauth_core::Error> {
        match self {
            Error::Auth(e) => Some(e),
            Error::Disconnected => None,
        }
    }

    /// True if retrying cannot help until the user logs in again.
    pub fn is_logged_out(&self) -> bool {
        self.auth().is_some_and(reauth_core::Error::is_permanent)
    }
}

/// Why [`AuthLayerBuilder::build`](crate::AuthLayerBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `build` must run inside a tokio runtime: refreshes and timers are spawned on it.
    #[error("reauth-tower needs a tokio runtime: build the layer inside one")]
    NoRuntime,
    /// No refresh source was given.
    #[error("no refresh source: call oauth2(), protocol() or refresh_fn() on the builder")]
    NoRefreshSource,
}
