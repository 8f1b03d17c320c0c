//! The session as a ureq [`Middleware`]: attaches the credential and reports 401s, but
//! cannot replay.

use crate::direct::status_as_error;
use crate::drive::{Sent, Shared, Transport};
use crate::error::Error;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Uri};
use std::sync::Arc;
use ureq::config::RedirectAuthHeaders;
use ureq::http::{Request, Response};
use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::{Body, RequestExt, ResponseExt, SendBody};

/// The session as a ureq
/// [`Middleware`](https://docs.rs/ureq/3/ureq/middleware/trait.Middleware.html), for agents
/// you build yourself. Get one from [`Agent::middleware`](crate::Agent::middleware); it shares that agent's
/// session (one refresh for both).
///
/// ureq hands a middleware a request it can send **once** (`MiddlewareNext` is consumed),
/// so compared with [`Agent`](crate::Agent):
///
/// - A request is never replayed. It is sent with the current credential (waiting for a
///   refresh in flight first, like any request); if the answer is a 401 for that
///   credential, the session refreshes and the caller gets the 401. The next call uses the
///   new token. [`Agent`](crate::Agent) replays instead.
/// - The credential never follows a redirect, not even to the same origin
///   (ureq's `RedirectAuthHeaders::Never` is forced for the request); a response that
///   arrived after a redirect is not reported to the session.
///   [`Agent`](crate::Agent) follows redirects itself and keeps the credential for allowed
///   origins.
/// - The middleware needs to see 401s, so it turns ureq's `http_status_as_error` off for
///   the request and applies it itself afterwards, as set by
///   [`http_status_as_error`](Self::http_status_as_error) (default: true, ureq's
///   default). Set it to match the agent.
///
/// Do not install it on an agent that is also wrapped in [`Agent`](crate::Agent) or used as
/// the token agent: the credential would be attached twice, or to the refresh itself.
///
/// ```no_run
/// # fn demo(agent: &reauth_ureq::Agent) -> Result<(), Box<dyn std::error::Error>> {
/// let plain: ureq::Agent = ureq::Agent::config_builder()
///     .middleware(agent.middleware())
///     .build()
///     .into();
/// let items = plain.get("https://api.example.com/items").call()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthMiddleware {
    shared: Arc<Shared>,
    status_as_error: bool,
}

impl AuthMiddleware {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            status_as_error: true,
        }
    }

    /// Whether a final 4xx or 5xx answer becomes [`ureq::Error::StatusCode`], as ureq's
    /// own setting of that name does. Default: true. Match your agent's setting.
    #[must_use]
    pub fn http_status_as_error(mut self, enabled: bool) -> Self {
        self.status_as_error = enabled;
        self
    }
}

impl std::fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("http_status_as_error", &self.status_as_error)
            .finish_non_exhaustive()
    }
}

impl Middleware for AuthMiddleware {
    fn handle(
        &self,
        request: Request<SendBody>,
        next: MiddlewareNext,
    ) -> Result<Response<Body>, ureq::Error> {
        let mut chain = Chain {
            uri: request.uri().clone(),
            request: Some(request),
            next: Some(next),
            status_as_error: self.status_as_error,
        };
        self.shared.run(&mut chain).map_err(|e| match e {
            Error::Http(e) => e,
            other => ureq::Error::Other(Box::new(other)),
        })
    }
}

/// The rest of the chain: one send.
struct Chain<'b, 'n> {
    uri: Uri,
    request: Option<Request<SendBody<'b>>>,
    next: Option<MiddlewareNext<'n>>,
    status_as_error: bool,
}

impl<'b, 'n> Chain<'b, 'n> {
    /// Unreachable twice: a request that cannot be replayed is never told to send again.
    fn take(&mut self) -> Result<(Request<SendBody<'b>>, MiddlewareNext<'n>), Error> {
        match (self.request.take(), self.next.take()) {
            (Some(request), Some(next)) => Ok((request, next)),
            _ => Err(Error::Disconnected),
        }
    }
}

impl Transport for Chain<'_, '_> {
    fn uri(&self) -> &Uri {
        &self.uri
    }

    fn replayable(&self) -> bool {
        false
    }

    fn send_authorized(&mut self, credential: &HeaderValue) -> Result<Sent, Error> {
        let (mut request, next) = self.take()?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, credential.clone());
        // Inside a chain the request always knows its agent; without one ureq could not
        // send it either.
        let request = request
            .middleware_config()
            .ok_or_else(|| {
                ureq::Error::Other("reauth: a middleware request without its agent".into())
            })?
            .redirect_auth_headers(RedirectAuthHeaders::Never)
            .http_status_as_error(false)
            .save_redirect_history(true)
            .build();
        let response = crate::quiet::quiet(|| next.handle(request))?;
        // A response after a redirect came from a hop that got no credential. A response
        // made up by a later middleware has no history and counts as the answer.
        let authorized = response
            .get_redirect_history()
            .is_none_or(|uris| uris.len() <= 1);
        Ok(Sent {
            response,
            authorized,
        })
    }

    fn send_anonymous(&mut self) -> Result<Response<Body>, Error> {
        let (request, next) = self.take()?;
        Ok(next.handle(request)?)
    }

    fn deliver(&mut self, response: Response<Body>) -> Result<Response<Body>, Error> {
        status_as_error(self.status_as_error, response)
    }
}
