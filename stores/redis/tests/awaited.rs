//! The store's awaited operations (feature `tokio`, what the async adapters use) against
//! a real `redis-server`: the same answers as the blocking ones and the reference
//! `MemoryStore`, the lease, and Redis stopped, restarted and frozen, where redis-rs's
//! `ConnectionManager` does the reconnecting.

#[path = "support/redis_server.rs"]
mod redis_server;

use reauth_core::{
    AccessToken, AsyncTokenStore, Entry, Expect, Lease, Lineage, MemoryStore, Record, RefreshToken,
    SavedTokens, StoreErrorKind, Swap, TokenStore,
};
use reauth_redis::{RedisStore, RedisStoreError};
use redis_server::RedisServer;
use std::time::{Duration, Instant, UNIX_EPOCH};

const L: Lineage = Lineage::from_u128(0xa5a17);

fn tokens(access: &str, version: u64) -> Record {
    Record {
        lineage: L,
        version,
        entry: Entry::Tokens(SavedTokens {
            access_token: AccessToken::new(access).unwrap(),
            refresh_token: Some(RefreshToken::new(format!("{access}-refresh")).unwrap()),
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(1_900_000_000_123)),
            scope: None,
        }),
    }
}

fn impatient(server: &RedisServer, session: &str) -> RedisStore {
    RedisStore::builder(server.client(), session)
        .response_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
}

fn awaited(s: &RedisStore) -> &dyn AsyncTokenStore {
    s.as_async()
        .expect("the tokio feature offers the awaited operations")
}

#[tokio::test]
async fn awaited_swaps_answer_as_the_memory_store_and_the_blocking_calls_do() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = impatient(&server, "same");
    let memory = MemoryStore::new();
    let other = Lineage::from_u128(0x07e4);
    let steps = [
        (Expect::Version(L, 1), tokens("a2", 2)),
        (Expect::Absent, tokens("a1", 1)),
        (Expect::Absent, tokens("a2", 2)),
        (Expect::Version(L, 2), tokens("a3", 3)),
        (Expect::Version(L, 1), tokens("a2", 2)),
        (Expect::Version(other, 2), tokens("a3", 3)),
        (Expect::Version(L, u64::MAX), tokens("a3", 3)),
        (Expect::Version(L, 2), tokens("a3", 3)),
        (Expect::Any, tokens("b1", 9)),
    ];
    let mut conflicts = 0;
    for (i, (expect, record)) in steps.into_iter().enumerate() {
        let want = memory.compare_and_swap(expect, &record).unwrap();
        let got = awaited(&s).compare_and_swap(expect, &record).await.unwrap();
        assert_eq!(got, want, "step {i}: {expect:?}");
        let read = awaited(&s).read().await.unwrap();
        assert_eq!(read, memory.read().unwrap(), "step {i}");
        // The blocking calls (the start-up read, the blocking adapter) see the same.
        assert_eq!(s.read_record().unwrap(), read, "step {i}");
        conflicts += usize::from(matches!(got, Swap::Conflict(_)));
    }
    assert!(conflicts >= 4, "{conflicts}");
}

#[tokio::test]
async fn the_awaited_lease_is_granted_once_and_released_only_by_its_owner() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = impatient(&server, "lease");
    let b = impatient(&server, "lease");
    let Lease::Granted(held) = awaited(&a).lease(L, Duration::from_secs(30)).await.unwrap() else {
        panic!("a free lease was refused")
    };
    assert_eq!(
        awaited(&b).lease(L, Duration::from_secs(30)).await.unwrap(),
        Lease::Busy
    );
    // A blocking taker is refused too: one lease, whichever way it is asked for.
    assert_eq!(b.take_lease(Duration::from_secs(30)).unwrap(), Lease::Busy);
    awaited(&b)
        .release(L, reauth_core::LeaseId(held.0 ^ 1))
        .await
        .unwrap();
    assert_eq!(
        awaited(&b).lease(L, Duration::from_secs(30)).await.unwrap(),
        Lease::Busy
    );
    awaited(&a).release(L, held).await.unwrap();
    assert!(matches!(
        awaited(&b).lease(L, Duration::from_secs(30)).await.unwrap(),
        Lease::Granted(_)
    ));
}

#[tokio::test]
async fn redis_stopped_fails_typed_within_the_timeouts_and_a_restart_is_picked_up() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = impatient(&server, "away");
    awaited(&s)
        .compare_and_swap(Expect::Absent, &tokens("SECRET-AT", 1))
        .await
        .unwrap();
    server.stop();
    for _ in 0..3 {
        let start = Instant::now();
        let e = s.read_record_async().await.unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(e, RedisStoreError::Unavailable { .. }), "{e:?}");
        let text = format!("{e} {e:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(reauth_core::StoreError::from(e).kind(), StoreErrorKind::Io);
    }
    assert!(s
        .take_lease_async(Duration::from_secs(1))
        .await
        .unwrap_err()
        .is_transient());
    // Back, empty: redis-rs reconnects; within a few calls (its reconnect runs behind the
    // failing ones), without our doing anything.
    server.restart();
    let start = Instant::now();
    loop {
        match s.read_record_async().await {
            Ok(read) => break assert_eq!(read, None),
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "never reconnected"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(
        s.write_record_async(Expect::Absent, &tokens("a1", 1))
            .await
            .unwrap(),
        Swap::Written
    );
}

#[tokio::test]
async fn a_frozen_redis_times_out_and_late_answers_never_stand_in() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = impatient(&server, "frozen");
    s.write_record_async(Expect::Absent, &tokens("a1", 1))
        .await
        .unwrap();
    server.pause();
    let start = Instant::now();
    let e = s.read_record_async().await.unwrap_err();
    let waited = start.elapsed();
    server.resume();
    assert!(e.is_transient(), "{e}");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    let start = Instant::now();
    let read = loop {
        match s.read_record_async().await {
            Ok(read) => break read,
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                assert!(start.elapsed() < Duration::from_secs(5), "never answered");
            }
        }
    };
    assert_eq!(read, Some(tokens("a1", 1)));
    assert_eq!(
        s.write_record_async(Expect::Version(L, 1), &tokens("a2", 2))
            .await
            .unwrap(),
        Swap::Written
    );
    assert_eq!(s.read_record_async().await.unwrap(), Some(tokens("a2", 2)));
}

#[test]
fn a_store_outlives_the_runtime_its_connection_was_made_on() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = impatient(&server, "runtimes");
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    runtime().block_on(async {
        s.write_record_async(Expect::Absent, &tokens("a1", 1))
            .await
            .unwrap();
    });
    // The first runtime is gone, and the connection's task with it: the next runtime's
    // calls get a new connection (after at most a failed call or two), never a hang.
    runtime().block_on(async {
        let start = Instant::now();
        let read = loop {
            let call = tokio::time::timeout(Duration::from_secs(2), s.read_record_async());
            match call.await.expect("an awaited call hung") {
                Ok(read) => break read,
                Err(e) => {
                    assert!(e.is_transient(), "{e}");
                    assert!(
                        start.elapsed() < Duration::from_secs(5),
                        "never reconnected"
                    );
                }
            }
        };
        assert_eq!(read, Some(tokens("a1", 1)));
    });
}
