//! The central promise end to end: any number of concurrent 401s, one refresh.

mod common;

use common::*;
use reauth_testkit::ServerConfig;

async fn storm_of(n: usize) {
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        // Warm up: the token works and nothing was refreshed.
        assert_eq!(
            storm(&s.client, &s.server.api_url("items/1"), 1).await,
            vec![Ok(200)]
        );
        s.server.expire_access_tokens();
        s.server.reset_stats();
        let results = storm(&s.client, &s.server.api_url("items/1"), n).await;
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
        assert_eq!(s.client.snapshot().generation.get(), 2);
        s.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_1_refreshes_once() {
    storm_of(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_100_refreshes_once() {
    storm_of(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_10000_refreshes_once() {
    storm_of(10_000).await;
}
