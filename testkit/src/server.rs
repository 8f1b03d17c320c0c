//! The [`TestServer`] handle.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::AdminService;
use crate::config::ServerConfig;
use crate::fault::Fault;
use crate::leak::LeakService;
use crate::serve::{spawn_accept_loop, MainService};
use crate::shutdown::{self, ShutdownTrigger};
use crate::state::Shared;
use crate::stats::Stats;
use crate::tokens::{FamilyId, FamilyRef, IssuedTokens};

/// A running token endpoint + protected API on `127.0.0.1`, plus a second "leak"
/// listener on another port.
///
/// Dropping the handle shuts both listeners and every connection down (in the
/// background); [`shutdown`](Self::shutdown) does the same and waits until the ports
/// are closed.
pub struct TestServer {
    addr: SocketAddr,
    leak_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    trigger: Option<ShutdownTrigger>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("leak_addr", &self.leak_addr)
            .field("admin_addr", &self.admin_addr)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Binds `127.0.0.1:{config.port}` (0 = any free port) and `127.0.0.1:0` for the leak
    /// listener, plus `127.0.0.1:{config.admin_port}` if [`ServerConfig::admin`] is on, and
    /// starts serving. Must be called inside a tokio runtime.
    pub async fn start(config: ServerConfig) -> io::Result<TestServer> {
        let main = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
        let leak = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let admin = match config.admin {
            true => Some(TcpListener::bind((Ipv4Addr::LOCALHOST, config.admin_port)).await?),
            false => None,
        };
        let addr = main.local_addr()?;
        let leak_addr = leak.local_addr()?;
        let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        let (trigger, signal) = shutdown::channel();
        let streams = config.http2_max_concurrent_streams;
        let shared = Arc::new(Shared::new(
            config,
            format!("http://{addr}"),
            format!("http://{leak_addr}"),
            signal.clone(),
        ));
        let counted = shared.clone();
        let mut tasks = vec![
            spawn_accept_loop(
                main,
                MainService(shared.clone()),
                signal.clone(),
                streams,
                move || counted.stats.connection(),
            ),
            spawn_accept_loop(
                leak,
                LeakService(shared.clone()),
                signal.clone(),
                streams,
                || {},
            ),
        ];
        if let Some(admin) = admin {
            // Control traffic is not counted in `connections_accepted`.
            let service = AdminService(shared.clone());
            tasks.push(spawn_accept_loop(admin, service, signal, streams, || {}));
        }
        Ok(TestServer {
            addr,
            leak_addr,
            admin_addr,
            shared,
            trigger: Some(trigger),
            tasks,
        })
    }

    /// Address of the main listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OAuth2 token endpoint, `{base}/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }

    /// The custom JSON refresh endpoint, `{base}/auth/refresh`.
    pub fn json_refresh_url(&self) -> String {
        format!("{}/auth/refresh", self.base_url())
    }

    /// A protected API URL: `api_url("items/1")` (or `"/items/1"`) is `{base}/api/items/1`.
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/api/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// Base URL of the leak listener (another origin), `http://127.0.0.1:OTHER_PORT`.
    pub fn leak_url(&self) -> String {
        format!("http://{}", self.leak_addr)
    }

    /// Address of the leak listener.
    pub fn leak_addr(&self) -> SocketAddr {
        self.leak_addr
    }

    /// Address of the admin listener, if [`ServerConfig::admin`] is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// `http://127.0.0.1:ADMIN_PORT/_admin`, no trailing slash, if [`ServerConfig::admin`]
    /// is on. Routes: `{admin_url}/stats`, `{admin_url}/faults`, ... (see the crate docs).
    pub fn admin_url(&self) -> Option<String> {
        self.admin_addr.map(|a| format!("http://{a}/_admin"))
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Logs a user in: starts a new token family with the configured scope.
    pub fn issue_tokens(&self) -> IssuedTokens {
        let scope = self.shared.config.scope.clone();
        self.issue_tokens_with_scope(&scope)
    }

    /// Like [`issue_tokens`](Self::issue_tokens) with an explicit scope (any scope:
    /// this is the login, not a client request).
    pub fn issue_tokens_with_scope(&self, scope: &str) -> IssuedTokens {
        self.shared.issue_tokens(scope)
    }

    /// Expires every access token issued so far, server side, right now. Refresh tokens
    /// keep working; tokens issued afterwards get the normal lifetime.
    pub fn expire_access_tokens(&self) {
        self.shared.tokens().expire_all(Instant::now());
    }

    /// Revokes a whole family (all its access and refresh tokens), named by id or by any
    /// of its tokens. Returns false if no live family matched.
    pub fn revoke_family<'a>(&self, which: impl Into<FamilyRef<'a>>) -> bool {
        self.shared.revoke(which.into())
    }

    /// The family a token (access or refresh) belongs to.
    pub fn family_of(&self, token: &str) -> Option<FamilyId> {
        self.shared.tokens().find(FamilyRef::Token(token))
    }

    /// The family's current refresh token, named by id or by any of its tokens: the one
    /// the last successful rotation issued, even if its answer never reached the client
    /// (see [`Fault::RotateThenDrop`]). `None` if the family is unknown, revoked, or has
    /// no refresh token (`client_credentials`).
    pub fn current_refresh_token<'a>(&self, which: impl Into<FamilyRef<'a>>) -> Option<String> {
        let tokens = self.shared.tokens();
        let id = tokens.find(which.into())?;
        tokens.current_refresh(id).map(str::to_owned)
    }

    /// Queues a fault for the next token-endpoint call (FIFO, one consumed per call to
    /// `/oauth/token` or `/auth/refresh`).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.faults().push_back(fault);
    }

    /// Queues the same fault for the next `n` token-endpoint calls.
    pub fn push_faults(&self, fault: Fault, n: usize) {
        self.shared.faults().extend(std::iter::repeat_n(fault, n));
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// How many queued faults are still waiting for a call.
    pub fn pending_faults(&self) -> usize {
        self.shared.faults().len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Zeroes the counters (except the `hangs_in_flight` gauge).
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Every `Authorization` header value the leak listener received, in order.
    pub fn leaked_authorizations(&self) -> Vec<String> {
        self.stats().leaked_authorizations
    }

    /// Stops both listeners and all connections, and waits until they are closed: when
    /// this returns, the ports are free and no request handler is left running.
    pub async fn shutdown(mut self) {
        self.trigger.take();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Dropping the trigger fires the shutdown signal; the accept loops then close
        // their listeners and connections on their own.
        self.trigger.take();
    }
}
