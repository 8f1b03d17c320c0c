//! Redirects, followed by the adapter hop by hop: the token only on hops to allowed
//! origins, a response counted only if its hop carried the token, reqwest's method and
//! body rules, a hop limit; through the client and through the middleware, end to end.

mod common;

use common::*;
use reauth_reqwest::{Client, Error};
use reauth_testkit::{ServerConfig, TestServer};
use reqwest_middleware::{ClientBuilder as ChainBuilder, ClientWithMiddleware};
use std::time::Duration;

/// The client's own chain: the middleware over the client's inner client, which follows
/// no redirects.
fn chain(client: &Client) -> ClientWithMiddleware {
    ChainBuilder::new(client.inner().clone())
        .with(client.middleware())
        .build()
}

/// The adapter's error inside a middleware chain's error.
fn adapter_error(e: &reqwest_middleware::Error) -> Option<&Error> {
    match e {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<Error>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

fn leaked(server: &TestServer) -> usize {
    server.stats().leaked_authorizations.len()
}

/// A (allowed) → B (another origin) → B′ (B's origin again). reqwest's own policy hands
/// the token to B′ (the testkit's `moved_loop_and_hop_routes` shows it); the adapter's
/// chain sends it to A alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_a_b_b_prime_sends_no_token_beyond_a() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let url = s.server.api_url("redirect?to=/hop%3Fto%3D/landing");
        let r = s.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.url().as_str(), format!("{}/landing", s.server.leak_url()));
        let r = chain(&s.client).get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let stats = s.server.stats();
        assert_eq!(stats.leak_requests, 4, "both chains reached B and B′");
        assert_eq!(leaked(&s.server), 0, "the token went beyond A");
        // A saw the token: `/api/redirect` answers 401 without one.
        assert_eq!(stats.tokens_seen("/api/redirect"), 1);
        s.server.shutdown().await;
    })
    .await;
}

/// A → A′ on the same origin keeps the token, and a 401 from A′ (the token expired) is
/// the token's: one refresh, the chain replayed from A, 200. For every redirect status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_origin_redirect_keeps_the_token_and_its_401_refreshes() {
    bounded(async {
        // Fresh tokens refused in a row (the test expires each one at once) would hold
        // refreshing back for up to the backoff cap: none here.
        let s = setup(ServerConfig::default(), |c| c.backoff.cap = Duration::ZERO).await;
        let mut refreshes = 0;
        for status in [301, 302, 303, 307, 308] {
            let url = s
                .server
                .api_url(&format!("moved?to=/api/items/1&status={status}"));
            let r = s.client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{status}");
            assert_eq!(r.url().as_str(), s.server.api_url("items/1"));
            s.server.expire_access_tokens();
            let r = s.client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{status}: refreshed and replayed");
            refreshes += 1;
            assert_eq!(s.server.stats().token_calls, refreshes, "{status}");
            // And through the middleware.
            s.server.expire_access_tokens();
            let r = chain(&s.client).get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{status}: through the middleware");
            refreshes += 1;
            assert_eq!(s.server.stats().token_calls, refreshes, "{status}");
        }
        assert_eq!(leaked(&s.server), 0);
        s.server.shutdown().await;
    })
    .await;
}

/// A → B → A: the token on both visits to A, never at B. A 401 from a hop that did not
/// carry the token (B's) is handed over as is and never refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_b_a_carries_the_token_only_where_allowed_and_a_401_without_it_never_refreshes() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let there_and_back = s.server.api_url("redirect?to=/bounce%3Fto%3D/api/items/1");
        let r = s.client.get(&there_and_back).send().await.unwrap();
        assert_eq!(r.status(), 200, "the token was attached again back on A");
        assert_eq!(r.url().as_str(), s.server.api_url("items/1"));
        let r = chain(&s.client).get(&there_and_back).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // A → B, where B answers 401 `invalid_token` to a request that carried nothing.
        let to_b = s.server.api_url("redirect?to=/unauthorized");
        for _ in 0..3 {
            let r = s.client.get(&to_b).send().await.unwrap();
            assert_eq!(r.status(), 401);
            assert!(r.url().as_str().starts_with(&s.server.leak_url()));
            let r = chain(&s.client).get(&to_b).send().await.unwrap();
            assert_eq!(r.status(), 401);
        }
        let stats = s.server.stats();
        assert_eq!(
            stats.token_calls, 0,
            "a refresh for a 401 the token never got"
        );
        assert_eq!(stats.leak_requests, 8);
        assert_eq!(leaked(&s.server), 0);
        assert_eq!(s.client.snapshot().phase, reauth_core::Phase::Valid);
        s.server.shutdown().await;
    })
    .await;
}

/// A request that starts on an origin that is not allowed carries no token on any hop,
/// even one that lands on an allowed origin, and its 401 never refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_that_starts_without_the_token_stays_without() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let url = format!("{}/bounce?to=/api/items/1", s.server.leak_url());
        let r = s.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.url().as_str(), s.server.api_url("items/1"));
        let r = chain(&s.client).get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(s.server.stats().token_calls, 0);
        assert_eq!(s.server.stats().tokens_seen("/api/items/{id}"), 0);
        s.server.shutdown().await;
    })
    .await;
}

/// A redirect loop ends with a typed error after the limit (10 by default, as reqwest);
/// with a limit of 0 nothing is followed and the caller gets the 3xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_redirects_is_a_typed_error() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let url = s.server.api_url("loop");
        let err = s.client.get(&url).send().await.unwrap_err();
        assert!(
            matches!(err, Error::TooManyRedirects { limit: 10 }),
            "{err:?}"
        );
        let err = chain(&s.client).get(&url).send().await.unwrap_err();
        assert!(
            matches!(
                adapter_error(&err),
                Some(Error::TooManyRedirects { limit: 10 })
            ),
            "{err:?}"
        );
        assert_eq!(s.server.stats().api_calls, 22, "1 + 10 hops, twice");
        let config = session_config(&s.server);
        let none = Client::builder(h2c(), config)
            .oauth2(grant(&s.server))
            .max_redirects(0)
            .build()
            .unwrap();
        none.login(token_set(&s.server.issue_tokens()));
        let r = none.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let r = none
            .get(s.server.api_url("moved?to=/api/items/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 307);
        s.server.shutdown().await;
    })
    .await;
}

/// A 303 turns a `POST` into a `GET` without the body (`/api/items` answers 405 to a
/// `POST`); so do 301 and 302 (as reqwest); 307 and 308 re-send the `POST` and its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn see_other_turns_a_post_into_a_get_and_307_re_sends_the_body() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        for status in [301, 302, 303] {
            let url = s
                .server
                .api_url(&format!("moved?to=/api/items/1&status={status}"));
            let r = s.client.post(&url).body("payload").send().await.unwrap();
            assert_eq!(r.status(), 200, "{status}");
        }
        for status in [307, 308] {
            let url = s
                .server
                .api_url(&format!("moved?to=/api/echo&status={status}"));
            let r = s
                .client
                .post(&url)
                .header("content-type", "text/plain")
                .body("payload")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{status}");
            assert_eq!(r.text().await.unwrap(), "payload");
            let r = chain(&s.client)
                .post(&url)
                .body("payload")
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), "payload", "{status}: middleware");
        }
        s.server.shutdown().await;
    })
    .await;
}

/// A 307 or 308 would re-send the body, and a stream cannot be sent twice: the caller
/// gets the 3xx, as from reqwest. A 303 needs no body, so it is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_307_with_a_streaming_body_is_not_followed() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let stream = || {
            reqwest::Body::wrap_stream(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
                b"streamed".to_vec(),
            )]))
        };
        for status in [307, 308] {
            let url = s
                .server
                .api_url(&format!("moved?to=/api/echo&status={status}"));
            let r = s.client.post(&url).body(stream()).send().await.unwrap();
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.url().as_str(), url);
            let r = chain(&s.client)
                .post(&url)
                .body(stream())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), status, "middleware");
        }
        let r = s
            .client
            .post(s.server.api_url("moved?to=/api/items/1&status=303"))
            .body(stream())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            s.server.stats().tokens_seen("/api/echo"),
            0,
            "never re-sent"
        );
        s.server.shutdown().await;
    })
    .await;
}

/// The middleware over a client that follows redirects itself (reqwest's default): the
/// token may already have gone along that client's chain, so the request fails with a
/// typed error naming the fix, its status is not counted, and a warning says so once.
#[tokio::test]
async fn the_middleware_over_a_client_that_follows_redirects_fails_loudly() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let following = ChainBuilder::new(reqwest::Client::new())
            .with(s.client.middleware())
            .build();
        s.server.expire_access_tokens();
        for _ in 0..2 {
            let err = following
                .get(s.server.api_url("moved?to=/api/items/1"))
                .send()
                .await
                .unwrap_err();
            assert!(
                matches!(adapter_error(&err), Some(Error::ClientFollowedRedirect)),
                "{err:?}"
            );
            assert!(err.to_string().contains("Policy::none()"), "{err}");
        }
        assert_eq!(s.server.stats().token_calls, 0, "its 401 was not counted");
        // Without a redirect, the same chain works.
        s.client.login(token_set(&s.server.issue_tokens()));
        let r = following.get(s.server.api_url("items/1")).send().await;
        assert_eq!(r.unwrap().status(), 200);
        s.server.shutdown().await;
    })
    .await;
    let logs = capture.text();
    assert_eq!(
        logs.matches("followed a redirect itself").count(),
        1,
        "one warning: {logs}"
    );
    assert!(logs.contains("Policy::none()"));
}
