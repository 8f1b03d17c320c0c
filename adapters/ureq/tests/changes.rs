//! Change notifications from the store reach the session: two agents over one store,
//! whose wrapper calls every watcher after each successful compare-and-swap (as a Redis
//! store's pub/sub would), see each other's refreshes and logouts without a request. The
//! work a notification causes runs on the notifying thread, here the writer's.

mod common;

use common::*;
use reauth_core::{
    Changed, Event, Expect, Lease, LeaseId, Lineage, MemoryStore, Phase, Record, StoreError, Swap,
    TokenStore,
};
use reauth_testkit::ServerConfig;
use reauth_ureq::Agent;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

fn agent(server: &Server, store: &Arc<Notifying>) -> Agent {
    Agent::builder(http(), session_config(server))
        .oauth2(grant(server))
        .store(store.clone())
        .build()
        .unwrap()
}

#[test]
fn a_refresh_on_one_agent_is_adopted_by_the_other_without_a_401() {
    bounded(|| {
        let server = Server::start(ServerConfig::default());
        let store = Arc::new(Notifying::default());
        let a = agent(&server, &store);
        a.login(token_set(&server.issue_tokens()));
        let b = agent(&server, &store);
        assert_eq!(b.snapshot().phase, Phase::Valid);
        let b_events = b.subscribe();
        let before = b.snapshot().generation;
        // A refreshes (inline, on this thread); its write tells B, which re-reads.
        a.invalidate(a.snapshot().generation);
        let _ = a.get(&server.api_url("items/1")).call().unwrap();
        let adopted = b_events
            .try_iter()
            .any(|e| matches!(e, Event::Adopted { .. }));
        assert!(adopted, "B did not adopt A's tokens");
        assert_ne!(b.snapshot().generation, before);
        let response = b.get(&server.api_url("items/1")).call().unwrap();
        assert_eq!(response.status(), 200);
        let stats = server.stats();
        assert_eq!(stats.token_calls, 1, "B refreshed on its own");
        assert_eq!(stats.api_status(401), 0, "B sent a stale token");
        server.shutdown();
    });
}

#[test]
fn a_logout_on_one_agent_logs_the_other_out_without_a_request() {
    bounded(|| {
        let server = Server::start(ServerConfig::default());
        let store = Arc::new(Notifying::default());
        let a = agent(&server, &store);
        a.login(token_set(&server.issue_tokens()));
        let b = agent(&server, &store);
        a.logout();
        assert_eq!(b.snapshot().phase, Phase::LoggedOut);
        assert_eq!(server.stats().api_calls, 0);
        // A notification for an agent that is gone does nothing.
        drop(b);
        for changed in store.watchers.lock().unwrap().clone() {
            changed();
        }
        assert_eq!(a.snapshot().phase, Phase::LoggedOut);
        server.shutdown();
    });
}
