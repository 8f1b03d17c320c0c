//! Shared set-up for the end-to-end tests: a testkit server on loopback (on a tokio runtime
//! the test owns) and a blocking agent for it. Every test bounds itself in time and shuts
//! its server down.
#![allow(dead_code)]

use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{
    AccessToken, Config, Entry, MemoryStore, Origin, RefreshToken, SavedTokens, TokenSet,
    TokenStore,
};
use reauth_testkit::{IssuedTokens, ServerConfig, TestServer};
use reauth_ureq::Agent;
use std::ops::Deref;
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Every end-to-end test fails instead of hanging past this.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` on its own thread and fails the test if it takes longer than [`LIMIT`]. A
/// panic inside `f` fails the test with the same message.
pub fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker ended without a result"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("end-to-end test exceeded its time limit of {LIMIT:?}")
        }
    }
}

/// A testkit server and the tokio runtime it runs on.
pub struct Server {
    server: Option<TestServer>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(config: ServerConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(TestServer::start(config)).unwrap();
        Self {
            server: Some(server),
            runtime,
        }
    }

    /// Stops the server and waits until its ports are closed.
    pub fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

impl Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        self.server.as_ref().expect("running")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed half-way still closes its server.
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

pub fn session_config(server: &TestServer) -> Config {
    let mut c = Config::new(Origin::parse(&server.base_url()).unwrap());
    c.refresh_timeout = Duration::from_secs(5);
    c.waiter_timeout = Duration::from_secs(20);
    c.backoff.base = Duration::from_millis(20);
    c.backoff.cap = Duration::from_millis(200);
    c
}

pub fn grant(server: &TestServer) -> OAuth2Grant {
    OAuth2Grant::refresh_token(
        TokenEndpoint::new(
            server.token_url().parse().unwrap(),
            ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
        )
        .unwrap(),
    )
}

/// The API agent: statuses come back as responses, and enough idle connections are kept
/// for a few hundred threads.
pub fn http() -> ureq::Agent {
    http_with(|c| c)
}

pub fn http_with(
    tweak: impl FnOnce(
        ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    ) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
) -> ureq::Agent {
    tweak(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(1024)
            .max_idle_connections_per_host(1024)
            .timeout_global(Some(Duration::from_secs(30))),
    )
    .build()
    .new_agent()
}

pub fn token_set(t: &IssuedTokens) -> TokenSet {
    TokenSet::new(AccessToken::new(t.access_token.clone()).unwrap())
        .with_refresh_token(RefreshToken::new(t.refresh_token.clone()).unwrap())
        .with_expires_in(Duration::from_secs(t.expires_in))
}

pub struct Setup {
    pub server: Server,
    pub agent: Agent,
    pub store: Arc<MemoryStore>,
    pub tokens: IssuedTokens,
}

/// A server, a logged-in agent, and the store the agent writes to.
pub fn setup(server_config: ServerConfig, tweak: impl FnOnce(&mut Config)) -> Setup {
    setup_with(server_config, tweak, http())
}

pub fn setup_with(
    server_config: ServerConfig,
    tweak: impl FnOnce(&mut Config),
    http: ureq::Agent,
) -> Setup {
    let server = Server::start(server_config);
    let mut config = session_config(&server);
    tweak(&mut config);
    let store = Arc::new(MemoryStore::new());
    let agent = Agent::builder(http, config)
        .oauth2(grant(&server))
        .store(store.clone())
        .jitter_seed(7)
        .build()
        .unwrap();
    let tokens = server.issue_tokens();
    agent.login(token_set(&tokens));
    Setup {
        server,
        agent,
        store,
        tokens,
    }
}

/// Sends `n` GETs from `n` threads released together, and returns the statuses, or the
/// error text of those that failed.
pub fn storm(agent: &Agent, url: &str, n: usize) -> Vec<Result<u16, String>> {
    storm_with(n, |_| match agent.get(url).call() {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(e.to_string()),
    })
}

/// Runs `f(i)` on `n` threads released together by a barrier; returns the results in order.
pub fn storm_with<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(n);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (start, f) = (&start, &f);
                scope.spawn(move || {
                    start.wait();
                    f(i)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// The tokens the store's record holds, if it holds tokens.
pub fn stored(store: &MemoryStore) -> Option<SavedTokens> {
    store.read().unwrap().and_then(|r| r.tokens().cloned())
}

/// True if the store's record is a tombstone. The blocking adapter writes it on the
/// thread that learnt of the logout, before that thread returns.
pub fn tombstoned(store: &MemoryStore) -> bool {
    matches!(
        store.read().unwrap().map(|r| r.entry),
        Some(Entry::LoggedOut(_))
    )
}
