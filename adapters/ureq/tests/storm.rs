//! The central promise end to end: any number of threads meeting 401s at once, one
//! refresh.

mod common;

use common::*;
use reauth_testkit::ServerConfig;

fn storm_of(n: usize) {
    bounded(move || {
        let s = setup(ServerConfig::default(), |_| {});
        // Warm up: the token works and nothing was refreshed.
        assert_eq!(
            storm(&s.agent, &s.server.api_url("items/1"), 1),
            vec![Ok(200)]
        );
        s.server.expire_access_tokens();
        s.server.reset_stats();
        let results = storm(&s.agent, &s.server.api_url("items/1"), n);
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
        // Every request either got 401 once and replayed, or was sent after the refresh.
        assert_eq!(stats.api_status(200), n as u64);
        // The storm was real: requests met the expired token.
        assert!((1..=n as u64).contains(&stats.api_status(401)), "{stats:?}");
        assert_eq!(s.agent.snapshot().generation.get(), 2);
        assert_eq!(s.agent.snapshot().waiting, 0);
        s.server.shutdown();
    });
}

#[test]
fn storm_of_1_refreshes_once() {
    storm_of(1);
}

#[test]
fn storm_of_64_refreshes_once() {
    storm_of(64);
}

#[test]
fn storm_of_512_refreshes_once() {
    storm_of(512);
}
