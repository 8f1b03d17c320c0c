//! State shared by the handle and every request handler.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::config::ServerConfig;
use crate::fault::Fault;
use crate::shutdown::ShutdownSignal;
use crate::stats::Recorder;
use crate::tokens::{FamilyRef, IssuedTokens, TokenStore};

pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    tokens: Mutex<TokenStore>,
    faults: Mutex<VecDeque<Fault>>,
    pub(crate) stats: Recorder,
    /// `http://127.0.0.1:PORT` of the main listener, where the leak listener bounces back.
    pub(crate) api_base: String,
    /// `http://127.0.0.1:PORT` of the leak listener, the redirect target.
    pub(crate) leak_base: String,
    pub(crate) shutdown: ShutdownSignal,
}

/// Locks a std mutex, shrugging off poisoning: the data stays consistent because no
/// critical section here can panic half-way through an update that matters.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(
        config: ServerConfig,
        api_base: String,
        leak_base: String,
        shutdown: ShutdownSignal,
    ) -> Self {
        Self {
            api_base,
            config,
            tokens: Mutex::default(),
            faults: Mutex::default(),
            stats: Recorder::default(),
            leak_base,
            shutdown,
        }
    }

    /// The token store. Never hold the guard across an `.await`.
    pub(crate) fn tokens(&self) -> MutexGuard<'_, TokenStore> {
        lock(&self.tokens)
    }

    /// The fault queue. Never hold the guard across an `.await`.
    pub(crate) fn faults(&self) -> MutexGuard<'_, VecDeque<Fault>> {
        lock(&self.faults)
    }

    /// Starts a new token family, as a login would.
    pub(crate) fn issue_tokens(&self, scope: &str) -> IssuedTokens {
        let (family, grant) = self
            .tokens()
            .issue_family(&self.config, scope, true, Instant::now());
        IssuedTokens {
            access_token: grant.access_token,
            refresh_token: grant.refresh_token.unwrap_or_default(),
            expires_in: grant.expires_in,
            scope: grant.scope,
            family,
        }
    }

    /// Revokes the family `which` names; false if no live family matched.
    pub(crate) fn revoke(&self, which: FamilyRef<'_>) -> bool {
        let mut tokens = self.tokens();
        match tokens.find(which) {
            Some(id) => tokens.revoke(id),
            None => false,
        }
    }

    /// Takes the next queued fault, if any (FIFO, one per token-endpoint call).
    pub(crate) fn next_fault(&self) -> Option<Fault> {
        self.faults().pop_front()
    }
}
