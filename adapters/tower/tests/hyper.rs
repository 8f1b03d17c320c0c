//! hyper-util's client (HTTP/1.1 and h2c) wrapped by the layer, against the testkit:
//! storms, faults, cancellation, origins, redirects, bodies.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{Full, StreamBody};
use reauth_testkit::{Fault, ServerConfig};
use std::time::{Duration, Instant};

async fn storm_of(protocol: Protocol, n: usize) {
    bounded(async {
        let s = setup(protocol, ServerConfig::default(), |b| b).await;
        let url = s.server.api_url("items/1");
        assert_eq!(storm(&s.service, &url, 1).await, vec![Ok(200)]);
        s.server.expire_access_tokens();
        s.server.reset_stats();
        let started = Instant::now();
        let results = storm(&s.service, &url, n).await;
        let took = started.elapsed();
        let ok = results.iter().filter(|r| **r == Ok(200)).count();
        assert_eq!(
            ok,
            n,
            "failures: {:?}",
            results.iter().find(|r| **r != Ok(200))
        );
        let stats = s.server.stats();
        assert_eq!(stats.token_calls, 1, "{stats:?}");
        assert_eq!(stats.refresh_grants, 1);
        assert_eq!(stats.reuse_detections, 0);
        assert_eq!(stats.api_status(200), n as u64);
        // The storm was real: requests met the expired token.
        assert!((1..=n as u64).contains(&stats.api_status(401)), "{stats:?}");
        assert_eq!(s.layer.snapshot().generation.get(), 2);
        eprintln!(
            "storm {protocol:?} n={n}: {took:?}, token calls {}, api 401s {}",
            stats.token_calls,
            stats.api_status(401)
        );
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_storm_of_1_refreshes_once() {
    storm_of(Protocol::Http1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_storm_of_100_refreshes_once() {
    storm_of(Protocol::Http1, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_storm_of_1_refreshes_once() {
    storm_of(Protocol::H2c, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_storm_of_100_refreshes_once() {
    storm_of(Protocol::H2c, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_storm_of_10000_refreshes_once() {
    storm_of(Protocol::H2c, 10_000).await;
}

/// The token endpoint answers 503, then works: one episode, two calls, all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_from_the_token_endpoint_is_retried() {
    bounded(async {
        let s = setup(Protocol::H2c, ServerConfig::default(), |b| b).await;
        let url = s.server.api_url("items/1");
        s.server.expire_access_tokens();
        s.server
            .push_fault(Fault::Unavailable { retry_after: None });
        s.server.reset_stats();
        let results = storm(&s.service, &url, 50).await;
        assert!(results.iter().all(|r| *r == Ok(200)), "{results:?}");
        let stats = s.server.stats();
        assert_eq!(
            (
                stats.token_calls,
                stats.faults("unavailable"),
                stats.refresh_grants
            ),
            (2, 1, 1),
            "{stats:?}"
        );
        s.server.shutdown().await;
    })
    .await;
}

/// Half of the requests waiting for a slow refresh are dropped: the others resolve, the
/// session forgets the dropped ones, one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_half_the_waiters_leaves_the_rest_working() {
    bounded(async {
        let s = setup(Protocol::H2c, ServerConfig::default(), |b| b).await;
        let url = s.server.api_url("items/1");
        s.server.expire_access_tokens();
        s.server
            .push_fault(Fault::Delay(Duration::from_millis(600)));
        s.server.reset_stats();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (service, url) = (s.service.clone(), url.clone());
                tokio::spawn(async move { send(service, get(&url)).await.map(|(s, _)| s) })
            })
            .collect();
        // All of them reach the session and park behind the delayed refresh.
        let parked = async {
            while s.layer.snapshot().waiting < 200 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), parked)
            .await
            .expect("200 requests parked");
        let (dropped, kept): (Vec<_>, Vec<_>) =
            tasks.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        for (_, t) in &dropped {
            t.abort();
        }
        for (_, t) in dropped {
            assert!(t.await.unwrap_err().is_cancelled());
        }
        for (_, t) in kept {
            assert_eq!(t.await.unwrap(), Ok(200));
        }
        assert_eq!(s.layer.snapshot().waiting, 0);
        let stats = s.server.stats();
        assert_eq!(stats.token_calls, 1, "{stats:?}");
        s.server.shutdown().await;
    })
    .await;
}

/// A request to an origin not on the allow-list goes out without the token; a 307 from
/// the API is handed back as is (hyper follows no redirect), nothing leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_gets_no_token_and_redirects_are_not_followed() {
    bounded(async {
        let s = setup(Protocol::Http1, ServerConfig::default(), |b| b).await;
        let foreign = format!("{}/anything", s.server.leak_url().trim_end_matches('/'));
        assert_eq!(send(s.service.clone(), get(&foreign)).await.unwrap().0, 200);
        let redirect = s.server.api_url("redirect?to=/x");
        assert_eq!(
            send(s.service.clone(), get(&redirect)).await.unwrap().0,
            307
        );
        let stats = s.server.stats();
        assert_eq!(stats.leak_requests, 1);
        assert!(stats.leaked_authorizations.is_empty(), "{stats:?}");
        // A 401 from the foreign origin is not about our token: no refresh.
        let unauthorized = format!("{}/unauthorized", s.server.leak_url().trim_end_matches('/'));
        assert_eq!(
            send(s.service.clone(), get(&unauthorized)).await.unwrap().0,
            401
        );
        assert_eq!(s.server.stats().token_calls, 0);
        s.server.shutdown().await;
    })
    .await;
}

fn echo(
    url: &str,
    body: impl http_body::Body<Data = Bytes, Error = std::io::Error> + Send + 'static,
) -> http::Request<http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>> {
    use http_body_util::BodyExt;
    http::Request::post(url)
        .header("content-type", "application/octet-stream")
        .body(body.boxed_unsync())
        .unwrap()
}

fn stream_of(
    chunks: usize,
    size: usize,
) -> StreamBody<
    futures_util::stream::BoxStream<'static, Result<http_body::Frame<Bytes>, std::io::Error>>,
> {
    use futures_util::StreamExt;
    // Each chunk after a yield: the body is not ready at once, so it streams.
    let stream = futures_util::stream::iter(0..chunks).then(move |i| async move {
        tokio::task::yield_now().await;
        Ok(http_body::Frame::data(Bytes::from(vec![
            b'a' + (i % 26)
                as u8;
            size
        ])))
    });
    StreamBody::new(stream.boxed())
}

/// Bodies after expiry: in memory (any size) and streaming under the cap are replayed
/// and echoed whole (also when the server answers before the upload ends: the unsent
/// rest is kept); a streaming body over the cap (its first chunk already is) is sent
/// once: the caller gets the 401, and the session refreshed for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_under_the_cap_are_replayed_and_over_it_are_not() {
    bounded(async {
        let s = setup(Protocol::H2c, ServerConfig::default(), |b| {
            b.body_limit(16 * 1024)
        })
        .await;
        let url = s.server.api_url("echo");

        s.server.expire_access_tokens();
        let big = Bytes::from(vec![b'x'; 200 * 1024]);
        let (status, echoed) = send(
            s.service.clone(),
            echo(&url, Full::new(big.clone()).map_err(|never| match never {})),
        )
        .await
        .unwrap();
        assert_eq!((status, echoed.len()), (200, big.len()));
        assert_eq!(s.server.stats().token_calls, 1);

        s.server.expire_access_tokens();
        let (status, echoed) = send(s.service.clone(), echo(&url, stream_of(8, 1024)))
            .await
            .unwrap();
        assert_eq!((status, echoed.len()), (200, 8 * 1024));
        assert_eq!(&echoed[..3], b"aaa");
        assert_eq!(&echoed[1024..1027], b"bbb");
        assert_eq!(s.server.stats().token_calls, 2);

        // Two refreshed tokens refused in a row within `backoff.cap` of their arrival hold
        // refreshing back (by design: an API that refuses every fresh token). Not what this
        // test is about: let the cap pass, so the third refusal counts as a first.
        tokio::time::sleep(session_config(&s.server).backoff.cap + Duration::from_millis(50)).await;
        s.server.expire_access_tokens();
        let mut events = s.layer.subscribe();
        let (status, _) = send(s.service.clone(), echo(&url, stream_of(2, 32 * 1024)))
            .await
            .unwrap();
        assert_eq!(status, 401, "a body over the cap is not replayed");
        // The refresh runs in a task of its own: wait for its event.
        loop {
            if let reauth_core::Event::Refreshed { .. } = events.recv().await.unwrap() {
                break;
            }
        }
        let stats = s.server.stats();
        assert_eq!(
            stats.token_calls, 3,
            "the session still refreshed: {stats:?}"
        );
        // ...so the next one goes through with the new token at once.
        let (status, echoed) = send(s.service.clone(), echo(&url, stream_of(2, 32 * 1024)))
            .await
            .unwrap();
        assert_eq!((status, echoed.len()), (200, 64 * 1024));
        assert_eq!(s.server.stats().token_calls, 3);
        s.server.shutdown().await;
    })
    .await;
}

/// A token service of the caller's own (`token_service`): the refresh goes through it,
/// not through the layer's default client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_goes_through_a_token_service_of_the_callers() {
    bounded(async {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let token_service = {
            let seen = seen.clone();
            tower::service_fn(move |request: http::Request<Full<Bytes>>| {
                seen.lock().unwrap().push(request.uri().to_string());
                client.request(request)
            })
        };
        let s = setup(Protocol::Http1, ServerConfig::default(), |b| {
            b.token_service(token_service)
        })
        .await;
        let url = s.server.api_url("items/1");
        assert_eq!(send(s.service.clone(), get(&url)).await.unwrap().0, 200);
        assert!(seen.lock().unwrap().is_empty(), "no refresh yet");
        s.server.expire_access_tokens();
        s.server.reset_stats();
        assert_eq!(send(s.service.clone(), get(&url)).await.unwrap().0, 200);
        assert_eq!(*seen.lock().unwrap(), [s.server.token_url()]);
        let stats = s.server.stats();
        assert_eq!(
            (stats.token_calls, stats.refresh_grants),
            (1, 1),
            "{stats:?}"
        );
        assert_eq!(s.layer.snapshot().generation.get(), 2);
        s.server.shutdown().await;
    })
    .await;
}

use http_body_util::BodyExt as _;
use std::sync::{Arc, Mutex};
