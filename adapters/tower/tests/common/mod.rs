//! Shared set-up for the end-to-end tests: a testkit server on loopback and a layer for
//! it. Every test bounds itself in time and shuts its server down.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{AccessToken, Config, Origin, RefreshToken, TokenSet};
use reauth_testkit::{IssuedTokens, ServerConfig, TestServer};
use reauth_tower::{AuthLayer, AuthService, ReplayBody};
use std::future::Future;
use std::time::Duration;
use tower::{Service, ServiceExt};

/// Every end-to-end test fails instead of hanging past this.
pub const LIMIT: Duration = Duration::from_secs(60);

pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("end-to-end test exceeded its time limit")
}

pub fn session_config(server: &TestServer) -> Config {
    let mut c = Config::new(Origin::parse(&server.base_url()).unwrap());
    c.refresh_timeout = Duration::from_secs(5);
    c.waiter_timeout = Duration::from_secs(20);
    c.backoff.base = Duration::from_millis(20);
    c.backoff.cap = Duration::from_millis(200);
    c
}

pub fn grant(server: &TestServer) -> OAuth2Grant {
    OAuth2Grant::refresh_token(
        TokenEndpoint::new(
            server.token_url().parse().unwrap(),
            ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
        )
        .unwrap(),
    )
}

pub fn token_set(t: &IssuedTokens) -> TokenSet {
    TokenSet::new(AccessToken::new(t.access_token.clone()).unwrap())
        .with_refresh_token(RefreshToken::new(t.refresh_token.clone()).unwrap())
        .with_expires_in(Duration::from_secs(t.expires_in))
}

#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Http1,
    H2c,
}

pub type Hyper = Client<HttpConnector, ReplayBody>;

/// hyper-util's client over HTTP/1.1 or h2c (prior knowledge: thousands of concurrent
/// requests share a few connections).
pub fn hyper_client(protocol: Protocol) -> Hyper {
    let mut builder = Client::builder(TokioExecutor::new());
    if let Protocol::H2c = protocol {
        builder.http2_only(true);
    }
    builder.build_http()
}

pub struct Setup {
    pub server: TestServer,
    pub layer: AuthLayer,
    pub service: AuthService<Hyper>,
    pub tokens: IssuedTokens,
}

/// A server, a logged-in layer, and the hyper client it wraps.
pub async fn setup(
    protocol: Protocol,
    server_config: ServerConfig,
    tweak: impl FnOnce(reauth_tower::AuthLayerBuilder) -> reauth_tower::AuthLayerBuilder,
) -> Setup {
    let server = TestServer::start(server_config).await.unwrap();
    let builder = AuthLayer::builder(session_config(&server))
        .oauth2(grant(&server))
        .jitter_seed(7);
    let layer = tweak(builder).build().unwrap();
    let tokens = server.issue_tokens();
    layer.login(token_set(&tokens));
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper_client(protocol));
    Setup {
        server,
        layer,
        service,
        tokens,
    }
}

pub fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url).body(Full::default()).unwrap()
}

/// Sends one request through the service: its status and body, or the error chain.
pub async fn send<S, B>(service: S, request: http::Request<B>) -> Result<(u16, Bytes), String>
where
    S: Service<
        http::Request<B>,
        Response = http::Response<reauth_tower::ResponseBody<hyper::body::Incoming>>,
        Error = tower::BoxError,
    >,
{
    let response = service
        .oneshot(request)
        .await
        .map_err(|e| error_chain(&*e))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| error_chain(&e))?
        .to_bytes();
    Ok((status, body))
}

/// Sends `n` truly concurrent GETs (all spawned before any is awaited) and returns the
/// statuses, or the error text of those that failed.
pub async fn storm(service: &AuthService<Hyper>, url: &str, n: usize) -> Vec<Result<u16, String>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (service, url) = (service.clone(), url.to_owned());
            tokio::spawn(async move { send(service, get(&url)).await.map(|(s, _)| s) })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// An error and all its sources, one after another.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
