//! Helpers shared by the self-tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::Duration;

use reauth_testkit::{ServerConfig, TestServer};
use reqwest::redirect::Policy;
use serde_json::Value;

/// Every test body runs under this bound so nothing can hang CI.
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test exceeded its time bound")
}

/// Polls `cond` until it holds (for effects with no event to wait on, like a peer
/// noticing a closed socket), failing after 20 s.
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn server() -> TestServer {
    TestServer::start(ServerConfig::default()).await.unwrap()
}

/// HTTP/1.1 client that does not follow redirects.
pub fn h1() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// h2c client (prior knowledge).
pub fn h2() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub const FORM: &str = "application/x-www-form-urlencoded";

/// A form POST to the token endpoint with HTTP Basic client auth.
pub fn token_request(
    client: &reqwest::Client,
    server: &TestServer,
    body: &str,
) -> reqwest::RequestBuilder {
    client
        .post(server.token_url())
        .basic_auth("reauth-test", Some("s3cret"))
        .header("content-type", FORM)
        .body(body.to_owned())
}

/// `grant_type=refresh_token` with Basic auth.
pub async fn refresh(client: &reqwest::Client, server: &TestServer, rt: &str) -> reqwest::Response {
    token_request(
        client,
        server,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .send()
    .await
    .unwrap()
}

/// `POST /auth/refresh` with `{"refreshToken": rt}`.
pub async fn json_refresh(
    client: &reqwest::Client,
    server: &TestServer,
    rt: &str,
) -> reqwest::Response {
    client
        .post(server.json_refresh_url())
        .json(&serde_json::json!({ "refreshToken": rt }))
        .send()
        .await
        .unwrap()
}

/// `GET /api/items/1` with a bearer token.
pub async fn get_item(
    client: &reqwest::Client,
    server: &TestServer,
    at: &str,
) -> reqwest::Response {
    client
        .get(server.api_url("items/1"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
}

/// Status and JSON body.
pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json)
}

/// A header as a string ("" if absent).
pub fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}
