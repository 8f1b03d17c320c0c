//! Every testkit fault: transient ones back off and recover without logging out (the
//! retries driven by the blocked callers themselves, there is no timer thread); permanent
//! ones log out cleanly and send nothing more; a hang hits the refresh timeout.

mod common;

use common::*;
use reauth_core::{Error as AuthError, Event, Phase};
use reauth_testkit::{Fault, ServerConfig};
use std::time::{Duration, Instant};

fn recovers_from(fault: Fault, times: usize) {
    bounded(move || {
        let s = setup(ServerConfig::default(), |c| {
            c.refresh_timeout = Duration::from_millis(500);
            // A hung call is abandoned at the deadline (it stays in doubt until then).
            c.refresh_deadline = Duration::from_secs(1);
        });
        let events = s.agent.subscribe();
        s.server.expire_access_tokens();
        s.server.push_faults(fault, times);
        let results = storm(&s.agent, &s.server.api_url("items/1"), 20);
        assert!(
            results.iter().all(|r| *r == Ok(200)),
            "{fault:?}: {results:?}"
        );
        let stats = s.server.stats();
        assert_eq!(stats.token_calls, times as u64 + 1, "{fault:?}: {stats:?}");
        assert_eq!(stats.token_ok, 1);
        assert_eq!(s.agent.snapshot().phase, Phase::Valid);
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
        s.server.shutdown();
    });
}

#[test]
fn server_error_backs_off_and_recovers() {
    recovers_from(Fault::ServerError, 2);
}

#[test]
fn unavailable_with_retry_after_backs_off_and_recovers() {
    recovers_from(
        Fault::Unavailable {
            retry_after: Some(Duration::from_secs(1)),
        },
        2,
    );
}

#[test]
fn too_many_requests_backs_off_and_recovers() {
    recovers_from(Fault::TooManyRequests { retry_after: None }, 2);
}

#[test]
fn malformed_json_backs_off_and_recovers() {
    recovers_from(Fault::MalformedJson, 2);
}

#[test]
fn an_oversized_response_backs_off_and_recovers() {
    recovers_from(Fault::Oversized, 2);
}

#[test]
fn a_connection_reset_backs_off_and_recovers() {
    recovers_from(Fault::ConnectionReset, 2);
}

#[test]
fn a_hanging_token_endpoint_times_out_and_recovers() {
    recovers_from(Fault::Hang, 2);
}

#[test]
fn a_delayed_refresh_is_still_one_refresh() {
    recovers_from(Fault::Delay(Duration::from_millis(300)), 0);
}

#[test]
fn retry_after_is_honoured() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::Unavailable {
            retry_after: Some(Duration::from_secs(1)),
        });
        let started = Instant::now();
        assert_eq!(
            storm(&s.agent, &s.server.api_url("items/1"), 1),
            vec![Ok(200)]
        );
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "retried before Retry-After"
        );
        s.server.shutdown();
    });
}

fn logs_out_on(fault: Fault) {
    bounded(move || {
        let s = setup(ServerConfig::default(), |_| {});
        let events = s.agent.subscribe();
        s.server.expire_access_tokens();
        s.server.push_fault(fault);
        let results = storm(&s.agent, &s.server.api_url("items/1"), 50);
        for r in &results {
            let e = r.as_ref().expect_err("every waiter fails");
            assert!(e.starts_with("logged out"), "{fault:?}: {e}");
        }
        assert_eq!(s.agent.snapshot().phase, Phase::LoggedOut);
        assert!(tombstoned(&s.store), "the store holds no tombstone");
        let logged_out = events
            .try_iter()
            .any(|e| matches!(e, Event::LoggedOut { .. }));
        assert!(logged_out, "no LoggedOut event");
        // Nothing more reaches the API or the token endpoint until the next login.
        let before = s.server.stats();
        let after_logout = storm(&s.agent, &s.server.api_url("items/1"), 10);
        assert!(after_logout
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.starts_with("logged out"))));
        let after = s.server.stats();
        assert_eq!(before.api_calls, after.api_calls);
        assert_eq!(before.token_calls, after.token_calls);
        // A new login works again.
        s.agent.login(token_set(&s.server.issue_tokens()));
        assert_eq!(
            storm(&s.agent, &s.server.api_url("items/1"), 1),
            vec![Ok(200)]
        );
        s.server.shutdown();
    });
}

#[test]
fn invalid_grant_logs_out_and_sends_nothing_more() {
    logs_out_on(Fault::InvalidGrant);
}

/// `invalid_client` blames the app's credentials, not the user's refresh token: the
/// waiters fail with it, the tokens stay (no tombstone, no logout), and no refresh is
/// tried again before the backoff cap; after it, the next request refreshes.
#[test]
fn invalid_client_keeps_the_tokens_and_holds_refreshing_back() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |c| {
            c.backoff.cap = Duration::from_millis(500);
        });
        let events = s.agent.subscribe();
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::InvalidClient);
        let results = storm(&s.agent, &s.server.api_url("items/1"), 20);
        for r in &results {
            let e = r.as_ref().expect_err("every waiter fails");
            assert!(e.contains("`invalid_client`"), "{e}");
        }
        assert_ne!(s.agent.snapshot().phase, Phase::LoggedOut);
        assert!(stored(&s.store).is_some(), "the tokens were dropped");
        let failed = events.try_iter().any(|e| match e {
            Event::RefreshFailed { error, .. } => error.is_configuration(),
            Event::LoggedOut { .. } => panic!("invalid_client logged out"),
            _ => false,
        });
        assert!(failed, "no RefreshFailed event");
        assert_eq!(s.server.stats().token_calls, 1);
        // After the cap, the next request refreshes (the fault is spent) and succeeds.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            storm(&s.agent, &s.server.api_url("items/1"), 1),
            vec![Ok(200)]
        );
        assert_eq!(s.server.stats().token_calls, 2);
        s.server.shutdown();
    });
}

#[test]
fn a_revoked_family_logs_out() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        s.server.revoke_family(&s.tokens);
        let r = storm(&s.agent, &s.server.api_url("items/1"), 5);
        assert!(
            r.iter()
                .all(|r| r.as_ref().is_err_and(|e| e.contains("invalid_grant"))),
            "{r:?}"
        );
        assert_eq!(s.server.stats().token_calls, 1);
        s.server.shutdown();
    });
}

#[test]
fn a_waiter_past_its_deadline_gets_a_timeout() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |c| {
            c.refresh_timeout = Duration::from_secs(30);
            c.waiter_timeout = Duration::from_millis(500);
        });
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::Hang);
        let url = s.server.api_url("items/1");
        // One thread performs the (hanging) refresh; the others wait for it and must give
        // up at their own deadline, not at the refresh's.
        let started = Instant::now();
        let trigger = {
            let (agent, url) = (s.agent.clone(), url.clone());
            std::thread::spawn(move || agent.get(url).call().map(|r| r.status()))
        };
        std::thread::sleep(Duration::from_millis(100));
        let waiters = storm_with(8, |_| {
            let err = s.agent.get(&url).call().unwrap_err();
            assert!(matches!(err.auth(), Some(AuthError::Timeout)), "{err}");
        });
        assert_eq!(waiters.len(), 8);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(s.agent.snapshot().waiting, 0);
        // Shutting the server down ends the hang, and with it the refreshing thread.
        s.server.shutdown();
        let _ = trigger.join().unwrap();
    });
}

/// A token endpoint that redirects is a misconfiguration: the refresh request (refresh
/// token, client secret) is never sent on, even by a token client that follows redirects
/// itself; the waiters fail with a typed error naming the `Location` without its query;
/// nothing is logged out, and refreshing waits for the backoff cap.
#[test]
fn a_redirecting_token_endpoint_is_never_followed() {
    bounded(|| {
        for status in [307, 302] {
            let server = Server::start(ServerConfig::default());
            let store = std::sync::Arc::new(reauth_core::MemoryStore::new());
            // ureq's defaults follow up to ten redirects.
            let token_agent = ureq::Agent::config_builder()
                .max_redirects(10)
                .build()
                .new_agent();
            let agent = reauth_ureq::Agent::builder(http(), session_config(&server))
                .oauth2(grant(&server))
                .token_agent(token_agent)
                .store(store.clone())
                .jitter_seed(7)
                .build()
                .unwrap();
            agent.login(token_set(&server.issue_tokens()));
            server.expire_access_tokens();
            let sink = format!("redirected to {}/token-sink;", server.leak_url());
            server.push_fault(Fault::Redirect(status));
            let one = storm(&agent, &server.api_url("items/1"), 1);
            let e = one[0].as_ref().expect_err("the request fails");
            assert!(e.contains(&sink), "{status}: {e}");
            assert!(!e.contains("next=here"), "{status}: {e}");
            // Held back until the backoff cap: a storm fails at once, with no token call.
            let results = storm(&agent, &server.api_url("items/1"), 10);
            for r in &results {
                let e = r.as_ref().expect_err("every request fails");
                assert!(e.contains(&sink), "{status}: {e}");
            }
            let stats = server.stats();
            assert_eq!(stats.leak_requests, 0, "{status}: followed");
            assert_eq!(stats.token_calls, 1, "{status}: retried");
            assert_ne!(agent.snapshot().phase, Phase::LoggedOut);
            assert!(
                stored(&store).is_some(),
                "{status}: the tokens were dropped"
            );
            // After the cap (200 ms here), the next request refreshes and succeeds.
            std::thread::sleep(Duration::from_millis(300));
            let after = storm(&agent, &server.api_url("items/1"), 1);
            assert_eq!(after, vec![Ok(200)]);
            assert_eq!(server.stats().token_calls, 2);
            server.shutdown();
        }
    });
}
