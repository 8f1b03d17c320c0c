//! The same behaviour as a `reqwest_middleware::Middleware`.

use crate::drive::{Shared, Transport};
use crate::error::Error;
use crate::template::Built;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use std::future::Future;
use std::sync::Arc;

/// Attaches the session's credential and refreshes/replays on 401, inside a
/// `reqwest_middleware` chain. Get one from [`Client::middleware`](crate::Client::middleware);
/// it shares that client's session. Place it after retry middleware, so a retried request
/// is authorized afresh each time.
///
/// **Build the chain on a client that follows no redirects**, such as
/// [`Client::inner`](crate::Client::inner) (or any client built with
/// `redirect(reqwest::redirect::Policy::none())`). The middleware then follows redirects
/// itself, as the [`Client`](crate::Client) does: each hop goes through the rest of the
/// chain, with the credential only if its origin is allowed. A client that follows
/// redirects itself cannot be told apart beforehand, and would carry the token along its
/// own way (reqwest's policy gives it back to a hop on the same origin as a foreign hop
/// before it); when a response shows that it did, the request fails with
/// [`Error::ClientFollowedRedirect`](crate::Error::ClientFollowedRedirect) (its status is
/// not counted) and a warning, once, names the fix. The same goes for a later middleware
/// that rewrites the request's URL: the allow-list was checked on the URL this middleware
/// saw, so place URL-rewriting middleware before it.
///
/// ```
/// use reauth_core::{Config, Origin, RefreshError, RefreshErrorKind};
/// use reauth_reqwest::Client;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = Config::new(Origin::parse("https://api.example.com").unwrap());
/// let client = Client::builder(reqwest::Client::builder(), config)
///     .refresh_fn(|_| async { Err(RefreshError::permanent(RefreshErrorKind::Other)) })
///     .build()
///     .unwrap();
/// let chain = reqwest_middleware::ClientBuilder::new(client.inner().clone())
///     .with(client.middleware())
///     .build();
/// # let _ = chain; }
/// ```
#[derive(Clone)]
pub struct AuthMiddleware {
    shared: Arc<Shared>,
}

impl AuthMiddleware {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl std::fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMiddleware").finish_non_exhaustive()
    }
}

struct Chain<'a, 'e> {
    next: Next<'a>,
    extensions: &'e mut Extensions,
}

impl Transport for Chain<'_, '_> {
    fn send(&mut self, request: Request) -> impl Future<Output = Result<Response, Error>> + Send {
        let next = self.next.clone();
        let extensions = &mut *self.extensions;
        async move {
            next.run(request, extensions).await.map_err(|e| match e {
                reqwest_middleware::Error::Reqwest(e) => Error::Http(e),
                other => Error::Middleware(other),
            })
        }
    }
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let chain = Chain { next, extensions };
        crate::drive::run(Arc::clone(&self.shared), req, Built::Elsewhere, chain)
            .await
            .map_err(|e| match e {
                Error::Http(e) => reqwest_middleware::Error::Reqwest(e),
                Error::Middleware(e) => e,
                other => reqwest_middleware::Error::middleware(other),
            })
    }
}
