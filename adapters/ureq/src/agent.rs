//! The agent wrapper: ureq's request API, with the session in front of every request.

use crate::body::RequestBody;
use crate::direct::Direct;
use crate::drive::{Parts, Shared};
use crate::error::{BuildError, Error};
use crate::events::{Callback, Events};
use crate::middleware::AuthMiddleware;
use crate::source::Source;
use http::{HeaderName, HeaderValue, Method, Uri};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{
    Config, Event, MemoryStore, RefreshError, RefreshProtocol, RefreshToken, Snapshot, TokenSet,
    TokenStore,
};
use reauth_drive::random_seed;
use std::marker::PhantomData;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;
use ureq::http::{request, Request, Response};
use ureq::typestate::{WithBody, WithoutBody};
use ureq::Body;

/// A `ureq::Agent` that keeps itself authenticated. Cheap to clone and to share between
/// threads: clones share one session, so any number of concurrent 401s across them cause
/// exactly one refresh.
///
/// Build one with [`Agent::builder`]; send requests as with ureq
/// ([`get`](Self::get)`(url).call()`, [`post`](Self::post)`(url).send(body)`, or
/// [`run`](Self::run) for an [`http::Request`]).
#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
    /// Why the store could not be read at build time, if it could not.
    load_error: Option<Arc<reauth_core::StoreError>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("session", &self.shared.snapshot())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts building an agent around `http` with the session `config`.
    pub fn builder(http: ureq::Agent, config: Config) -> AgentBuilder {
        AgentBuilder {
            http,
            config,
            store: None,
            source: None,
            token_agent: None,
            allow_insecure_http: false,
            seed: None,
            callbacks: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get<T>(&self, uri: T) -> RequestBuilder<'_, WithoutBody>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        self.request(Method::GET, uri)
    }

    /// A `HEAD` request.
    pub fn head<T>(&self, uri: T) -> RequestBuilder<'_, WithoutBody>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        self.request(Method::HEAD, uri)
    }

    /// A `DELETE` request.
    pub fn delete<T>(&self, uri: T) -> RequestBuilder<'_, WithoutBody>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        self.request(Method::DELETE, uri)
    }

    /// An `OPTIONS` request.
    pub fn options<T>(&self, uri: T) -> RequestBuilder<'_, WithoutBody>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        self.request(Method::OPTIONS, uri)
    }

    /// A `POST` request.
    pub fn post<T>(&self, uri: T) -> RequestBuilder<'_, WithBody>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        self.request(Method::POST, uri)
    }

    /// A `PUT` request.
    pub fn put<T>(&self, uri: T) -> RequestBuilder<'_, WithBody>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        self.request(Method::PUT, uri)
    }

    /// A `PATCH` request.
    pub fn patch<T>(&self, uri: T) -> RequestBuilder<'_, WithBody>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        self.request(Method::PATCH, uri)
    }

    fn request<T, B>(&self, method: Method, uri: T) -> RequestBuilder<'_, B>
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        // As `Request::builder().method(method).uri(uri)`, but with the head at hand: the
        // builder moves the whole head (224 bytes) in and out of a closure per call, and
        // cannot lend it. Made in place, then changed.
        let mut builder = RequestBuilder {
            agent: self,
            parts: Ok(Request::new(()).into_parts().0),
            query: Vec::new(),
            timeout: None,
            _body: PhantomData,
        };
        match Uri::try_from(uri) {
            Ok(uri) => {
                if let Ok(parts) = &mut builder.parts {
                    parts.method = method;
                    parts.uri = uri;
                }
            }
            Err(e) => builder.parts = Err(e.into()),
        }
        builder
    }

    /// Sends an [`http::Request`] through the session, like `ureq::Agent::run`.
    ///
    /// The body is anything that converts into a [`RequestBody`]: `()`, `&str`, `String`,
    /// `&[u8]`, `Vec<u8>`, … (replayed after a refresh if needed), or
    /// [`RequestBody::reader`] (authorized, never replayed: on a 401 the session refreshes
    /// for the next call and this call returns the 401).
    ///
    /// Request-level ureq settings made with `inner().configure_request(..)` are kept, except
    /// the three the session needs to drive: redirects and `http_status_as_error` come from
    /// the agent's configuration.
    pub fn run<'b>(
        &self,
        request: Request<impl Into<RequestBody<'b>>>,
    ) -> Result<Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        self.execute(&parts, body.into(), None)
    }

    fn execute(
        &self,
        parts: &request::Parts,
        body: RequestBody<'_>,
        timeout: Option<Duration>,
    ) -> Result<Response<Body>, Error> {
        let mut direct = Direct {
            agent: &self.shared.http,
            allowed: &self.shared.allowed,
            by_hand: &self.shared.by_hand,
            parts,
            body,
            timeout,
        };
        self.shared.run(&mut direct)
    }

    /// Installs tokens from a login; queued requests resume with them. Tokens that have
    /// already expired are refreshed first, on this thread.
    pub fn login(&self, tokens: TokenSet) {
        self.shared.with_hub(|d, now| d.session.login(now, tokens));
    }

    /// Logs out: queued requests fail, the store gets a tombstone (so every process
    /// sharing it is logged out too, for good), nothing is sent with a token
    /// until the next [`login`](Self::login).
    pub fn logout(&self) {
        self.shared.with_hub(|d, now| d.session.logout(now));
    }

    /// Reports that the token of `generation` is bad, learned outside HTTP (a websocket
    /// refused it, a 403 the app knows means expiry). Take `generation` from
    /// [`snapshot`](Self::snapshot)`().generation` before handing the token out. For the
    /// current generation this refreshes once, on this thread, while other calls wait
    /// for it; a report about an older generation (the token was replaced since), or one
    /// while logged out, does nothing. See
    /// [`Session::invalidate`](reauth_core::Session::invalidate).
    pub fn invalidate(&self, generation: reauth_core::Generation) {
        self.shared
            .with_hub(|d, now| d.session.invalidate(now, generation));
    }

    /// Why the token store could not be read when the agent was built (a corrupt file,
    /// say): the agent then started logged out. `None` if it was read fine.
    pub fn store_load_error(&self) -> Option<&reauth_core::StoreError> {
        self.load_error.as_deref()
    }

    /// The token state, without secrets.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Session events (refreshed, refresh failed, logged out), e.g. to show a login screen.
    /// Each receiver queues up to 64 events; a receiver that falls behind misses the
    /// newer ones, and a dropped one is forgotten. The latest state is always in
    /// [`snapshot`](Self::snapshot). See also [`AgentBuilder::on_event`].
    pub fn subscribe(&self) -> Receiver<Event> {
        self.shared.subscribe()
    }

    /// A ureq middleware sharing this agent's session, for agents built elsewhere. It
    /// cannot replay requests; see [`AuthMiddleware`] for how it differs.
    pub fn middleware(&self) -> AuthMiddleware {
        AuthMiddleware::new(self.shared.clone())
    }

    /// The wrapped ureq agent.
    pub fn inner(&self) -> &ureq::Agent {
        &self.shared.http
    }
}

/// Builds an [`Agent`].
#[must_use]
pub struct AgentBuilder {
    http: ureq::Agent,
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    source: Option<Source>,
    token_agent: Option<ureq::Agent>,
    allow_insecure_http: bool,
    seed: Option<u64>,
    callbacks: Vec<Callback>,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("config", &self.config)
            .field("has_source", &self.source.is_some())
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
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

    /// Refresh with a closure, for token sources that are not HTTP. It gets the current
    /// refresh token (if any) and returns new tokens or a typed failure
    /// ([`RefreshError::is_permanent`] decides between backoff and logout). It runs on the
    /// thread of a request that needs the refresh; if it panics, the refresh counts as a
    /// transient failure and the panic goes on to that caller. The session's
    /// `refresh_timeout` moves the other requests on if it takes too long.
    pub fn refresh_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(Option<RefreshToken>) -> Result<TokenSet, RefreshError> + Send + Sync + 'static,
    {
        self.source = Some(Source::closure(f));
        self
    }

    /// Where tokens are kept. Default: memory only. Tokens already in the store are loaded
    /// at build time. A store must not call back into the agent.
    pub fn store(mut self, store: impl TokenStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The agent used for the token endpoint. Default: a new `ureq::Agent` with ureq's
    /// defaults (pass your own for a custom TLS or proxy setup). Whatever its settings,
    /// token requests follow no redirects (a redirect must never carry a refresh token
    /// elsewhere), hand every status to the protocol, and time out after the session's
    /// `refresh_timeout`. It must not carry an [`AuthMiddleware`].
    pub fn token_agent(mut self, agent: ureq::Agent) -> Self {
        self.token_agent = Some(agent);
        self
    }

    /// Allow a plain `http://` refresh endpoint on a non-loopback host. Default: refused.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Fixes the backoff jitter seed (for tests). Default: random per agent, so many
    /// agents do not retry in lockstep.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Calls `f` with every session event, on the thread whose call produced it, after the
    /// session lock is released (so `f` may use the agent). Keep it short: the request
    /// that produced the event waits for it. See also [`Agent::subscribe`].
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(f));
        self
    }

    /// Builds the agent. Loads the store; if its tokens have expired meanwhile, they are
    /// refreshed here, on this thread.
    pub fn build(self) -> Result<Agent, BuildError> {
        let source = self.source.ok_or(BuildError::NoRefreshSource)?;
        let mut config = self.config;
        if let Some(requires) = source.requires_refresh_token() {
            config.requires_refresh_token = requires;
        }
        config.seed = self.seed.unwrap_or_else(random_seed);
        let token_agent = self.token_agent.unwrap_or_else(|| {
            ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .build()
                .new_agent()
        });
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let opened = reauth_drive::open(config, &*store);
        let shared = Arc::new(Shared::new(Parts {
            session: opened.session,
            store,
            events: Events::new(self.callbacks),
            source,
            token_agent,
            http: self.http,
            allow_insecure_http: self.allow_insecure_http,
        }));
        shared.watch_store(&opened.changes);
        // Taking the session up from the store may have left work (an expired token).
        shared.with_hub(|_, _| ());
        Ok(Agent {
            shared,
            load_error: opened.load_error.map(Arc::new),
        })
    }
}

/// A request being built, like `ureq::RequestBuilder`: [`call`](Self::call) (no body) or
/// [`send`](Self::send) (with a body) goes through the session. It borrows its [`Agent`]
/// (where ureq's owns a clone): no shared reference count is touched per request.
#[must_use]
pub struct RequestBuilder<'a, B> {
    agent: &'a Agent,
    /// The head so far, or the first error building it (as `http::request::Builder`).
    parts: Result<request::Parts, http::Error>,
    query: Vec<(String, String)>,
    timeout: Option<Duration>,
    _body: PhantomData<B>,
}

impl<B> std::fmt::Debug for RequestBuilder<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers may hold secrets: method and URI only.
        let parts = self.parts.as_ref().ok();
        f.debug_struct("RequestBuilder")
            .field("method", &parts.map(|p| &p.method))
            .field("uri", &parts.map(|p| &p.uri))
            .finish_non_exhaustive()
    }
}

impl<B> RequestBuilder<'_, B> {
    /// Adds a header. An `Authorization` header is replaced by the session's credential
    /// for allowed origins.
    pub fn header<K, V>(mut self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        // As `http::request::Builder::header`: the first error sticks.
        if let Ok(parts) = &mut self.parts {
            let appended = HeaderName::try_from(key)
                .map_err(Into::into)
                .and_then(|name| Ok((name, HeaderValue::try_from(value).map_err(Into::into)?)))
                .and_then(|(name, value)| Ok(parts.headers.try_append(name, value)?));
            if let Err(e) = appended {
                self.parts = Err(e);
            }
        }
        self
    }

    /// Appends a query parameter, percent-encoded.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Appends query parameters, percent-encoded.
    pub fn query_pairs<K, V>(mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.query
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// A timeout for each try of this request (ureq's `timeout_global`), on top of the
    /// agent's own timeouts. Waiting for a refresh is bounded by the session's
    /// `waiter_timeout` instead.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn dispatch(mut self, body: RequestBody<'_>) -> Result<Response<Body>, Error> {
        let parts = match self.parts {
            Ok(ref mut parts) => parts,
            Err(e) => return Err(e.into()),
        };
        if !self.query.is_empty() {
            parts.uri = with_query(&parts.uri, &self.query)?;
        }
        // Sent from here, not moved: a move of the head is a copy of 224 bytes.
        self.agent.execute(parts, body, self.timeout)
    }
}

impl RequestBuilder<'_, WithoutBody> {
    /// Sends the request (no body) and blocks until the response head arrives.
    pub fn call(self) -> Result<Response<Body>, Error> {
        self.dispatch(RequestBody::empty())
    }
}

impl RequestBuilder<'_, WithBody> {
    /// Sets the `Content-Type` header.
    pub fn content_type<V>(self, value: V) -> Self
    where
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.header(http::header::CONTENT_TYPE, value)
    }

    /// Sends the request with `body`. Bytes are replayed after a refresh if needed; a
    /// [`RequestBody::reader`] is sent once (see [`RequestBody`]).
    pub fn send<'b>(self, body: impl Into<RequestBody<'b>>) -> Result<Response<Body>, Error> {
        self.dispatch(body.into())
    }

    /// Sends the request with an empty body (`Content-Length: 0`).
    pub fn send_empty(self) -> Result<Response<Body>, Error> {
        self.dispatch(RequestBody::from(&[][..]))
    }

    /// Sends `pairs` as an `application/x-www-form-urlencoded` body.
    pub fn send_form<K, V>(
        self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Response<Body>, Error>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k.as_ref(), v.as_ref());
        }
        let body = form.finish();
        self.content_type("application/x-www-form-urlencoded")
            .dispatch(RequestBody::from(body))
    }
}

/// `uri` with `pairs` appended to its query, percent-encoded.
fn with_query(uri: &Uri, pairs: &[(String, String)]) -> Result<Uri, http::Error> {
    let mut path_and_query = uri.path().to_owned();
    let mut separator = '?';
    if let Some(existing) = uri.query() {
        path_and_query.push('?');
        path_and_query.push_str(existing);
        separator = '&';
    }
    for (k, v) in pairs {
        path_and_query.push(separator);
        separator = '&';
        path_and_query.extend(form_urlencoded::byte_serialize(k.as_bytes()));
        path_and_query.push('=');
        path_and_query.extend(form_urlencoded::byte_serialize(v.as_bytes()));
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse()?);
    Ok(Uri::from_parts(parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_and_encoded() {
        let uri: Uri = "https://api.test/items?a=1".parse().unwrap();
        let got = with_query(
            &uri,
            &[("q".into(), "x y&z".into()), ("é".into(), "/".into())],
        )
        .unwrap();
        assert_eq!(got, "https://api.test/items?a=1&q=x+y%26z&%C3%A9=%2F");
        let bare: Uri = "https://api.test".parse().unwrap();
        assert_eq!(
            with_query(&bare, &[("k".into(), "v".into())]).unwrap(),
            "https://api.test/?k=v"
        );
    }
}
