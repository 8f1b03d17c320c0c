//! A store with awaited operations ([`TokenStore::as_async`], as the Redis store offers):
//! the session's store work during requests is awaited on the runtime, never run on a
//! blocking thread, and an awaited operation that panics is a store failure the session
//! hears, not an operation left unanswered.

mod common;

use common::*;
use reauth_core::{
    AsyncTokenStore, Event, Expect, Lease, LeaseId, Lineage, MemoryStore, Record, StoreError,
    StoreFuture, Swap, TokenStore,
};
use reauth_reqwest::Client;
use reauth_testkit::{ServerConfig, TestServer};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A real `MemoryStore` behind both kinds of operations, counting which ran.
#[derive(Default)]
struct Awaited {
    inner: MemoryStore,
    blocking: AtomicUsize,
    awaited: AtomicUsize,
    /// The next awaited lease panics.
    panic_lease: AtomicBool,
}

impl TokenStore for Awaited {
    fn read(&self) -> Result<Option<Record>, StoreError> {
        self.blocking.fetch_add(1, Ordering::Relaxed);
        self.inner.read()
    }

    fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError> {
        self.blocking.fetch_add(1, Ordering::Relaxed);
        self.inner.compare_and_swap(expect, record)
    }

    fn lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, StoreError> {
        self.blocking.fetch_add(1, Ordering::Relaxed);
        self.inner.lease(lineage, ttl)
    }

    fn release(&self, lineage: Lineage, lease: LeaseId) -> Result<(), StoreError> {
        self.blocking.fetch_add(1, Ordering::Relaxed);
        self.inner.release(lineage, lease)
    }

    fn as_async(&self) -> Option<&dyn AsyncTokenStore> {
        Some(self)
    }
}

impl Awaited {
    /// Counts an awaited operation, after giving the runtime a turn (as real I/O would).
    async fn count(&self) {
        tokio::task::yield_now().await;
        self.awaited.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncTokenStore for Awaited {
    fn read(&self) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async move {
            self.count().await;
            self.inner.read()
        })
    }

    fn compare_and_swap<'a>(&'a self, expect: Expect, record: &'a Record) -> StoreFuture<'a, Swap> {
        Box::pin(async move {
            self.count().await;
            self.inner.compare_and_swap(expect, record)
        })
    }

    fn lease(&self, lineage: Lineage, ttl: Duration) -> StoreFuture<'_, Lease> {
        Box::pin(async move {
            self.count().await;
            assert!(
                !self.panic_lease.swap(false, Ordering::Relaxed),
                "the store's planted panic"
            );
            self.inner.lease(lineage, ttl)
        })
    }

    fn release(&self, lineage: Lineage, lease: LeaseId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.count().await;
            self.inner.release(lineage, lease)
        })
    }
}

async fn setup() -> (TestServer, Arc<Awaited>, Client) {
    let server = TestServer::start(ServerConfig::default()).await.unwrap();
    let store = Arc::new(Awaited::default());
    let client = Client::builder(h2c(), session_config(&server))
        .oauth2(grant(&server))
        .store(store.clone())
        .build()
        .unwrap();
    // The login is the application's own call: its write is done before it returns,
    // on the caller's thread.
    client.login(token_set(&server.issue_tokens()));
    (server, store, client)
}

/// `n` requests in flight at once; how many were answered 200.
async fn storm(server: &TestServer, client: &Client, n: usize) -> usize {
    let calls = (0..n).map(|_| async {
        let response = client.get(server.api_url("items/1")).send().await.unwrap();
        usize::from(response.status() == 200)
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_during_requests_awaits_the_store_and_never_blocks_on_it() {
    bounded(async {
        let (server, store, client) = setup().await;
        let blocking = store.blocking.load(Ordering::Relaxed);
        // The start-up read and the login's write.
        assert_eq!(blocking, 2);
        server.expire_access_tokens();
        assert_eq!(storm(&server, &client, 50).await, 50);
        assert_eq!(server.stats().token_calls, 1);
        // The refresh's lease, read, write and release were all awaited.
        assert!(store.awaited.load(Ordering::Relaxed) >= 3);
        assert_eq!(store.blocking.load(Ordering::Relaxed), blocking);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_operation_that_panics_is_a_store_failure_and_requests_go_on() {
    bounded(async {
        let (server, store, client) = setup().await;
        let mut events = client.subscribe();
        store.panic_lease.store(true, Ordering::Relaxed);
        server.expire_access_tokens();
        // The lease is never granted: the session refreshes within its process.
        assert_eq!(storm(&server, &client, 20).await, 20);
        assert_eq!(server.stats().token_calls, 1);
        let mut failed = None;
        while let Ok(event) = events.try_recv() {
            if let Event::StoreFailed { error, .. } = event {
                failed = Some(error.to_string());
            }
        }
        let failed = failed.expect("no StoreFailed event");
        assert!(failed.contains("panicked"), "{failed}");
        assert!(
            !store.panic_lease.load(Ordering::Relaxed),
            "the lease was never asked for"
        );
        server.shutdown().await;
    })
    .await;
}
