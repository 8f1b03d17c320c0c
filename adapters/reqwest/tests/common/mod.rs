//! Shared set-up for the end-to-end tests: a testkit server on loopback and a client for
//! it. Every test bounds itself in time and shuts its server down.
#![allow(dead_code)]

use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{
    AccessToken, Config, Entry, MemoryStore, Origin, RefreshToken, SavedTokens, TokenSet,
    TokenStore,
};
use reauth_reqwest::Client;
use reauth_testkit::{IssuedTokens, ServerConfig, TestServer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Every end-to-end test fails instead of hanging past this.
pub const LIMIT: Duration = Duration::from_secs(60);

pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("end-to-end test exceeded its time limit")
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

/// An API client speaking h2c, so thousands of concurrent requests share a few
/// connections (the process may hold at most 20,000 open files).
pub fn h2c() -> reqwest::ClientBuilder {
    reqwest::Client::builder().http2_prior_knowledge()
}

pub fn token_set(t: &IssuedTokens) -> TokenSet {
    TokenSet::new(AccessToken::new(t.access_token.clone()).unwrap())
        .with_refresh_token(RefreshToken::new(t.refresh_token.clone()).unwrap())
        .with_expires_in(Duration::from_secs(t.expires_in))
}

pub struct Setup {
    pub server: TestServer,
    pub client: Client,
    pub store: Arc<MemoryStore>,
    pub tokens: IssuedTokens,
}

/// A server, a logged-in client, and the store the client writes to.
pub async fn setup(server_config: ServerConfig, tweak: impl FnOnce(&mut Config)) -> Setup {
    let server = TestServer::start(server_config).await.unwrap();
    let mut config = session_config(&server);
    tweak(&mut config);
    let store = Arc::new(MemoryStore::new());
    let client = Client::builder(h2c(), config)
        .oauth2(grant(&server))
        .store(store.clone())
        .jitter_seed(7)
        .build()
        .unwrap();
    let tokens = server.issue_tokens();
    client.login(token_set(&tokens));
    Setup {
        server,
        client,
        store,
        tokens,
    }
}

/// Sends `n` truly concurrent GETs (all spawned before any is awaited) and returns the
/// statuses, or the error text of those that failed.
pub async fn storm(client: &Client, url: &str, n: usize) -> Vec<Result<u16, String>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                match client.get(url).send().await {
                    Ok(r) => Ok(r.status().as_u16()),
                    // The whole source chain, so a transport failure says what broke.
                    Err(e) => Err(error_chain(&e)),
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// An error and all its sources, one after another.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The tokens the store's record holds, if it holds tokens.
pub fn stored(store: &MemoryStore) -> Option<SavedTokens> {
    store.read().unwrap().and_then(|r| r.tokens().cloned())
}

/// True once the store's record is a tombstone. The adapter writes it from a task of its
/// own, so this waits for it (bounded).
pub async fn tombstoned(store: &MemoryStore) -> bool {
    for _ in 0..500 {
        if let Some(Entry::LoggedOut(_)) = store.read().unwrap().map(|r| r.entry) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Every log line this test binary writes, from the moment [`capture_logs`] is called.
#[derive(Clone, Default)]
pub struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the process-wide subscriber at `level` for every target, writing into the
/// returned capture, with thread ids (so the wire dumps of concurrent threads can be told
/// apart). `init` also installs the `log` bridge, so the `log` records of reqwest and its
/// stack are captured too. Once per test binary.
pub fn capture_logs(level: tracing::Level) -> Capture {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_thread_ids(true)
        .with_writer(move || writer.clone())
        .init();
    capture
}
