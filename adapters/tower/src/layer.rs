//! The layer, its service, and their builder.

use crate::body::ReplayBody;
use crate::drive::{Shared, Tower};
use crate::error::BuildError;
use crate::source::{default_token_service, token_service, TokenService};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{
    Config, Event, Generation, MemoryStore, Origin, RefreshError, RefreshProtocol, RefreshToken,
    Snapshot, StoreError, TokenSet, TokenStore,
};
use reauth_drive::tokio::Source;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::broadcast;
use tower::{BoxError, Layer, Service};

/// Request bodies that are still streaming are recorded up to this many bytes for a
/// replay, by default.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A tower layer that keeps the services it wraps authenticated: it attaches the
/// session's bearer token to requests for the allowed origins, and on a 401 (or a gRPC
/// `UNAUTHENTICATED`, see [`AuthLayerBuilder::grpc`]) refreshes once for any number of
/// concurrent requests and replays them. Cheap to clone: clones, and every service they
/// wrap, share one session.
///
/// `O` is the request body type of the wrapped service: [`ReplayBody`] for a hyper-util
/// client built for it, `tonic::body::Body` for a tonic `Channel` (feature `tonic`), or
/// any type with `From<ReplayBody>` (see [`with_body`](Self::with_body)).
///
/// ```
/// use reauth_core::{AccessToken, Config, Origin, TokenSet};
/// use reauth_tower::{AuthLayer, ReplayBody};
/// use tower::ServiceBuilder;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new(Origin::parse("http://127.0.0.1:8080")?);
/// let auth = AuthLayer::builder(config)
///     .refresh_fn(|_| async { Ok(TokenSet::new(AccessToken::new("fresh").unwrap())) })
///     .build()?;
/// auth.login(TokenSet::new(AccessToken::new("first")?));
///
/// let client = hyper_util::client::legacy::Client::builder(
///     hyper_util::rt::TokioExecutor::new(),
/// )
/// .build_http::<ReplayBody>();
/// let service = ServiceBuilder::new().layer(auth.clone()).service(client);
/// // `service` takes `http::Request<B>` for any body `B` (`Full<Bytes>`, `String`, …).
/// # let _ = service;
/// # Ok(())
/// # }
/// ```
pub struct AuthLayer<O = ReplayBody> {
    shared: Arc<Shared>,
    load_error: Option<StoreError>,
    body: PhantomData<fn() -> O>,
}

impl<O> Clone for AuthLayer<O> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            load_error: self.load_error.clone(),
            body: PhantomData,
        }
    }
}

impl<O> std::fmt::Debug for AuthLayer<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("session", &self.shared.snapshot())
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// Starts building a layer with the session `config`. [`build`](AuthLayerBuilder::build)
    /// then needs a tokio runtime.
    pub fn builder(config: Config) -> AuthLayerBuilder {
        AuthLayerBuilder {
            config,
            store: None,
            source: None,
            token_http: None,
            allow_insecure_http: false,
            seed: None,
            body_limit: DEFAULT_BODY_LIMIT,
            grpc: false,
            default_origin: None,
        }
    }
}

impl<O> AuthLayer<O> {
    /// The same layer (the same session) for services whose request body is `O`, e.g.
    /// `tonic::body::Body` for a tonic `Channel`.
    pub fn with_body<P: From<ReplayBody>>(&self) -> AuthLayer<P> {
        AuthLayer {
            shared: self.shared.clone(),
            load_error: self.load_error.clone(),
            body: PhantomData,
        }
    }

    /// Installs tokens from a login; queued requests resume with them.
    pub fn login(&self, tokens: TokenSet) {
        self.shared
            .with_hub_now(|d, now| d.session.login(now, tokens));
    }

    /// Logs out: queued requests fail, the store gets a tombstone, nothing is sent with a
    /// token until the next [`login`](Self::login).
    pub fn logout(&self) {
        self.shared.with_hub_now(|d, now| d.session.logout(now));
    }

    /// Reports that the token of `generation` is bad, learned outside HTTP. See
    /// [`Session::invalidate`](reauth_core::Session::invalidate).
    pub fn invalidate(&self, generation: Generation) {
        self.shared
            .with_hub_now(|d, now| d.session.invalidate(now, generation));
    }

    /// The token state, without secrets.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Session events (refreshed, refresh failed, logged out). A slow receiver may miss
    /// events (it gets `Lagged`); the latest state is always in [`snapshot`](Self::snapshot).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.subscribe()
    }

    /// Why the store could not be read when the layer was built, if it could not: the
    /// session then started logged out.
    pub fn store_load_error(&self) -> Option<&StoreError> {
        self.load_error.as_ref()
    }
}

impl<S: Clone, O> Layer<S> for AuthLayer<O> {
    type Service = AuthService<S, O>;

    fn layer(&self, inner: S) -> AuthService<S, O> {
        AuthService {
            spare: Arc::new(Mutex::new(inner.clone())),
            inner,
            shared: self.shared.clone(),
            body: PhantomData,
        }
    }
}

/// The service [`AuthLayer`] makes: `S` with the session in front of every request.
///
/// It takes `http::Request<B>` for any body `B` with `Bytes` data, and hands `S` an
/// `http::Request<O>` made from a [`ReplayBody`]. Readiness is `S`'s own. With a valid
/// token, `call` sends the request on the ready `S` at once and the response future is
/// `S`'s own wrapped (nothing boxed, no service cloned). The refresh and any waiting
/// happen inside the response future (never in `poll_ready`), which is `Send`; a request
/// that waits or is replayed is sent on a clone of `S`, polled ready first (`S` itself
/// keeps its readiness for the next `call`). Errors are [`BoxError`]s: `S`'s own, or a
/// [`crate::Error`].
pub struct AuthService<S, O = ReplayBody> {
    inner: S,
    /// Where waiting and replayed requests clone their service from.
    spare: Arc<Mutex<S>>,
    shared: Arc<Shared>,
    body: PhantomData<fn() -> O>,
}

impl<S: Clone, O> Clone for AuthService<S, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            spare: self.spare.clone(),
            shared: self.shared.clone(),
            body: PhantomData,
        }
    }
}

impl<S: std::fmt::Debug, O> std::fmt::Debug for AuthService<S, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("session", &self.shared.snapshot())
            .finish()
    }
}

impl<S, O, B, R> Service<Request<B>> for AuthService<S, O>
where
    S: Service<Request<O>, Response = Response<R>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    O: From<ReplayBody> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    R: Body + Send + 'static,
    R::Data: Send,
{
    type Response = Response<crate::ResponseBody<R>>;
    type Error = BoxError;
    type Future = crate::ResponseFuture<S, O, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        crate::request::start(&self.shared, &self.spare, &mut self.inner, request)
    }
}

/// Builds an [`AuthLayer`].
#[must_use]
pub struct AuthLayerBuilder {
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    source: Option<Source>,
    token_http: Option<TokenService>,
    allow_insecure_http: bool,
    seed: Option<u64>,
    body_limit: usize,
    grpc: bool,
    default_origin: Option<Origin>,
}

impl std::fmt::Debug for AuthLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuthLayerBuilder {
    /// Refresh with an OAuth2 grant (`refresh_token` or `client_credentials`).
    pub fn oauth2(self, grant: OAuth2Grant) -> Self {
        self.protocol(grant)
    }

    /// Refresh with any HTTP refresh protocol, sent through the token service (see
    /// [`token_service`](Self::token_service)).
    pub fn protocol(mut self, protocol: impl RefreshProtocol + 'static) -> Self {
        self.source = Some(Source::Protocol(Arc::new(protocol)));
        self
    }

    /// Refresh with an async closure, for token sources that are not HTTP.
    pub fn refresh_fn<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Option<RefreshToken>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<TokenSet, RefreshError>> + Send + 'static,
    {
        self.source = Some(Source::closure(f));
        self
    }

    /// Where tokens are kept. Default: memory only.
    pub fn store(mut self, store: impl TokenStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The transport for the token endpoint: any service taking
    /// `http::Request<Full<Bytes>>`, e.g. a hyper-util client with an HTTPS connector.
    /// Default: a hyper-util client over plain TCP, enough for loopback endpoints (and
    /// others with [`allow_insecure_http`](Self::allow_insecure_http)).
    ///
    /// The layer needs its own: the service it wraps may be a gRPC channel to one host.
    /// Redirects from the token endpoint are never followed (a refresh request carries
    /// secrets); a 3xx fails the refresh with
    /// [`RefreshErrorKind::Redirected`](reauth_core::RefreshErrorKind::Redirected). Give it
    /// no redirect-following layer: the layer cannot see the hops.
    pub fn token_service<S, B>(mut self, service: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.token_http = Some(token_service(service));
        self
    }

    /// Allow a plain `http://` refresh endpoint on a non-loopback host. Default: refused.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Fixes the backoff jitter seed (for tests). Default: random per layer.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How many bytes of a streaming request body are recorded for a replay. Default
    /// [`DEFAULT_BODY_LIMIT`] (64 KiB). A longer body is sent once and never replayed: on
    /// a 401 the caller gets the 401 and the session refreshes for the next request.
    /// Bodies that are in memory (`Full`, `Bytes`, `Empty`, …) are always replayed.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// gRPC: refresh on `UNAUTHENTICATED` too
    /// ([`RefreshTrigger::Grpc`](reauth_core::RefreshTrigger::Grpc) replaces
    /// `Config::trigger`), and watch streamed responses' trailers for it (see
    /// [`ResponseBody`](crate::ResponseBody)).
    pub fn grpc(mut self) -> Self {
        self.grpc = true;
        self
    }

    /// Where requests whose URI has no scheme and host go, as far as the allow-list is
    /// concerned: a tonic client over a `Channel` sends bare paths (`/pkg.Svc/Method`)
    /// unless made `with_origin`. Name the channel's endpoint here. Default: none (such
    /// requests go out without the token).
    pub fn default_origin(mut self, origin: Origin) -> Self {
        self.default_origin = Some(origin);
        self
    }

    /// Builds the layer. Must run inside a tokio runtime (else [`BuildError::NoRuntime`]):
    /// refreshes and timers are spawned on it, so it must outlive the layer.
    pub fn build(self) -> Result<AuthLayer, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let source = self.source.ok_or(BuildError::NoRefreshSource)?;
        let mut config = self.config;
        if let Some(requires) = source.requires_refresh_token() {
            config.requires_refresh_token = requires;
        }
        if self.grpc {
            config.trigger = reauth_core::RefreshTrigger::Grpc;
        }
        config.seed = self.seed.unwrap_or_else(reauth_drive::random_seed);
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let opened = reauth_drive::open(config, &*store);
        let tower = Tower {
            source,
            token_http: self.token_http.unwrap_or_else(default_token_service),
            allow_insecure_http: self.allow_insecure_http,
            body_limit: self.body_limit,
            grpc: self.grpc,
            default_origin: self.default_origin,
        };
        let shared = Shared::start(opened.session, &opened.changes, store, tower, &runtime);
        Ok(AuthLayer {
            shared,
            load_error: opened.load_error,
            body: PhantomData,
        })
    }
}
