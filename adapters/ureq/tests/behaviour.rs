//! Stale 401s, proactive refresh, a refreshing thread that panics, origins and redirects,
//! non-replayable bodies, plain-http refusal, status codes, the middleware, closure sources,
//! events and stored tokens, end to end.

mod common;

use common::*;
use reauth_core::{
    AccessToken, Event, Origin, Phase, RefreshError, RefreshErrorKind, RefreshOutcome,
    RefreshProtocol, RefreshToken, TokenSet,
};
use reauth_testkit::ServerConfig;
use reauth_ureq::{Agent, RequestBody};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use ureq::config::RedirectAuthHeaders;
use ureq::http::{Request, Response};
use ureq::middleware::MiddlewareNext;
use ureq::{Body, ResponseExt, SendBody};

/// Holds a response back for a while when the request carries `x-hold-ms`: a response
/// that was sent with the old token but arrives after the refresh.
fn hold_response(
    request: Request<SendBody>,
    next: MiddlewareNext,
) -> Result<Response<Body>, ureq::Error> {
    let hold = request
        .headers()
        .get("x-hold-ms")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let response = next.handle(request)?;
    if let Some(ms) = hold {
        std::thread::sleep(Duration::from_millis(ms));
    }
    Ok(response)
}

#[test]
fn a_stale_401_replays_without_a_second_refresh() {
    bounded(|| {
        let s = setup_with(
            ServerConfig::default(),
            |_| {},
            http_with(|c| c.middleware(hold_response)),
        );
        s.server.expire_access_tokens();
        let url = s.server.api_url("items/1");
        // `slow` is sent with the expired token; its 401 is held back until well after
        // `fast` has triggered and finished the refresh.
        let slow = {
            let (agent, url) = (s.agent.clone(), url.clone());
            std::thread::spawn(move || {
                agent
                    .get(url)
                    .header("x-hold-ms", "700")
                    .call()
                    .map(|r| r.status())
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        let fast = s.agent.get(&url).call().unwrap();
        assert_eq!(fast.status(), 200);
        assert_eq!(s.server.stats().token_calls, 1);
        // The slow one replays with the new token; its own replay is held too.
        assert_eq!(slow.join().unwrap().unwrap(), 200);
        let stats = s.server.stats();
        assert_eq!(
            stats.token_calls, 1,
            "the stale 401 caused a second refresh"
        );
        assert_eq!(stats.api_status(401), 2);
        s.server.shutdown();
    });
}

#[test]
fn proactive_refresh_means_no_401_across_expiry() {
    bounded(|| {
        // Tokens live 3 s; from 2 s on the first request refreshes in the background while
        // the others keep using the current token. No 401 is ever seen.
        let s = setup(
            ServerConfig::default().with_access_token_lifetime(Duration::from_secs(3)),
            |c| {
                c.leeway = Duration::from_millis(500);
                c.refresh_window = Duration::from_millis(500);
            },
        );
        let url = s.server.api_url("items/1");
        let started = Instant::now();
        let run = Duration::from_millis(7_500);
        let mut sent = 0;
        while started.elapsed() < run {
            let r = storm(&s.agent, &url, 4);
            assert!(r.iter().all(|r| *r == Ok(200)), "{r:?}");
            sent += 4;
            std::thread::sleep(Duration::from_millis(50));
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
        s.server.shutdown();
    });
}

#[test]
fn a_refreshing_thread_that_panics_strands_nobody() {
    bounded(|| {
        let server = Arc::new(Server::start(ServerConfig::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let (issuer, counter) = (server.clone(), calls.clone());
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let agent = Agent::builder(http(), session_config(&server))
            .refresh_fn(move |_| {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Long enough for every other thread to queue behind this refresh.
                    std::thread::sleep(Duration::from_millis(300));
                    panic!("the refresh source exploded");
                }
                let t = issuer.issue_tokens();
                Ok(token_set(&t))
            })
            .on_event(move |e| {
                if let Event::RefreshFailed { error, .. } = e {
                    seen.lock().unwrap().push(error.kind().clone());
                }
            })
            .jitter_seed(7)
            .build()
            .unwrap();
        agent.login(token_set(&server.issue_tokens()));
        server.expire_access_tokens();
        let url = server.api_url("items/1");
        let started = Instant::now();
        let results = storm_with(32, |_| {
            catch_unwind(AssertUnwindSafe(|| {
                agent.get(&url).call().map(|r| r.status().as_u16())
            }))
        });
        // The retry came after the backoff, not at the 5 s refresh timeout: the parked
        // threads heard that the deadline moved.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // Exactly one thread ran the first refresh and panicked; everybody else waited, and
        // one of them ran the retry after the backoff.
        let panicked = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(panicked, 1);
        for r in results.into_iter().flatten() {
            assert_eq!(r.unwrap(), 200);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(*failures.lock().unwrap(), vec![RefreshErrorKind::Abandoned]);
        assert_eq!(agent.snapshot().phase, Phase::Valid);
        assert_eq!(agent.snapshot().waiting, 0);
        // And the next expiry refreshes again.
        server.expire_access_tokens();
        assert_eq!(storm(&agent, &url, 8), vec![Ok(200); 8]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_backoff_retry_is_on_time_when_the_refreshing_thread_has_left() {
    bounded(|| {
        // The first refresh is run by `login` (the tokens are already expired) and fails
        // after a while; the requests that queued meanwhile are all parked, and the thread
        // that refreshed is gone. The retry must still come after the backoff (20-200 ms),
        // not when the parked threads' older deadlines (10 s, 20 s) come.
        let server = Arc::new(Server::start(ServerConfig::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let (issuer, counter) = (server.clone(), calls.clone());
        let mut config = session_config(&server);
        config.refresh_timeout = Duration::from_secs(10);
        let agent = Agent::builder(http(), config)
            .refresh_fn(move |_| {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::thread::sleep(Duration::from_millis(400));
                    return Err(RefreshError::transient(RefreshErrorKind::Network));
                }
                Ok(token_set(&issuer.issue_tokens()))
            })
            .jitter_seed(7)
            .build()
            .unwrap();
        let expired = TokenSet::new(AccessToken::new("expired-at").unwrap())
            .with_refresh_token(RefreshToken::new("rt").unwrap())
            .with_expires_in(Duration::ZERO);
        let login = {
            let agent = agent.clone();
            std::thread::spawn(move || agent.login(expired))
        };
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let url = server.api_url("items/1");
        let results = storm_with(8, |_| {
            agent.get(&url).call().map(|r| r.status().as_u16()).unwrap()
        });
        login.join().unwrap();
        assert_eq!(results, vec![200; 8]);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn tokens_never_reach_another_origin_directly_or_by_redirect() {
    bounded(|| {
        // ureq's SameHost policy compares hosts, not ports: the leak listener is the same
        // host on another port, so ureq alone would carry the header there.
        let same_host = || http_with(|c| c.redirect_auth_headers(RedirectAuthHeaders::SameHost));
        let s = setup_with(ServerConfig::default(), |_| {}, same_host());
        // The control: plain ureq with SameHost carries a valid token across that redirect.
        let r = same_host()
            .get(s.server.api_url("redirect?to=/control"))
            .header("authorization", format!("Bearer {}", s.tokens.access_token))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            s.server.leaked_authorizations().len(),
            1,
            "the control leaked"
        );
        s.server.reset_stats();

        // A cross-origin redirect from the API to the second listener.
        let r = s
            .agent
            .get(s.server.api_url("redirect?to=/landing"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.get_uri().to_string().starts_with(&s.server.leak_url()));
        // A direct request to another origin.
        let r = s
            .agent
            .get(format!("{}/direct", s.server.leak_url()))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        // The same through the middleware on a SameHost agent.
        let chained: ureq::Agent = ureq::Agent::config_builder()
            .redirect_auth_headers(RedirectAuthHeaders::SameHost)
            .middleware(s.agent.middleware())
            .build()
            .into();
        let r = chained
            .get(s.server.api_url("redirect?to=/chained"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        let stats = s.server.stats();
        assert_eq!(stats.leak_requests, 3);
        assert!(
            stats.leaked_authorizations.is_empty(),
            "{} leaked",
            stats.leaked_authorizations.len()
        );
        assert_eq!(stats.token_calls, 0);
        s.server.shutdown();
    });
}

#[test]
fn a_redirect_to_an_allowed_origin_keeps_the_credential() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let build = |http: ureq::Agent, also_allowed: Option<Origin>| {
            let mut config = session_config(&s.server);
            config.allowed_origins.extend(also_allowed);
            let agent = Agent::builder(http, config)
                .oauth2(grant(&s.server))
                .build()
                .unwrap();
            agent.login(token_set(&s.tokens));
            agent
        };
        // The second listener is on the allow-list: the hop to it carries the credential.
        let leak = Origin::parse(&s.server.leak_url()).unwrap();
        let r = build(http(), Some(leak))
            .get(s.server.api_url("redirect?to=/allowed"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        let leaked = s.server.leaked_authorizations();
        assert_eq!(leaked, vec![format!("Bearer {}", s.tokens.access_token)]);
        // With redirects off in the agent, the 307 itself is the answer.
        let r = build(http_with(|c| c.max_redirects(0)), None)
            .get(s.server.api_url("redirect?to=/not-followed"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 307);
        assert_eq!(s.server.stats().leak_requests, 1);
        s.server.shutdown();
    });
}

#[test]
fn a_reader_body_is_authorized_but_not_replayed() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let reader = || RequestBody::reader(std::io::Cursor::new(b"hello".to_vec()));
        let url = s.server.api_url("echo");
        // `Expect: 100-continue` makes the server's 401 arrive before the body is sent.
        // Without it the server may answer and close while the body is still being
        // written, and the call fails with a broken pipe instead of returning the 401.
        let post = || s.agent.post(&url).header("expect", "100-continue");
        let mut ok = post().send(reader()).unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.body_mut().read_to_string().unwrap(), "hello");
        s.server.expire_access_tokens();
        // The caller gets the 401 (the body is gone), but the session refreshes...
        let r = post().send(reader()).unwrap();
        assert_eq!(r.status(), 401);
        // ...on this very thread, before the 401 is handed back: the next call goes through
        // with the new token.
        assert_eq!(s.agent.snapshot().generation.get(), 2);
        let mut r = post().send(reader()).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body_mut().read_to_string().unwrap(), "hello");
        assert_eq!(s.server.stats().token_calls, 1);
        // Bytes can be sent again: a 401 is replayed after the refresh.
        s.server.expire_access_tokens();
        let mut r = s.agent.post(&url).send("again").unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body_mut().read_to_string().unwrap(), "again");
        let stats = s.server.stats();
        assert_eq!(stats.token_calls, 2);
        assert_eq!(stats.api_status(401), 2);
        s.server.shutdown();
    });
}

#[test]
fn statuses_are_errors_as_the_agent_says_and_403_never_refreshes() {
    bounded(|| {
        // ureq's defaults: a 4xx is an error.
        let s = setup_with(
            ServerConfig::default(),
            |_| {},
            ureq::Agent::new_with_defaults(),
        );
        let err = s.agent.get(s.server.api_url("scoped")).call().unwrap_err();
        assert_eq!(err.status(), Some(403), "{err}");
        // A 401 is seen by the session before ureq's rule applies: refreshed and replayed.
        s.server.expire_access_tokens();
        let r = s.agent.get(s.server.api_url("items/1")).call().unwrap();
        assert_eq!(r.status(), 200);
        // A form body and a query string, through the same session.
        let mut echo = s
            .agent
            .post(s.server.api_url("echo"))
            .query("ignored", "a b")
            .send_form([("name", "Ada Lovelace"), ("x", "1&2")])
            .unwrap();
        assert_eq!(
            echo.body_mut().read_to_string().unwrap(),
            "name=Ada+Lovelace&x=1%262"
        );
        let stats = s.server.stats();
        assert_eq!(stats.api_status(403), 1);
        assert_eq!(stats.token_calls, 1, "a 403 must not refresh");
        s.server.shutdown();
    });
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

#[test]
fn a_plain_http_refresh_endpoint_is_refused_unless_loopback() {
    bounded(|| {
        // The core refuses to build such an endpoint at all.
        let err = reauth_core::oauth2::TokenEndpoint::new(
            "http://auth.example.com/token".parse().unwrap(),
            reauth_core::oauth2::ClientAuth::none(),
        );
        assert!(err.is_err());
        // A custom protocol gets a permanent error from the adapter, not a request.
        let server = Server::start(ServerConfig::default());
        let agent = Agent::builder(http(), session_config(&server))
            .protocol(InsecureProtocol)
            .build()
            .unwrap();
        agent.login(token_set(&server.issue_tokens()));
        server.expire_access_tokens();
        let err = agent.get(server.api_url("items/1")).call().unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        assert!(err.is_logged_out());
        server.shutdown();
    });
}

#[test]
fn the_middleware_gives_the_same_single_flight_without_replays() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let chained: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .middleware(s.agent.middleware().http_status_as_error(false))
            .build()
            .into();
        s.server.expire_access_tokens();
        let url = s.server.api_url("items/1");
        let first = storm_with(64, |_| chained.get(&url).call().unwrap().status().as_u16());
        // Those sent with the expired token get their 401 (no replay in a middleware);
        // those that came during the refresh waited for it. One refresh either way.
        assert!(first.iter().all(|s| *s == 200 || *s == 401), "{first:?}");
        assert!(first.contains(&401));
        assert_eq!(s.server.stats().token_calls, 1);
        let second = storm_with(64, |_| chained.get(&url).call().unwrap().status().as_u16());
        assert_eq!(second, vec![200; 64]);
        assert_eq!(s.server.stats().token_calls, 1);
        // With ureq's default, the 401 is an error, and the session still learns of it.
        let strict: ureq::Agent = ureq::Agent::config_builder()
            .middleware(s.agent.middleware())
            .build()
            .into();
        s.server.expire_access_tokens();
        let err = strict.get(&url).call().unwrap_err();
        assert!(matches!(err, ureq::Error::StatusCode(401)), "{err}");
        assert_eq!(strict.get(&url).call().unwrap().status(), 200);
        assert_eq!(s.server.stats().token_calls, 2);
        s.server.shutdown();
    });
}

#[test]
fn a_closure_can_be_the_refresh_source() {
    bounded(|| {
        let server = Arc::new(Server::start(ServerConfig::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let (issuer, counter) = (server.clone(), calls.clone());
        let agent = Agent::builder(http(), session_config(&server))
            .refresh_fn(move |refresh_token| {
                counter.fetch_add(1, Ordering::SeqCst);
                assert!(refresh_token.is_some());
                std::thread::sleep(Duration::from_millis(50));
                let t = issuer.issue_tokens();
                Ok(TokenSet::new(AccessToken::new(t.access_token).map_err(
                    |_| RefreshError::transient(RefreshErrorKind::Malformed),
                )?))
            })
            .build()
            .unwrap();
        agent.login(token_set(&server.issue_tokens()));
        server.expire_access_tokens();
        assert_eq!(
            storm(&agent, &server.api_url("items/1"), 64),
            vec![Ok(200); 64]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The closure's set had no refresh token: the old one is kept.
        assert!(agent.snapshot().has_refresh_token);
    });
}

#[test]
fn events_reach_callbacks_and_subscribers() {
    bounded(|| {
        let server = Server::start(ServerConfig::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let agent = Agent::builder(http(), session_config(&server))
            .oauth2(grant(&server))
            .on_event(move |e| record.lock().unwrap().push(e.clone()))
            .build()
            .unwrap();
        let events = agent.subscribe();
        let dropped = agent.subscribe();
        drop(dropped);
        agent.login(token_set(&server.issue_tokens()));
        server.expire_access_tokens();
        assert_eq!(
            storm(&agent, &server.api_url("items/1"), 4),
            vec![Ok(200); 4]
        );
        agent.logout();
        let received: Vec<Event> = events.try_iter().collect();
        assert_eq!(received, *seen.lock().unwrap());
        assert!(matches!(
            &received[..],
            [Event::Refreshed { .. }, Event::LoggedOut { .. }]
        ));
        server.shutdown();
    });
}

#[test]
fn tokens_loaded_from_the_store_are_used_at_start() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let agent = Agent::builder(http(), session_config(&s.server))
            .oauth2(grant(&s.server))
            .store(s.store.clone())
            .build()
            .unwrap();
        assert_eq!(
            storm(&agent, &s.server.api_url("items/1"), 1),
            vec![Ok(200)]
        );
        assert_eq!(s.server.stats().token_calls, 0);
        s.server.shutdown();
    });
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let err = s.agent.get("http://[::1").call().unwrap_err();
        assert!(matches!(err, reauth_ureq::Error::Request(_)), "{err}");
        let err = s
            .agent
            .get(s.server.api_url("items/1"))
            .header("bad header", "x")
            .call()
            .unwrap_err();
        assert!(matches!(err, reauth_ureq::Error::Request(_)), "{err}");
        // A relative URI is no origin: sent anonymously, and ureq refuses it.
        let err = s.agent.get("/items/1").call().unwrap_err();
        assert!(matches!(err, reauth_ureq::Error::Http(_)), "{err}");
        // Before any login nothing is sent.
        let fresh = Agent::builder(http(), session_config(&s.server))
            .oauth2(grant(&s.server))
            .build()
            .unwrap();
        let err = fresh.get(s.server.api_url("items/1")).call().unwrap_err();
        assert_eq!(err.auth(), Some(&reauth_core::Error::NotAuthenticated));
        assert!(Agent::builder(http(), session_config(&s.server))
            .build()
            .is_err());
        s.server.shutdown();
    });
}

#[test]
fn run_takes_http_requests_and_request_level_redirects_cannot_leak() {
    bounded(|| {
        // The agent itself follows no redirects and reports statuses: nothing to override…
        let s = setup_with(
            ServerConfig::default(),
            |_| {},
            http_with(|c| c.max_redirects(0)),
        );
        // …but this request asks ureq to follow redirects and keep the header on the same
        // host. The session still drives the redirect itself.
        let request = s.agent.inner().configure_request(
            http::Request::get(s.server.api_url("redirect?to=/request-level"))
                .body(())
                .unwrap(),
        );
        let request = request
            .max_redirects(5)
            .redirect_auth_headers(RedirectAuthHeaders::SameHost)
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        let r = s.agent.run(request).unwrap();
        // The agent's own setting (0) applies: the 307 is the answer, nothing leaked.
        assert_eq!(r.status(), 307);
        // A body through `run`, replayed after a refresh.
        s.server.expire_access_tokens();
        let mut echo = s
            .agent
            .run(
                http::Request::post(s.server.api_url("echo"))
                    .body("via run")
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(echo.body_mut().read_to_string().unwrap(), "via run");
        let stats = s.server.stats();
        assert_eq!(stats.leak_requests, 0);
        assert_eq!(stats.token_calls, 1);
        s.server.shutdown();
    });
}

#[test]
fn invalidate_refreshes_once_for_the_current_generation_and_ignores_stale_reports() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let url = s.server.api_url("items/1");
        let seen = s.agent.snapshot().generation;
        // A websocket said the token is bad: this thread refreshes, once.
        s.agent.invalidate(seen);
        s.agent.invalidate(seen);
        assert_eq!(s.server.stats().token_calls, 1);
        assert!(s.agent.snapshot().generation > seen);
        assert_eq!(storm(&s.agent, &url, 8), vec![Ok(200); 8]);
        // A late report about the replaced token starts nothing.
        s.agent.invalidate(seen);
        assert_eq!(storm(&s.agent, &url, 4), vec![Ok(200); 4]);
        assert_eq!(s.server.stats().token_calls, 1);
        let current = s.agent.snapshot().generation;
        s.agent.logout();
        s.agent.invalidate(current);
        assert_eq!(s.server.stats().token_calls, 1);
        s.server.shutdown();
    });
}
