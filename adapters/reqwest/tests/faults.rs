//! Every testkit fault: transient ones back off and recover without logging out;
//! permanent ones log out cleanly and send nothing more; a hang hits the refresh timeout.

mod common;

use common::*;
use reauth_core::{Error as AuthError, Event, Phase};
use reauth_testkit::{Fault, ServerConfig};
use std::time::Duration;

async fn recovers_from(fault: Fault, times: usize) {
    bounded(async {
        let s = setup(ServerConfig::default(), |c| {
            c.refresh_timeout = Duration::from_millis(500);
            // A hung call is abandoned at the deadline (it stays in doubt until then).
            c.refresh_deadline = Duration::from_secs(1);
        })
        .await;
        let mut events = s.client.subscribe();
        s.server.expire_access_tokens();
        s.server.push_faults(fault, times);
        let results = storm(&s.client, &s.server.api_url("items/1"), 20).await;
        assert!(
            results.iter().all(|r| *r == Ok(200)),
            "{fault:?}: {results:?}"
        );
        let stats = s.server.stats();
        assert_eq!(stats.token_calls, times as u64 + 1, "{fault:?}: {stats:?}");
        assert_eq!(stats.token_ok, 1);
        assert_eq!(s.client.snapshot().phase, Phase::Valid);
        let mut failures = 0;
        while let Ok(e) = events.try_recv() {
            match e {
                Event::RefreshFailed { retry_at, .. } => {
                    assert!(retry_at.is_some());
                    failures += 1;
                }
                Event::LoggedOut { .. } => panic!("{fault:?} logged the session out"),
                _ => {}
            }
        }
        assert_eq!(failures, times, "{fault:?}");
        assert!(stored(&s.store).is_some());
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_back_off_and_recover_without_logging_out() {
    for fault in [
        Fault::ServerError,
        Fault::Unavailable {
            retry_after: Some(Duration::from_secs(1)),
        },
        Fault::TooManyRequests { retry_after: None },
        Fault::MalformedJson,
        Fault::Oversized,
        Fault::ConnectionReset,
        Fault::Hang,
    ] {
        recovers_from(fault, 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_refresh_is_still_one_refresh() {
    recovers_from(Fault::Delay(Duration::from_millis(300)), 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::Unavailable {
            retry_after: Some(Duration::from_secs(1)),
        });
        let started = std::time::Instant::now();
        assert_eq!(
            storm(&s.client, &s.server.api_url("items/1"), 1).await,
            vec![Ok(200)]
        );
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "retried before Retry-After"
        );
        s.server.shutdown().await;
    })
    .await;
}

async fn logs_out_on(fault: Fault) {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let mut events = s.client.subscribe();
        s.server.expire_access_tokens();
        s.server.push_fault(fault);
        let results = storm(&s.client, &s.server.api_url("items/1"), 50).await;
        for r in &results {
            let e = r.as_ref().expect_err("every waiter fails");
            assert!(e.starts_with("logged out"), "{fault:?}: {e}");
        }
        assert_eq!(s.client.snapshot().phase, Phase::LoggedOut);
        assert!(tombstoned(&s.store).await, "the store holds no tombstone");
        let logged_out = std::iter::from_fn(|| events.try_recv().ok())
            .any(|e| matches!(e, Event::LoggedOut { .. }));
        assert!(logged_out, "no LoggedOut event");
        // Nothing more reaches the API or the token endpoint until the next login.
        let before = s.server.stats();
        let after_logout = storm(&s.client, &s.server.api_url("items/1"), 10).await;
        assert!(after_logout
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.starts_with("logged out"))));
        let after = s.server.stats();
        assert_eq!(before.api_calls, after.api_calls);
        assert_eq!(before.token_calls, after.token_calls);
        // A new login works again.
        s.client.login(token_set(&s.server.issue_tokens()));
        assert_eq!(
            storm(&s.client, &s.server.api_url("items/1"), 1).await,
            vec![Ok(200)]
        );
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_logs_out_and_sends_nothing_more() {
    logs_out_on(Fault::InvalidGrant).await;
}

/// `invalid_client` blames the app's credentials, not the user's refresh token: the
/// waiters fail with it, the tokens stay (no tombstone, no logout), and no refresh is
/// tried again before the backoff cap; after it, the next request refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_keeps_the_tokens_and_holds_refreshing_back() {
    bounded(async {
        let s = setup(ServerConfig::default(), |c| {
            c.backoff.cap = Duration::from_millis(500);
        })
        .await;
        let mut events = s.client.subscribe();
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::InvalidClient);
        let results = storm(&s.client, &s.server.api_url("items/1"), 20).await;
        for r in &results {
            let e = r.as_ref().expect_err("every waiter fails");
            assert!(e.contains("`invalid_client`"), "{e}");
        }
        assert_ne!(s.client.snapshot().phase, Phase::LoggedOut);
        assert!(stored(&s.store).is_some(), "the tokens were dropped");
        let failed = std::iter::from_fn(|| events.try_recv().ok()).any(|e| match e {
            Event::RefreshFailed { error, .. } => error.is_configuration(),
            Event::LoggedOut { .. } => panic!("invalid_client logged out"),
            _ => false,
        });
        assert!(failed, "no RefreshFailed event");
        // Held back: more requests fail at once, without a token call.
        let again = storm(&s.client, &s.server.api_url("items/1"), 5).await;
        assert!(again
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.contains("invalid_client"))));
        assert_eq!(s.server.stats().token_calls, 1);
        // After the cap, the next request refreshes (the fault is spent) and succeeds.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            storm(&s.client, &s.server.api_url("items/1"), 1).await,
            vec![Ok(200)]
        );
        assert_eq!(s.server.stats().token_calls, 2);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_family_logs_out() {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        s.server.revoke_family(&s.tokens);
        let r = storm(&s.client, &s.server.api_url("items/1"), 5).await;
        assert!(
            r.iter()
                .all(|r| r.as_ref().is_err_and(|e| e.contains("invalid_grant"))),
            "{r:?}"
        );
        assert_eq!(s.server.stats().token_calls, 1);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_past_its_deadline_gets_a_timeout() {
    bounded(async {
        let s = setup(ServerConfig::default(), |c| {
            c.refresh_timeout = Duration::from_secs(30);
            c.waiter_timeout = Duration::from_millis(500);
        })
        .await;
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::Hang);
        let started = std::time::Instant::now();
        let err = s
            .client
            .get(s.server.api_url("items/1"))
            .send()
            .await
            .unwrap_err();
        assert!(matches!(err.auth(), Some(AuthError::Timeout)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        s.server.shutdown().await;
    })
    .await;
}

/// A token endpoint that redirects is a misconfiguration: the refresh request (refresh
/// token, client secret) is never sent on, even by a token client that follows redirects
/// itself; the waiters fail with a typed error naming the `Location` without its query;
/// nothing is logged out, and refreshing waits for the backoff cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_token_endpoint_is_never_followed() {
    bounded(async {
        for status in [307, 302] {
            let server = reauth_testkit::TestServer::start(ServerConfig::default())
                .await
                .unwrap();
            let store = std::sync::Arc::new(reauth_core::MemoryStore::new());
            let client = reauth_reqwest::Client::builder(h2c(), session_config(&server))
                .oauth2(grant(&server))
                // reqwest's default builder follows up to ten redirects.
                .token_client(reqwest::Client::builder())
                .store(store.clone())
                .jitter_seed(7)
                .build()
                .unwrap();
            client.login(token_set(&server.issue_tokens()));
            server.expire_access_tokens();
            let sink = format!("redirected to {}/token-sink;", server.leak_url());
            server.push_fault(Fault::Redirect(status));
            let one = storm(&client, &server.api_url("items/1"), 1).await;
            let e = one[0].as_ref().expect_err("the request fails");
            assert!(e.contains(&sink), "{status}: {e}");
            assert!(!e.contains("next=here"), "{status}: {e}");
            // Held back until the backoff cap: a storm fails at once, with no token call.
            let results = storm(&client, &server.api_url("items/1"), 10).await;
            for r in &results {
                let e = r.as_ref().expect_err("every request fails");
                assert!(e.contains(&sink), "{status}: {e}");
            }
            let stats = server.stats();
            assert_eq!(stats.leak_requests, 0, "{status}: followed");
            assert_eq!(stats.token_calls, 1, "{status}: retried");
            assert_ne!(client.snapshot().phase, Phase::LoggedOut);
            assert!(
                stored(&store).is_some(),
                "{status}: the tokens were dropped"
            );
            // After the cap (200 ms here), the next request refreshes and succeeds.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after = storm(&client, &server.api_url("items/1"), 1).await;
            assert_eq!(after, vec![Ok(200)]);
            assert_eq!(server.stats().token_calls, 2);
            server.shutdown().await;
        }
    })
    .await;
}
