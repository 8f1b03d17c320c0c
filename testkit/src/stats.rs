//! Counters: what the server saw, for tests to assert on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A snapshot of the server's counters, from [`TestServer::stats`](crate::TestServer::stats).
///
/// Token-endpoint calls are counted once each in [`token_calls`](Self::token_calls) and
/// once under exactly one outcome: `token_ok`, `token_invalid_grant`,
/// `token_invalid_client`, `token_invalid_request`, or [`faults_injected`](Self::faults_injected).
/// `Delay` and the `RotateThen*` faults are the exception: the call is processed
/// normally, so it counts both as a fault and under its real outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// TCP connections accepted by the main listener (HTTP/2 multiplexes many requests
    /// over one).
    pub connections_accepted: u64,
    /// Calls to either token endpoint (`/oauth/token` and `/auth/refresh`).
    pub token_calls: u64,
    /// Calls to `/oauth/token`.
    pub oauth_token_calls: u64,
    /// Calls to `/auth/refresh`.
    pub json_refresh_calls: u64,
    /// Calls that issued tokens.
    pub token_ok: u64,
    /// Successful `refresh_token` grants (both endpoints).
    pub refresh_grants: u64,
    /// Successful `client_credentials` grants.
    pub client_credentials_grants: u64,
    /// Genuine `invalid_grant` refusals (unknown, revoked or reused refresh token).
    pub token_invalid_grant: u64,
    /// Genuine `invalid_client` refusals.
    pub token_invalid_client: u64,
    /// Malformed requests, unsupported grant types and `invalid_scope`.
    pub token_invalid_request: u64,
    /// Injected faults by [`Fault::kind`](crate::Fault::kind) (`"hang"`, `"delay"`, ...).
    pub faults_injected: BTreeMap<&'static str, u64>,
    /// Answers the server computed and then never sent (`RotateThenDrop`,
    /// `RotateThenHang`), whatever they said: usually tokens the client never received.
    pub answers_withheld: u64,
    /// Rotated refresh tokens replayed outside the grace window (each revoked a family).
    pub reuse_detections: u64,
    /// Rotated refresh tokens replayed inside the grace window (tolerated).
    pub grace_reuses: u64,
    /// Requests to the protected API (`/api/...`).
    pub api_calls: u64,
    /// Protected API responses by status code.
    pub api_by_status: BTreeMap<u16, u64>,
    /// Distinct bearer tokens presented per API route (route pattern, e.g.
    /// `"/api/items/{id}"`), valid or not.
    pub api_tokens_seen: BTreeMap<&'static str, usize>,
    /// Requests received by the second ("leak") listener.
    pub leak_requests: u64,
    /// Every `Authorization` header value the leak listener received, in order.
    pub leaked_authorizations: Vec<String>,
    /// `Hang` and `RotateThenHang` faults currently holding a request open (a gauge: not reset by
    /// `reset_stats`). Drops back when the client gives up or the server shuts down.
    pub hangs_in_flight: u64,
}

impl Stats {
    /// How many faults of this [`Fault::kind`](crate::Fault::kind) were injected.
    pub fn faults(&self, kind: &str) -> u64 {
        self.faults_injected.get(kind).copied().unwrap_or(0)
    }

    /// How many API responses had this status.
    pub fn api_status(&self, status: u16) -> u64 {
        self.api_by_status.get(&status).copied().unwrap_or(0)
    }

    /// Distinct bearer tokens presented to this API route pattern.
    pub fn tokens_seen(&self, route: &str) -> usize {
        self.api_tokens_seen.get(route).copied().unwrap_or(0)
    }
}

/// How one token-endpoint call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenOutcome {
    RefreshOk,
    ClientCredentialsOk,
    InvalidGrant,
    InvalidClient,
    InvalidRequest,
}

#[derive(Default)]
struct Counters {
    snapshot: Stats,
    tokens_by_route: HashMap<&'static str, HashSet<String>>,
}

/// The live counters. Each update takes a short `std::sync::Mutex`, never across an await.
#[derive(Default)]
pub(crate) struct Recorder {
    inner: Mutex<Counters>,
    hangs_in_flight: Arc<AtomicU64>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A poisoned lock only means a panic elsewhere; the counters are still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn connection(&self) {
        self.lock().snapshot.connections_accepted += 1;
    }

    pub(crate) fn token_call(&self, json_endpoint: bool) {
        let mut c = self.lock();
        c.snapshot.token_calls += 1;
        if json_endpoint {
            c.snapshot.json_refresh_calls += 1;
        } else {
            c.snapshot.oauth_token_calls += 1;
        }
    }

    /// Counts an injected fault (its outcome). `Delay` and `RotateThen*` also get a normal
    /// outcome.
    pub(crate) fn fault(&self, kind: &'static str) {
        *self
            .lock()
            .snapshot
            .faults_injected
            .entry(kind)
            .or_default() += 1;
    }

    pub(crate) fn token_outcome(&self, outcome: TokenOutcome) {
        let mut c = self.lock();
        let s = &mut c.snapshot;
        match outcome {
            TokenOutcome::RefreshOk => {
                s.token_ok += 1;
                s.refresh_grants += 1;
            }
            TokenOutcome::ClientCredentialsOk => {
                s.token_ok += 1;
                s.client_credentials_grants += 1;
            }
            TokenOutcome::InvalidGrant => s.token_invalid_grant += 1,
            TokenOutcome::InvalidClient => s.token_invalid_client += 1,
            TokenOutcome::InvalidRequest => s.token_invalid_request += 1,
        }
    }

    pub(crate) fn reuse_detected(&self) {
        self.lock().snapshot.reuse_detections += 1;
    }

    pub(crate) fn answer_withheld(&self) {
        self.lock().snapshot.answers_withheld += 1;
    }

    pub(crate) fn grace_reuse(&self) {
        self.lock().snapshot.grace_reuses += 1;
    }

    /// Records a protected-API answer and the bearer token it was called with.
    pub(crate) fn api_call(&self, route: &'static str, status: u16, token: Option<&str>) {
        let mut c = self.lock();
        c.snapshot.api_calls += 1;
        *c.snapshot.api_by_status.entry(status).or_default() += 1;
        if let Some(token) = token {
            let seen = c.tokens_by_route.entry(route).or_default();
            if !seen.contains(token) {
                seen.insert(token.to_owned());
                let n = seen.len();
                c.snapshot.api_tokens_seen.insert(route, n);
            }
        }
    }

    pub(crate) fn leak(&self, authorizations: Vec<String>) {
        let mut c = self.lock();
        c.snapshot.leak_requests += 1;
        c.snapshot.leaked_authorizations.extend(authorizations);
    }

    /// Marks a hanging request; the gauge drops when the guard does.
    pub(crate) fn hang_guard(&self) -> HangGuard {
        self.hangs_in_flight.fetch_add(1, Ordering::SeqCst);
        HangGuard(self.hangs_in_flight.clone())
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut s = self.lock().snapshot.clone();
        s.hangs_in_flight = self.hangs_in_flight.load(Ordering::SeqCst);
        s
    }

    pub(crate) fn reset(&self) {
        *self.lock() = Counters::default();
    }
}

/// Decrements the hang gauge when the hanging handler is dropped (client gone or shutdown).
pub(crate) struct HangGuard(Arc<AtomicU64>);

impl Drop for HangGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
