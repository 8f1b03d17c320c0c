//! Redirects, followed by the agent hop by hop: the token only on hops to allowed origins,
//! a response counted only if its hop carried the token, ureq's method rules, ureq's hop
//! limit; and the middleware, which never lets the token follow a redirect. End to end.

mod common;

use common::*;
use reauth_testkit::ServerConfig;
use reauth_ureq::{Error, RequestBody};
use std::time::Duration;
use ureq::ResponseExt;

/// An agent built by the application with the session's middleware.
fn chained(agent: &reauth_ureq::Agent) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .middleware(agent.middleware().http_status_as_error(false))
        .build()
        .into()
}

/// A (allowed) → B (another origin) → B′ (B's origin again): the token goes to A alone.
#[test]
fn a_chain_a_b_b_prime_sends_no_token_beyond_a() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let url = s.server.api_url("redirect?to=/hop%3Fto%3D/landing");
        let r = s.agent.get(&url).call().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.get_uri().to_string(),
            format!("{}/landing", s.server.leak_url())
        );
        let r = chained(&s.agent).get(&url).call().unwrap();
        assert_eq!(r.status(), 200);
        let stats = s.server.stats();
        assert_eq!(stats.leak_requests, 4, "both chains reached B and B′");
        assert!(
            stats.leaked_authorizations.is_empty(),
            "the token went beyond A"
        );
        assert_eq!(stats.tokens_seen("/api/redirect"), 1);
        s.server.shutdown();
    });
}

/// A → A′ on the same origin keeps the token, and a 401 from A′ (the token expired) is
/// the token's: one refresh, the chain replayed from A, 200. For every redirect status.
/// The middleware sends no token beyond A, so A′'s 401 is handed over and not counted.
#[test]
fn a_same_origin_redirect_keeps_the_token_and_its_401_refreshes() {
    bounded(|| {
        // Fresh tokens refused in a row (the test expires each one at once) would hold
        // refreshing back for up to the backoff cap: none here.
        let s = setup(ServerConfig::default(), |c| c.backoff.cap = Duration::ZERO);
        for (i, status) in [301, 302, 303, 307, 308].into_iter().enumerate() {
            let url = s
                .server
                .api_url(&format!("moved?to=/api/items/1&status={status}"));
            let r = s.agent.get(&url).call().unwrap();
            assert_eq!(r.status(), 200, "{status}");
            assert_eq!(r.get_uri().to_string(), s.server.api_url("items/1"));
            s.server.expire_access_tokens();
            let r = s.agent.get(&url).call().unwrap();
            assert_eq!(r.status(), 200, "{status}: refreshed and replayed");
            assert_eq!(s.server.stats().token_calls, i as u64 + 1, "{status}");
            let r = chained(&s.agent).get(&url).call().unwrap();
            assert_eq!(
                r.status(),
                401,
                "{status}: the middleware's hop had no token"
            );
            assert_eq!(s.server.stats().token_calls, i as u64 + 1, "{status}");
        }
        assert!(s.server.leaked_authorizations().is_empty());
        s.server.shutdown();
    });
}

/// A → B → A: the token on both visits to A, never at B. A 401 from a hop that did not
/// carry the token (B's) is handed over as is and never refreshes.
#[test]
fn a_b_a_carries_the_token_only_where_allowed_and_a_401_without_it_never_refreshes() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let there_and_back = s.server.api_url("redirect?to=/bounce%3Fto%3D/api/items/1");
        let r = s.agent.get(&there_and_back).call().unwrap();
        assert_eq!(r.status(), 200, "the token was attached again back on A");
        let to_b = s.server.api_url("redirect?to=/unauthorized");
        for _ in 0..3 {
            let r = s.agent.get(&to_b).call().unwrap();
            assert_eq!(r.status(), 401);
            let r = chained(&s.agent).get(&to_b).call().unwrap();
            assert_eq!(r.status(), 401);
            let r = chained(&s.agent).get(&there_and_back).call().unwrap();
            assert_eq!(r.status(), 401, "the middleware sends no token back on A");
        }
        let stats = s.server.stats();
        assert_eq!(
            stats.token_calls, 0,
            "a refresh for a 401 the token never got"
        );
        assert!(stats.leaked_authorizations.is_empty());
        assert_eq!(s.agent.snapshot().phase, reauth_core::Phase::Valid);
        s.server.shutdown();
    });
}

/// A redirect loop ends with ureq's own error after the agent's limit (10 by default); with
/// `max_redirects_will_error(false)` the last 3xx is the answer.
#[test]
fn too_many_redirects_is_a_typed_error() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        let url = s.server.api_url("loop");
        let err = s.agent.get(&url).call().unwrap_err();
        assert!(
            matches!(err, Error::Http(ureq::Error::TooManyRedirects)),
            "{err:?}"
        );
        assert_eq!(s.server.stats().api_calls, 11, "1 + 10 hops");
        let quiet = setup_with(
            ServerConfig::default(),
            |_| {},
            http_with(|c| c.max_redirects(3).max_redirects_will_error(false)),
        );
        let r = quiet
            .agent
            .get(quiet.server.api_url("loop"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(quiet.server.stats().api_calls, 4, "1 + 3 hops");
        quiet.server.shutdown();
        s.server.shutdown();
    });
}

/// 301, 302 and 303 turn a `POST` into a `GET` (`/api/items` answers 405 to a `POST`);
/// ureq follows no 307 or 308 for a `POST`, whatever its body, so the caller gets it.
#[test]
fn see_other_turns_a_post_into_a_get_and_a_307_with_a_body_is_not_followed() {
    bounded(|| {
        let s = setup(ServerConfig::default(), |_| {});
        for status in [301, 302, 303] {
            let url = s
                .server
                .api_url(&format!("moved?to=/api/items/1&status={status}"));
            let r = s.agent.post(&url).send("payload").unwrap();
            assert_eq!(r.status(), 200, "{status}");
        }
        for status in [307, 308] {
            let url = s
                .server
                .api_url(&format!("moved?to=/api/echo&status={status}"));
            let r = s.agent.post(&url).send("payload").unwrap();
            assert_eq!(r.status().as_u16(), status);
            let reader = RequestBody::reader(std::io::Cursor::new(b"streamed".to_vec()));
            let r = s.agent.post(&url).send(reader).unwrap();
            assert_eq!(r.status().as_u16(), status);
        }
        assert_eq!(
            s.server.stats().tokens_seen("/api/echo"),
            0,
            "never re-sent"
        );
        s.server.shutdown();
    });
}
