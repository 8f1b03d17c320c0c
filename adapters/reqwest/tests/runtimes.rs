//! A client used after the runtime it was built on is gone: its timers and refreshes move
//! to the runtime of the request; with no runtime at all a request fails at once with a
//! typed error. Never a hang.

mod common;

use common::*;
use reauth_reqwest::{Client, Error};
use reauth_testkit::{ServerConfig, TestServer};
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A server on a runtime of its own, and a logged-in client built on a runtime that is
/// then dropped.
fn orphan() -> (tokio::runtime::Runtime, TestServer, Client) {
    let server_runtime = runtime();
    let server = server_runtime
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let built_on = runtime();
    let client = built_on.block_on(async {
        Client::builder(h2c(), session_config(&server))
            .oauth2(grant(&server))
            .jitter_seed(7)
            .build()
            .unwrap()
    });
    client.login(token_set(&server.issue_tokens()));
    drop(built_on);
    (server_runtime, server, client)
}

/// Requests from a second runtime, after the first is gone: a 401 storm refreshes once on
/// the new runtime and every request succeeds, long before the waiter timeout (20 s).
#[test]
fn a_client_outlives_the_runtime_it_was_built_on() {
    let (server_runtime, server, client) = orphan();
    let second = runtime();
    second.block_on(async {
        let url = server.api_url("items/1");
        let started = Instant::now();
        assert_eq!(storm(&client, &url, 1).await, vec![Ok(200)]);
        server.expire_access_tokens();
        let statuses = tokio::time::timeout(Duration::from_secs(10), storm(&client, &url, 20))
            .await
            .expect("the requests hung");
        assert_eq!(statuses, vec![Ok(200); 20]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.stats().token_calls, 1);
    });
    // A third runtime, after the second is gone too (the timers moved there).
    drop(second);
    let third = runtime();
    third.block_on(async {
        server.expire_access_tokens();
        let url = server.api_url("items/1");
        let statuses = tokio::time::timeout(Duration::from_secs(10), storm(&client, &url, 5))
            .await
            .expect("the requests hung");
        assert_eq!(statuses, vec![Ok(200); 5]);
    });
    server_runtime.block_on(server.shutdown());
}

/// The runtime the timer runs on goes away while requests wait for a backoff retry that
/// only the timer fires: the waiting requests start the timer again on their own runtime,
/// and the retry comes on time instead of after the waiter timeout (20 s).
#[test]
fn waiting_requests_take_the_timer_over_when_its_runtime_goes() {
    let server_runtime = runtime();
    let server = server_runtime
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let built_on = runtime();
    let client = built_on.block_on(async {
        let mut config = session_config(&server);
        // Long enough to drop the first runtime before the retry is due.
        config.backoff.base = Duration::from_millis(600);
        config.backoff.cap = Duration::from_millis(1200);
        Client::builder(h2c(), config)
            .oauth2(grant(&server))
            .jitter_seed(7)
            .build()
            .unwrap()
    });
    client.login(token_set(&server.issue_tokens()));
    server.expire_access_tokens();
    server.push_fault(reauth_testkit::Fault::ServerError);
    let second = runtime();
    let started = Instant::now();
    let storm = second.spawn({
        let (client, url) = (client.clone(), server.api_url("items/1"));
        async move { storm(&client, &url, 10).await }
    });
    // Wait (bounded) for the failed refresh: the requests now wait for the retry.
    while client.snapshot().phase != reauth_core::Phase::Backoff {
        assert!(started.elapsed() < Duration::from_secs(5), "no backoff");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(built_on);
    let statuses = second.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), storm)
            .await
            .expect("the requests hung")
            .unwrap()
    });
    assert_eq!(statuses, vec![Ok(200); 10]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.stats().token_calls, 2);
    server_runtime.block_on(server.shutdown());
}

/// Polled outside any tokio runtime once the one it was built on is gone, a request fails
/// at its first poll with [`Error::NoRuntime`].
#[test]
fn without_any_runtime_a_request_fails_at_once() {
    let (server_runtime, server, client) = orphan();
    let mut request = Box::pin(client.get(server.api_url("items/1")).send());
    let mut cx = Context::from_waker(Waker::noop());
    match request.as_mut().poll(&mut cx) {
        Poll::Ready(Err(Error::NoRuntime)) => {}
        Poll::Ready(other) => panic!("{other:?}"),
        Poll::Pending => panic!("a request without a runtime waits"),
    }
    server_runtime.block_on(server.shutdown());
}
