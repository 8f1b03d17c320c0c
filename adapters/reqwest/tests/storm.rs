//! The central promise end to end: any number of concurrent 401s, one refresh.

mod common;

use common::*;
use reauth_testkit::{Fault, ServerConfig};

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

/// Every duration of the configuration at its largest: nothing overflows (no panic in a
/// request, a refresh or the timer task), every request of a storm comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_durations_do_not_overflow() {
    bounded(async {
        let s = setup(ServerConfig::default(), |c| {
            let max = std::time::Duration::MAX;
            (c.leeway, c.refresh_window, c.refresh_timeout) = (max, max, max);
            (c.refresh_deadline, c.lease_margin, c.waiter_timeout) = (max, max, max);
            (c.backoff.base, c.backoff.cap, c.backoff.max_retry_after) = (max, max, max);
            // One try per episode, so a failure is answered now rather than after a
            // backoff of centuries.
            c.backoff.max_attempts = 1;
        })
        .await;
        s.server.expire_access_tokens();
        let results = storm(&s.client, &s.server.api_url("items/1"), 50).await;
        assert!(results.iter().all(|r| *r == Ok(200)), "{results:?}");
        // A failure with the longest `Retry-After`, then a recovery.
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::Unavailable {
            retry_after: Some(std::time::Duration::from_secs(u32::MAX.into())),
        });
        let results = storm(&s.client, &s.server.api_url("items/1"), 50).await;
        // A thread that arrives after the failure starts the next episode, which works.
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert!(failed >= 1, "{results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().map_or_else(|e| e.contains("503"), |s| *s == 200)),
            "{results:?}"
        );
        let results = storm(&s.client, &s.server.api_url("items/1"), 50).await;
        assert!(results.iter().all(|r| *r == Ok(200)), "{results:?}");
        // The session still answers after the storm.
        assert_eq!(s.client.snapshot().waiting, 0);
        s.server.shutdown().await;
    })
    .await;
}
