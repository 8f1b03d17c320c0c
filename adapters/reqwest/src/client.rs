//! The client wrapper: reqwest's API, with the session in front of every request.

use crate::drive::{Http, Shared, Transport};
use crate::error::{BuildError, Error};
use crate::middleware::AuthMiddleware;
use crate::template::Built;
use futures_util::future::Either;
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{
    Config, Event, MemoryStore, RefreshError, RefreshProtocol, RefreshToken, Snapshot, StoreError,
    TokenSet, TokenStore,
};
use reauth_drive::tokio::Source;
use reqwest::{IntoUrl, Method, Request, Response};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::broadcast;

/// A reqwest client that keeps itself authenticated. Cheap to clone: clones share one
/// session, so any number of concurrent 401s across them cause exactly one refresh.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    http: reqwest::Client,
    load_error: Option<StoreError>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session", &self.shared.snapshot())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts building a client from `http` (proxies, TLS roots, timeouts, default
    /// headers, …) with the session `config`. [`build`](ClientBuilder::build) then needs
    /// a tokio runtime.
    ///
    /// Whatever `http` says about redirects, the adapter sets
    /// [`Policy::none`](reqwest::redirect::Policy::none) on it last and follows redirects
    /// itself (up to [`max_redirects`](ClientBuilder::max_redirects), with reqwest's rules
    /// for methods and bodies): reqwest's own policy gives the token back to a hop on the
    /// same origin as a foreign hop before it (A → B → B′), while the adapter attaches it
    /// only on hops whose origin the session allows. A builder and not a built
    /// `reqwest::Client`, because a built client's policy can be neither changed nor
    /// inspected.
    ///
    /// The adapter also turns reqwest's `connection_verbose` off: it logs every byte read
    /// and written at trace level, the `Authorization` header included.
    ///
    /// ```
    /// use reauth_core::{Config, Origin};
    /// use reauth_reqwest::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    /// let client = Client::builder(http, Config::new(Origin::parse("https://api.example.com").unwrap()))
    ///     .refresh_fn(|_| async { Err(reauth_core::RefreshError::permanent(reauth_core::RefreshErrorKind::Other)) })
    ///     .max_redirects(3)
    ///     .build()
    ///     .unwrap();
    /// # let _ = client; }
    /// ```
    pub fn builder(http: reqwest::ClientBuilder, config: Config) -> ClientBuilder {
        ClientBuilder {
            http,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            config,
            store: None,
            source: None,
            token_http: None,
            allow_insecure_http: false,
            seed: None,
        }
    }

    /// A `GET` request.
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// A `POST` request.
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// A `PUT` request.
    pub fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// A `PATCH` request.
    pub fn patch(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// A `DELETE` request.
    pub fn delete(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// A `HEAD` request.
    pub fn head(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// A request with any method.
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder {
            shared: self.shared.clone(),
            inner: self.http.request(method, url),
            built: Built::Here,
        }
    }

    /// Sends a request through the session. A request whose body cannot be cloned (a
    /// stream) is authorized but never replayed: on a 401 the session refreshes for the
    /// next call and this call returns the 401 response.
    pub fn execute(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        let direct = Direct(self.http.clone());
        crate::drive::run(self.shared.clone(), request, Built::Elsewhere, direct)
    }

    /// Installs tokens from a login; queued requests resume with them.
    pub fn login(&self, tokens: TokenSet) {
        self.shared
            .with_hub_now(|d, now| d.session.login(now, tokens));
    }

    /// Logs out: queued requests fail, the store gets a tombstone (so every process
    /// sharing it is logged out too, for good), nothing is sent with a token until the
    /// next [`login`](Self::login).
    pub fn logout(&self) {
        self.shared.with_hub_now(|d, now| d.session.logout(now));
    }

    /// Reports that the token of `generation` is bad, learned outside HTTP (a websocket
    /// refused it, a 403 the app knows means expiry). Take `generation` from
    /// [`snapshot`](Self::snapshot)`().generation` before handing the token out. For the
    /// current generation one refresh starts in the background and requests wait for it;
    /// a report about an older generation (the token was replaced since), or one while
    /// logged out, does nothing. See
    /// [`Session::invalidate`](reauth_core::Session::invalidate).
    pub fn invalidate(&self, generation: reauth_core::Generation) {
        self.shared
            .with_hub_now(|d, now| d.session.invalidate(now, generation));
    }

    /// The token state, without secrets.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Session events (refreshed, refresh failed, logged out), e.g. to show a login screen.
    /// A slow receiver may miss events (it gets `Lagged`); the latest state is always in
    /// [`snapshot`](Self::snapshot).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.subscribe()
    }

    /// A `reqwest_middleware` middleware sharing this client's session. Build its chain
    /// on a client that follows no redirects, such as [`inner`](Self::inner): see
    /// [`AuthMiddleware`].
    pub fn middleware(&self) -> AuthMiddleware {
        AuthMiddleware::new(self.shared.clone())
    }

    /// The wrapped reqwest client, as built from the builder's `reqwest::ClientBuilder`:
    /// it follows no redirects (the adapter does). The client to build a
    /// [`middleware`](Self::middleware) chain on.
    pub fn inner(&self) -> &reqwest::Client {
        &self.http
    }

    /// Why the store could not be read when the client was built, if it could not (e.g. a
    /// corrupt token file, which a [`FileStore`](https://docs.rs/reauth) sets aside). The
    /// client then started logged out: requests fail with
    /// [`NotAuthenticated`](reauth_core::Error::NotAuthenticated) until a login.
    pub fn store_load_error(&self) -> Option<&StoreError> {
        self.load_error.as_ref()
    }
}

struct Direct(reqwest::Client);

impl Transport for Direct {
    fn send(&mut self, request: Request) -> impl Future<Output = Result<Response, Error>> + Send {
        let sent = self.0.execute(request);
        async move { Ok(sent.await?) }
    }
}

/// How many redirects a request follows unless told otherwise: reqwest's default.
const DEFAULT_MAX_REDIRECTS: usize = 10;

/// Builds a [`Client`].
#[must_use]
pub struct ClientBuilder {
    http: reqwest::ClientBuilder,
    max_redirects: usize,
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    source: Option<Source>,
    token_http: Option<reqwest::ClientBuilder>,
    allow_insecure_http: bool,
    seed: Option<u64>,
}

impl ClientBuilder {
    /// Refresh with an OAuth2 grant (`refresh_token` or `client_credentials`).
    pub fn oauth2(self, grant: OAuth2Grant) -> Self {
        self.protocol(grant)
    }

    /// Refresh with any HTTP refresh protocol, e.g.
    /// [`JsonRefreshProtocol`](reauth_core::protocol::JsonRefreshProtocol).
    pub fn protocol(mut self, protocol: impl RefreshProtocol + 'static) -> Self {
        self.source = Some(Source::Protocol(Arc::new(protocol)));
        self
    }

    /// Refresh with an async closure, for token sources that are not HTTP. It gets the
    /// current refresh token (if any) and returns new tokens or a typed failure
    /// ([`RefreshError::is_permanent`] decides between backoff and logout).
    pub fn refresh_fn<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Option<RefreshToken>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<TokenSet, RefreshError>> + Send + 'static,
    {
        self.source = Some(Source::closure(f));
        self
    }

    /// Where tokens are kept. Default: memory only. Tokens already in the store are loaded
    /// at build time; if the store cannot be read (corrupt file, I/O error), the client
    /// starts logged out and tells why in [`Client::store_load_error`].
    ///
    /// A store shared between processes (a token file with a refresh lock) makes refreshes
    /// single-flight across them: the process that gets the lock refreshes, the others
    /// adopt its tokens. The lock wait counts against the session's `refresh_timeout`.
    pub fn store(mut self, store: impl TokenStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// How to build the client used for the token endpoint (proxies, TLS roots, a client
    /// certificate, timeouts, …). Default: `reqwest::Client::builder()`.
    ///
    /// Whatever the builder says about redirects, the adapter sets
    /// [`Policy::none`](reqwest::redirect::Policy::none) on it last: a refresh request
    /// carries the refresh token and the client secret, and a redirect must never carry
    /// them elsewhere. A builder and not a built `reqwest::Client`, because a built client
    /// cannot be told, per request or afterwards, to stop following redirects, and its
    /// policy cannot be inspected. A 3xx from the token endpoint fails the refresh with
    /// [`RefreshErrorKind::Redirected`](reauth_core::RefreshErrorKind::Redirected).
    /// `connection_verbose` is turned off too: its trace-level wire dump would log the
    /// refresh token, the client secret and the token response.
    pub fn token_client(mut self, http: reqwest::ClientBuilder) -> Self {
        self.token_http = Some(http);
        self
    }

    /// How many redirects a request follows (each hop carries the credential only if its
    /// origin is allowed). Default: 10, as reqwest. More fail the request with
    /// [`Error::TooManyRedirects`]; with 0 none is followed and the caller gets the 3xx,
    /// as with reqwest's `Policy::none`. Applies to the [`middleware`](Client::middleware)
    /// too.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Allow a plain `http://` refresh endpoint on a non-loopback host. Default: refused.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Fixes the backoff jitter seed (for tests). Default: random per client, so many
    /// clients do not retry in lockstep.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the client. Must run inside a tokio runtime (else
    /// [`BuildError::NoRuntime`]): the session's timer task starts on it. Refreshes and
    /// store operations run as tasks on the runtime of the request that needs them, and
    /// if the runtime the timer runs on goes away (a client built in one runtime and used
    /// from another), the next request's runtime takes the timer over. A request polled
    /// outside any tokio runtime then fails at once with [`Error::NoRuntime`].
    pub fn build(self) -> Result<Client, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let source = self.source.ok_or(BuildError::NoRefreshSource)?;
        let mut config = self.config;
        if let Some(requires) = source.requires_refresh_token() {
            config.requires_refresh_token = requires;
        }
        config.seed = self.seed.unwrap_or_else(reauth_drive::random_seed);
        let token_http = self
            .token_http
            .unwrap_or_else(reqwest::Client::builder)
            .redirect(reqwest::redirect::Policy::none())
            .connection_verbose(false)
            .build()
            .map_err(BuildError::TokenClient)?;
        let http = self
            .http
            .redirect(reqwest::redirect::Policy::none())
            .connection_verbose(false)
            .build()
            .map_err(BuildError::Client)?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let opened = reauth_drive::open(config, &*store);
        let allowed = opened.session.config().allowed_origins.clone();
        let http_part = Http {
            source,
            token_http,
            allow_insecure_http: self.allow_insecure_http,
            allowed: allowed.into_boxed_slice(),
            max_redirects: self.max_redirects,
        };
        let shared = Shared::start(opened.session, &opened.changes, store, http_part, &runtime);
        Ok(Client {
            shared,
            http,
            load_error: opened.load_error,
        })
    }
}

/// A request being built, like `reqwest::RequestBuilder`; [`send`](Self::send) goes
/// through the session.
#[must_use]
pub struct RequestBuilder {
    shared: Arc<Shared>,
    inner: reqwest::RequestBuilder,
    /// `Elsewhere` once [`with`](Self::with) has handed the builder out: the closure may
    /// return a builder made from an `http::Request` with extensions of its own.
    built: Built,
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header<K, V>(mut self, key: K, value: V) -> Self
    where
        http::HeaderName: TryFrom<K>,
        <http::HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        http::HeaderValue: TryFrom<V>,
        <http::HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.inner = self.inner.header(key, value);
        self
    }

    /// Adds headers.
    pub fn headers(mut self, headers: http::HeaderMap) -> Self {
        self.inner = self.inner.headers(headers);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.inner = self.inner.body(body);
        self
    }

    /// Sets a per-request timeout.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.inner = self.inner.timeout(timeout);
        self
    }

    /// Applies any other `reqwest::RequestBuilder` method (`json`, `query`, `form`, …
    /// when those reqwest features are on).
    pub fn with(
        mut self,
        f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Self {
        self.inner = f(self.inner);
        self.built = Built::Elsewhere;
        self
    }

    /// Builds the request without sending it.
    pub fn build(self) -> Result<Request, Error> {
        Ok(self.inner.build()?)
    }

    /// Sends the request through the session. Like reqwest's own `send`, the request is
    /// built here and nothing else happens until the future is polled: the session admits
    /// it (attaching the current credential, or waiting for a refresh) at the first poll.
    ///
    /// The future holds the common path inline (under a kilobyte) and boxes the rest.
    pub fn send(self) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        // The reqwest builder holds the reqwest client already: no second clone of it.
        match self.inner.build_split() {
            (http, Ok(request)) => Either::Left(crate::drive::run(
                self.shared,
                request,
                self.built,
                Direct(http),
            )),
            (_, Err(e)) => Either::Right(std::future::ready(Err(e.into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Client, Error};
    use reauth_core::{AccessToken, Config, Origin, TokenSet};

    fn client() -> Client {
        let config = Config::new(Origin::parse("http://127.0.0.1:9").unwrap());
        Client::builder(reqwest::Client::builder(), config)
            .refresh_fn(|_| async { Ok(TokenSet::new(AccessToken::new("t").unwrap())) })
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_request_future_stays_small() {
        let client = client();
        let sent = client.get("http://127.0.0.1:9/x").send();
        // Callers build, move and spawn this for every request, so its size is a cost. It
        // was 1.8 KB with the request stored three times over; an `async fn` in place of
        // `Shared::run`, or a local copy of the request in it, adds 264.
        let size = std::mem::size_of_val(&sent);
        assert!(size <= 1024, "{size} bytes");
        let executed = client.execute(client.get("http://127.0.0.1:9/x").build().unwrap());
        assert!(std::mem::size_of_val(&executed) <= 1024);
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_a_typed_error() {
        let client = client();
        client.login(TokenSet::new(AccessToken::new("t").unwrap()));
        let err = client.get("not a url").send().await.unwrap_err();
        assert!(matches!(&err, Error::Http(e) if e.is_builder()), "{err:?}");
    }
}
