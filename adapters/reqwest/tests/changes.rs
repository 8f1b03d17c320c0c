//! Change notifications from the store reach the session: two clients over one store,
//! whose wrapper calls every watcher after each successful compare-and-swap (as a Redis
//! store's pub/sub would), see each other's refreshes and logouts without a request.

mod common;

use common::*;
use reauth_core::{
    Changed, Event, Expect, Lease, LeaseId, Lineage, MemoryStore, Phase, Record, StoreError, Swap,
    TokenStore,
};
use reauth_reqwest::Client;
use reauth_testkit::{ServerConfig, TestServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// A real `MemoryStore` that tells its watchers of every swap that went through.
#[derive(Default)]
struct Notifying {
    inner: MemoryStore,
    watchers: Mutex<Vec<Changed>>,
}

impl TokenStore for Notifying {
    fn read(&self) -> Result<Option<Record>, StoreError> {
        self.inner.read()
    }

    fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError> {
        let swap = self.inner.compare_and_swap(expect, record)?;
        if matches!(swap, Swap::Written) {
            let watchers = self.watchers.lock().unwrap().clone();
            for changed in watchers {
                changed();
            }
        }
        Ok(swap)
    }

    fn lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, StoreError> {
        self.inner.lease(lineage, ttl)
    }

    fn release(&self, lineage: Lineage, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.release(lineage, lease)
    }

    fn watch(&self, changed: Changed) -> bool {
        self.watchers.lock().unwrap().push(changed);
        true
    }

    fn may_block(&self) -> bool {
        false
    }
}

fn client(server: &TestServer, store: &Arc<Notifying>) -> Client {
    Client::builder(h2c(), session_config(server))
        .oauth2(grant(server))
        .store(store.clone())
        .build()
        .unwrap()
}

/// A logged-in client A, and B over the same store (it takes the tokens up at start).
async fn pair() -> (TestServer, Arc<Notifying>, Client, Client) {
    let server = TestServer::start(ServerConfig::default()).await.unwrap();
    let store = Arc::new(Notifying::default());
    let a = client(&server, &store);
    a.login(token_set(&server.issue_tokens()));
    let b = client(&server, &store);
    assert_eq!(b.snapshot().phase, Phase::Valid);
    (server, store, a, b)
}

/// The next event on `events` that `wanted` picks, within a bound.
async fn next_event(events: &mut broadcast::Receiver<Event>, wanted: impl Fn(&Event) -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if wanted(&events.recv().await.unwrap()) {
                return;
            }
        }
    })
    .await
    .expect("the event never came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_on_one_client_is_adopted_by_the_other_without_a_401() {
    bounded(async {
        let (server, _store, a, b) = pair().await;
        let mut b_events = b.subscribe();
        let mut a_events = a.subscribe();
        let before = b.snapshot().generation;
        a.invalidate(a.snapshot().generation);
        next_event(&mut b_events, |e| matches!(e, Event::Adopted { .. })).await;
        assert_ne!(b.snapshot().generation, before);
        // The write B heard of is A's save, which A takes up once it returns.
        next_event(&mut a_events, |e| matches!(e, Event::Refreshed { .. })).await;
        assert_eq!(b.snapshot().generation, a.snapshot().generation);
        let response = b.get(server.api_url("items/1")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let stats = server.stats();
        assert_eq!(stats.token_calls, 1, "B refreshed on its own");
        assert_eq!(stats.api_status(401), 0, "B sent a stale token");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_client_logs_the_other_out_without_a_request() {
    bounded(async {
        let (server, _store, a, b) = pair().await;
        let mut b_events = b.subscribe();
        a.logout();
        next_event(&mut b_events, |e| matches!(e, Event::LoggedOut { .. })).await;
        assert_eq!(b.snapshot().phase, Phase::LoggedOut);
        assert_eq!(server.stats().api_calls, 0);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_after_the_client_is_dropped_does_nothing() {
    bounded(async {
        let (server, store, a, b) = pair().await;
        drop(b);
        a.logout();
        assert_eq!(a.snapshot().phase, Phase::LoggedOut);
        // Both watchers are still registered; B's finds its client gone.
        assert_eq!(store.watchers.lock().unwrap().len(), 2);
        for changed in store.watchers.lock().unwrap().clone() {
            changed();
        }
        assert_eq!(a.snapshot().phase, Phase::LoggedOut);
        server.shutdown().await;
    })
    .await;
}
