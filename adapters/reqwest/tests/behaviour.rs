//! Stale 401s, proactive refresh, cancellation, origins and redirects, non-replayable
//! bodies, plain-http refusal, the middleware and closure sources, end to end.

mod common;

use common::*;
use http::Extensions;
use reauth_core::{
    AccessToken, RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken,
    TokenSet,
};
use reauth_reqwest::Client;
use reauth_testkit::{Fault, ServerConfig, TestServer};
use reqwest_middleware::{ClientBuilder as ChainBuilder, Middleware, Next};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Holds a response back for a while when the request carries `x-hold-ms`: a response
/// that was sent with the old token but arrives after the refresh.
struct HoldResponse;

#[async_trait::async_trait]
impl Middleware for HoldResponse {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let hold = req
            .headers()
            .get("x-hold-ms")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let response = next.run(req, extensions).await?;
        if let Some(ms) = hold {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(response)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_401_replays_without_a_second_refresh() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let chain = ChainBuilder::new(s.client.inner().clone())
            .with(s.client.middleware())
            .with(HoldResponse)
            .build();
        s.server.expire_access_tokens();
        let url = s.server.api_url("items/1");
        // `slow` is sent with the expired token; its 401 is held back until well after
        // `fast` has triggered and finished the refresh.
        let slow = {
            let (chain, url) = (chain.clone(), url.clone());
            tokio::spawn(async move { chain.get(url).header("x-hold-ms", "700").send().await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let fast = chain.get(&url).send().await.unwrap();
        assert_eq!(fast.status(), 200);
        assert_eq!(s.server.stats().token_calls, 1);
        // The slow one replays with the new token; its own replay is held too.
        let slow = slow.await.unwrap().unwrap();
        assert_eq!(slow.status(), 200);
        let stats = s.server.stats();
        assert_eq!(
            stats.token_calls, 1,
            "the stale 401 caused a second refresh"
        );
        assert_eq!(stats.api_status(401), 2);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proactive_refresh_means_no_401_across_expiry() {
    bounded(async {
        // Tokens live 3 s; the session refreshes in the background from 1.5 s on.
        let s = setup(
            ServerConfig::default().with_access_token_lifetime(Duration::from_secs(3)),
            |c| {
                c.leeway = Duration::from_millis(500);
                c.refresh_window = Duration::from_millis(500);
            },
        )
        .await;
        let url = s.server.api_url("items/1");
        let started = Instant::now();
        let run = Duration::from_millis(7_500);
        let mut sent = 0;
        while started.elapsed() < run {
            let r = storm(&s.client, &url, 4).await;
            assert!(r.iter().all(|r| *r == Ok(200)), "{r:?}");
            sent += 4;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = s.server.stats();
        assert_eq!(
            stats.api_status(401),
            0,
            "a request met an expired token: {stats:?}"
        );
        assert_eq!(stats.api_status(200), sent);
        // One refresh per token lifetime: 7.5 s of 2 s usable lifetimes.
        assert!((2..=5).contains(&stats.token_calls), "{stats:?}");
        assert_eq!(stats.reuse_detections, 0);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_half_the_waiters_mid_refresh_strands_nobody() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        s.server.expire_access_tokens();
        // The refresh takes a while, so all 1,000 requests are parked behind it.
        s.server
            .push_fault(Fault::Delay(Duration::from_millis(800)));
        let url = s.server.api_url("items/1");
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (client, url) = (s.client.clone(), url.clone());
                tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
            })
            .collect();
        // Wait until they are parked (bounded), then drop every other one.
        let parked_by = Instant::now() + Duration::from_secs(10);
        while s.client.snapshot().waiting < 1000 && Instant::now() < parked_by {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(s.client.snapshot().waiting, 1000);
        let mut kept = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            if i % 2 == 0 {
                t.abort();
            } else {
                kept.push(t);
            }
        }
        for t in kept {
            assert_eq!(t.await.unwrap().unwrap(), 200);
        }
        let stats = s.server.stats();
        assert_eq!(stats.token_calls, 1);
        assert_eq!(stats.reuse_detections, 0);
        assert_eq!(s.client.snapshot().waiting, 0);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_caller_that_triggered_the_refresh_does_not_cancel_it() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        s.server.expire_access_tokens();
        s.server
            .push_fault(Fault::Delay(Duration::from_millis(300)));
        let url = s.server.api_url("items/1");
        let trigger = {
            let (client, url) = (s.client.clone(), url.clone());
            tokio::spawn(async move { client.get(url).send().await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.abort();
        assert_eq!(storm(&s.client, &url, 10).await, vec![Ok(200); 10]);
        assert_eq!(s.server.stats().token_calls, 1);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_another_origin_directly_or_by_redirect() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        // A cross-origin redirect from the API to the second listener.
        let r = s
            .client
            .get(s.server.api_url("redirect?to=/landing"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.url().as_str().starts_with(&s.server.leak_url()));
        // A direct request to another origin.
        let r = s
            .client
            .get(format!("{}/direct", s.server.leak_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // The same through the middleware.
        let chain = ChainBuilder::new(s.client.inner().clone())
            .with(s.client.middleware())
            .build();
        chain
            .get(s.server.api_url("redirect?to=/chained"))
            .send()
            .await
            .unwrap();
        let stats = s.server.stats();
        assert_eq!(stats.leak_requests, 3);
        assert!(
            stats.leaked_authorizations.is_empty(),
            "{:?}",
            stats.leaked_authorizations.len()
        );
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_authorized_but_not_replayed() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let stream = || {
            reqwest::Body::wrap_stream(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
                "hello".as_bytes().to_vec(),
            )]))
        };
        let url = s.server.api_url("echo");
        let ok = s.client.post(&url).body(stream()).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap(), "hello");
        s.server.expire_access_tokens();
        // The caller gets the 401 (the body is gone), but the session refreshes...
        let r = s.client.post(&url).body(stream()).send().await.unwrap();
        assert_eq!(r.status(), 401);
        // ...so the next call goes through with the new token.
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.client.snapshot().generation.get() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = s.client.post(&url).body(stream()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(s.server.stats().token_calls, 1);
        s.server.shutdown().await;
    })
    .await;
}

/// A custom protocol pointing at a plain-http, non-loopback endpoint.
struct InsecureProtocol;

impl RefreshProtocol for InsecureProtocol {
    fn build_request(
        &self,
        _: Option<&RefreshToken>,
    ) -> Result<http::Request<Vec<u8>>, RefreshError> {
        Ok(http::Request::post("http://auth.invalid/refresh")
            .body(Vec::new())
            .unwrap())
    }

    fn parse_response(
        &self,
        _: http::StatusCode,
        _: &http::HeaderMap,
        _: &[u8],
        _: SystemTime,
    ) -> RefreshOutcome {
        unreachable!("the request must never be sent")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_refresh_endpoint_is_refused_unless_loopback() {
    bounded(async {
        // The core refuses to build such an endpoint at all.
        let err = reauth_core::oauth2::TokenEndpoint::new(
            "http://auth.example.com/token".parse().unwrap(),
            reauth_core::oauth2::ClientAuth::none(),
        );
        assert!(err.is_err());
        // A custom protocol gets a permanent error from the adapter, not a request.
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let client = Client::builder(h2c(), session_config(&server))
            .protocol(InsecureProtocol)
            .build()
            .unwrap();
        client.login(token_set(&server.issue_tokens()));
        server.expire_access_tokens();
        let err = client
            .get(server.api_url("items/1"))
            .send()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_gives_the_same_single_flight() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let chain = ChainBuilder::new(s.client.inner().clone())
            .with(s.client.middleware())
            .build();
        s.server.expire_access_tokens();
        let url = s.server.api_url("items/1");
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (chain, url) = (chain.clone(), url.clone());
                tokio::spawn(async move { chain.get(url).send().await.unwrap().status() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(s.server.stats().token_calls, 1);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_can_be_the_refresh_source() {
    bounded(async {
        let server = Arc::new(TestServer::start(ServerConfig::default()).await.unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (issuer, counter) = (server.clone(), calls.clone());
        let client = Client::builder(h2c(), session_config(&server))
            .refresh_fn(move |refresh_token| {
                let (issuer, counter) = (issuer.clone(), counter.clone());
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    assert!(refresh_token.is_some());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let t = issuer.issue_tokens();
                    Ok(TokenSet::new(AccessToken::new(t.access_token).map_err(
                        |_| RefreshError::transient(RefreshErrorKind::Malformed),
                    )?))
                }
            })
            .build()
            .unwrap();
        client.login(token_set(&server.issue_tokens()));
        server.expire_access_tokens();
        assert_eq!(
            storm(&client, &server.api_url("items/1"), 100).await,
            vec![Ok(200); 100]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The closure's set had no refresh token: the old one is kept.
        assert!(client.snapshot().has_refresh_token);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_loaded_from_the_store_are_used_at_start() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let client = Client::builder(h2c(), session_config(&s.server))
            .oauth2(grant(&s.server))
            .store(s.store.clone())
            .build()
            .unwrap();
        assert_eq!(
            storm(&client, &s.server.api_url("items/1"), 1).await,
            vec![Ok(200)]
        );
        assert_eq!(s.server.stats().token_calls, 0);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_acquire_on_first_use_with_one_token_call() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let endpoint = reauth_core::oauth2::TokenEndpoint::new(
            server.token_url().parse().unwrap(),
            reauth_core::oauth2::ClientAuth::secret_basic(
                "reauth-test",
                reauth_core::oauth2::ClientSecret::new("s3cret"),
            ),
        )
        .unwrap();
        let client = Client::builder(h2c(), session_config(&server))
            .oauth2(reauth_core::protocol::OAuth2Grant::client_credentials(
                endpoint,
            ))
            .build()
            .unwrap();
        // No login: the first requests acquire a token, once, for all of them.
        assert_eq!(
            storm(&client, &server.api_url("items/1"), 100).await,
            vec![Ok(200); 100]
        );
        let stats = server.stats();
        assert_eq!(stats.client_credentials_grants, 1);
        assert_eq!(stats.token_calls, 1);
        // An expired token is replaced the same way.
        server.expire_access_tokens();
        assert_eq!(
            storm(&client, &server.api_url("items/1"), 100).await,
            vec![Ok(200); 100]
        );
        assert_eq!(server.stats().client_credentials_grants, 2);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_refreshes_once_for_the_current_generation_and_ignores_stale_reports() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let url = s.server.api_url("items/1");
        let seen = s.client.snapshot().generation;
        // A websocket said the token is bad, twice: one refresh.
        s.client.invalidate(seen);
        s.client.invalidate(seen);
        assert_eq!(storm(&s.client, &url, 20).await, vec![Ok(200); 20]);
        assert_eq!(s.server.stats().token_calls, 1);
        assert!(s.client.snapshot().generation > seen);
        // A late report about the replaced token starts nothing.
        s.client.invalidate(seen);
        assert_eq!(storm(&s.client, &url, 5).await, vec![Ok(200); 5]);
        assert_eq!(s.server.stats().token_calls, 1);
        // Logged out, a report starts nothing either.
        let current = s.client.snapshot().generation;
        s.client.logout();
        s.client.invalidate(current);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(s.server.stats().token_calls, 1);
        s.server.shutdown().await;
    })
    .await;
}

/// A refresh closure that panics does not wedge the session, even with a refresh
/// deadline too far off to ever fire: the refresh is reported abandoned (transient), the
/// backoff retry succeeds, and every waiter gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_refresh_is_abandoned_not_stranded() {
    bounded(async {
        let server = Arc::new(TestServer::start(ServerConfig::default()).await.unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (issuer, counter) = (server.clone(), calls.clone());
        let mut config = session_config(&server);
        config.refresh_timeout = Duration::MAX;
        config.refresh_deadline = Duration::MAX;
        let client = Client::builder(h2c(), config)
            .refresh_fn(move |_| {
                let (issuer, counter) = (issuer.clone(), counter.clone());
                async move {
                    if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("a refresh source bug");
                    }
                    let t = issuer.issue_tokens();
                    Ok(TokenSet::new(AccessToken::new(t.access_token).map_err(
                        |_| RefreshError::transient(RefreshErrorKind::Malformed),
                    )?))
                }
            })
            .jitter_seed(7)
            .build()
            .unwrap();
        client.login(token_set(&server.issue_tokens()));
        let mut events = client.subscribe();
        server.expire_access_tokens();
        let results = tokio::time::timeout(
            Duration::from_secs(10),
            storm(&client, &server.api_url("items/1"), 20),
        )
        .await
        .expect("the waiters were stranded");
        assert_eq!(results, vec![Ok(200); 20]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let abandoned = std::iter::from_fn(|| events.try_recv().ok()).any(|e| {
            matches!(&e, reauth_core::Event::RefreshFailed { error, .. }
                if *error.kind() == RefreshErrorKind::Abandoned)
        });
        assert!(abandoned, "no RefreshFailed(Abandoned) event");
    })
    .await;
}
