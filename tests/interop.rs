//! Interop with a real, certified authorization server: node `oidc-provider` (pinned in
//! `interop/package-lock.json`) and a protected API on 127.0.0.1, started by each test
//! (`interop/server.mjs`) and killed when it ends. Every scenario runs through both
//! adapters: `reauth::reqwest` (async) and `reauth::ureq` (blocking).
//!
//! Without node the suite prints why and passes; without `interop/node_modules` it runs
//! `npm ci` first (`.ci/run` does that before the tests).

#[path = "interop/oidc_provider.rs"]
mod oidc_provider;

use oidc_provider::{OidcProvider, Stats};
use reauth::protocol::OAuth2Grant;
use reauth::{Config, Error as AuthError, LogoutReason, Origin, Phase, RefreshTrigger};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// No test runs longer than this, whatever the server does.
const LIMIT: Duration = Duration::from_secs(60);

/// Concurrent requests in a storm; the blocking adapter runs one thread per request.
const STORM: usize = 1000;

/// How long the API holds each storm request before checking its token.
const STORM_HOLD: Duration = Duration::from_millis(1000);

// ---- The two adapters, each built in one place --------------------------------------

fn reqwest_client(config: Config, grant: OAuth2Grant) -> reauth::reqwest::Client {
    reauth::reqwest::Client::builder(reqwest::Client::builder(), config)
        .oauth2(grant)
        .build()
        .unwrap()
}

fn ureq_agent(config: Config, grant: OAuth2Grant) -> reauth::ureq::Agent {
    // Statuses come back as responses, as with reqwest, so both are checked alike.
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    reauth::ureq::Agent::builder(http, config)
        .oauth2(grant)
        .build()
        .unwrap()
}

/// What a scenario needs of an adapter, so each scenario is written once.
trait Adapter: Clone + Send + Sync + 'static {
    fn build(config: Config, grant: OAuth2Grant) -> Self;
    /// One GET: its status, or the session's error.
    fn get(&self, url: &str) -> Result<u16, Failure>;
    /// `n` concurrent GETs to `url`.
    fn storm(&self, url: &str, n: usize) -> Vec<Result<u16, Failure>>;
    fn login(&self, tokens: reauth::TokenSet);
    fn phase(&self) -> Phase;
}

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// The session refused or failed it.
    Auth(AuthError),
    /// The HTTP client failed.
    Http(String),
}

impl Failure {
    fn auth(&self) -> &AuthError {
        match self {
            Failure::Auth(e) => e,
            Failure::Http(e) => panic!("expected a session error, got an HTTP error: {e}"),
        }
    }
}

/// The async adapter, on a runtime of its own (scenarios are blocking code).
#[derive(Clone)]
struct Async {
    client: reauth::reqwest::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Adapter for Async {
    fn build(config: Config, grant: OAuth2Grant) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(async { reqwest_client(config, grant) });
        Self {
            client,
            runtime: Arc::new(runtime),
        }
    }

    fn get(&self, url: &str) -> Result<u16, Failure> {
        self.runtime
            .block_on(get_async(self.client.clone(), url.to_owned()))
    }

    fn storm(&self, url: &str, n: usize) -> Vec<Result<u16, Failure>> {
        self.runtime.block_on(async {
            let tasks: Vec<_> = (0..n)
                .map(|_| tokio::spawn(get_async(self.client.clone(), url.to_owned())))
                .collect();
            let mut results = Vec::with_capacity(n);
            for task in tasks {
                results.push(task.await.unwrap());
            }
            results
        })
    }

    fn login(&self, tokens: reauth::TokenSet) {
        self.client.login(tokens);
    }

    fn phase(&self) -> Phase {
        self.client.snapshot().phase
    }
}

async fn get_async(client: reauth::reqwest::Client, url: String) -> Result<u16, Failure> {
    match client.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read to the end, so the connection goes back to the pool.
            response
                .bytes()
                .await
                .map_err(|e| Failure::Http(e.to_string()))?;
            Ok(status)
        }
        Err(reauth::reqwest::Error::Auth(e)) => Err(Failure::Auth(e)),
        Err(e) => Err(Failure::Http(e.to_string())),
    }
}

/// The blocking adapter.
#[derive(Clone)]
struct Blocking(reauth::ureq::Agent);

impl Adapter for Blocking {
    fn build(config: Config, grant: OAuth2Grant) -> Self {
        Self(ureq_agent(config, grant))
    }

    fn get(&self, url: &str) -> Result<u16, Failure> {
        match self.0.get(url).call() {
            Ok(mut response) => {
                let status = response.status().as_u16();
                response
                    .body_mut()
                    .read_to_vec()
                    .map_err(|e| Failure::Http(e.to_string()))?;
                Ok(status)
            }
            Err(reauth::ureq::Error::Auth(e)) => Err(Failure::Auth(e)),
            Err(e) => Err(Failure::Http(e.to_string())),
        }
    }

    fn storm(&self, url: &str, n: usize) -> Vec<Result<u16, Failure>> {
        // Every thread is ready before any sends, so they start as one.
        let start = Barrier::new(n);
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn_scoped(scope, || {
                            start.wait();
                            self.get(url)
                        })
                        .unwrap()
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    }

    fn login(&self, tokens: reauth::TokenSet) {
        self.0.login(tokens);
    }

    fn phase(&self) -> Phase {
        self.0.snapshot().phase
    }
}

/// Runs `scenario` against a fresh server, failing it past [`LIMIT`] (dropping the server
/// then kills it, which unblocks any request still waiting on it). Skips, with the reason
/// printed, when node is not installed.
fn run(scenario: fn(&OidcProvider)) {
    let Some(server) = OidcProvider::start() else {
        return;
    };
    let server = Arc::new(server);
    let (tx, rx) = mpsc::channel();
    let worker = {
        let server = server.clone();
        std::thread::spawn(move || {
            scenario(&server);
            let _ = tx.send(());
        })
    };
    match rx.recv_timeout(LIMIT) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("interop scenario exceeded {LIMIT:?}"),
    }
}

fn config(server: &OidcProvider) -> Config {
    Config::new(Origin::parse(&server.info().api).unwrap())
}

fn client_credentials_config(server: &OidcProvider) -> Config {
    let mut config = config(server);
    config.requires_refresh_token = false;
    config
}

fn all_ok(results: &[Result<u16, Failure>]) {
    let bad: Vec<_> = results.iter().filter(|r| !matches!(r, Ok(200))).collect();
    assert!(
        bad.is_empty(),
        "{} of {} failed, e.g. {:?}",
        bad.len(),
        results.len(),
        bad[0]
    );
}

fn print_figures(name: &str, stats: &Stats) {
    println!("{name}: {}", stats.0);
}

// ---- Scenarios -----------------------------------------------------------------------

/// Without `resource`, oidc-provider issues a client-credentials token for no resource
/// server; the API refuses it, the session gets a second one (refused alike) and the call
/// ends in `Unauthorized`. What reauth did before it could send `resource`.
fn client_credentials_without_resource_is_refused<A: Adapter>(s: &OidcProvider) {
    let api = A::build(
        client_credentials_config(s),
        OAuth2Grant::client_credentials(s.endpoint()),
    );
    let err = api.get(&s.item(1)).unwrap_err();
    assert_eq!(err.auth(), &AuthError::Unauthorized);
    let stats = s.stats();
    assert_eq!(stats.token_calls("client_credentials"), 2);
    assert_eq!(stats.api(401), 2);
    assert_eq!(stats.api(200), 0);
}

/// With `resource`, one grant serves every call, and an expired token is replaced by one
/// more grant.
fn client_credentials_with_resource_is_accepted<A: Adapter>(s: &OidcProvider) {
    let endpoint = s.endpoint().with_resource(&s.info().resource).unwrap();
    let api = A::build(
        client_credentials_config(s),
        OAuth2Grant::client_credentials(endpoint),
    );
    all_ok(&api.storm(&s.item(1), 20));
    assert_eq!(s.stats().token_calls("client_credentials"), 1);
    s.expire();
    all_ok(&api.storm(&s.item(2), 20));
    let stats = s.stats();
    assert_eq!(stats.token_calls("client_credentials"), 2);
    assert_eq!(stats.api(200), 40);
}

/// A first pair from authorization code + PKCE; each refresh rotates the refresh token, and
/// the session presents the newest one every time: no reuse is ever detected.
fn refresh_token_rotation<A: Adapter>(s: &OidcProvider) {
    let endpoint = s.endpoint().with_resource(&s.info().resource).unwrap();
    let api = A::build(config(s), OAuth2Grant::refresh_token(endpoint));
    api.login(s.login());
    assert_eq!(api.get(&s.item(1)).unwrap(), 200);
    // Two rounds: a third expiry this soon would make a second refreshed token in a row
    // refused within moments of its arrival, which the session rightly takes for an API
    // that refuses every fresh token (`Config::backoff`) and holds refreshing back.
    for round in 1..=2 {
        s.expire();
        assert_eq!(api.get(&s.item(round)).unwrap(), 200, "round {round}");
        let stats = s.stats();
        assert_eq!(stats.token_calls("refresh_token"), u64::from(round));
        assert_eq!(stats.reuse_detections(), 0);
        assert_eq!(stats.grants_revoked(), 0);
    }
    assert_eq!(api.phase(), Phase::Valid);
}

/// Rotation is real: the first refresh token, presented again after the session rotated
/// it (by a thief holding a copy), is detected as reused and oidc-provider revokes the
/// grant. The session, whose newest refresh token died with the grant, logs out on its next
/// refresh; it never presented a spent token itself (one reuse detection, the thief's).
fn reused_refresh_token_revokes_the_grant<A: Adapter>(s: &OidcProvider) {
    let endpoint = s.endpoint().with_resource(&s.info().resource).unwrap();
    let api = A::build(config(s), OAuth2Grant::refresh_token(endpoint.clone()));
    let first = s.login();
    let stolen = first.refresh_token().unwrap().clone();
    api.login(first);
    s.expire();
    assert_eq!(api.get(&s.item(1)).unwrap(), 200);
    assert_eq!(s.send(endpoint.refresh_token_request(&stolen)), 400);
    let stats = s.stats();
    assert_eq!(stats.reuse_detections(), 1);
    assert_eq!(stats.grants_revoked(), 1);
    let err = api.get(&s.item(2)).unwrap_err();
    assert!(
        matches!(
            err.auth(),
            AuthError::LoggedOut(LogoutReason::RefreshRejected(_))
        ),
        "{err:?}"
    );
    assert_eq!(api.phase(), Phase::LoggedOut);
    let stats = s.stats();
    assert_eq!(stats.token_calls("refresh_token"), 3);
    assert_eq!(stats.reuse_detections(), 1);
}

/// Every access token expired at once, then a storm: exactly one refresh, no grant
/// revoked, every request answered 200.
fn storm_after_expiry<A: Adapter>(s: &OidcProvider) {
    let endpoint = s.endpoint().with_resource(&s.info().resource).unwrap();
    let api = A::build(config(s), OAuth2Grant::refresh_token(endpoint));
    api.login(s.login());
    assert_eq!(api.get(&s.item(0)).unwrap(), 200);
    s.expire();
    // The API holds each request a moment before checking its token, so the storm is in
    // flight with the expired token before the first refusal comes back.
    let results = api.storm(&s.slow_item(7, STORM_HOLD), STORM);
    assert_eq!(results.len(), STORM);
    all_ok(&results);
    let stats = s.stats();
    print_figures(std::any::type_name::<A>(), &stats);
    let refused = stats.api(401);
    assert!(
        refused >= STORM as u64 / 4,
        "only {refused} of {STORM} requests carried the expired token: not a storm"
    );
    assert_eq!(stats.api(200), STORM as u64 + 1);
    assert_eq!(stats.token_calls("refresh_token"), 1);
    assert_eq!(stats.reuse_detections(), 0);
    assert_eq!(stats.grants_revoked(), 0);
    assert_eq!(api.phase(), Phase::Valid);
}

/// The grant is revoked at the server (an administrator removed the app): the next
/// request's refresh is refused once, the session logs out, and later requests fail at
/// once without asking the token endpoint again.
fn revoked_grant_logs_out<A: Adapter>(s: &OidcProvider) {
    let endpoint = s.endpoint().with_resource(&s.info().resource).unwrap();
    let api = A::build(config(s), OAuth2Grant::refresh_token(endpoint));
    api.login(s.login());
    assert_eq!(api.get(&s.item(1)).unwrap(), 200);
    s.revoke();
    let err = api.get(&s.item(2)).unwrap_err();
    assert!(
        matches!(
            err.auth(),
            AuthError::LoggedOut(LogoutReason::RefreshRejected(_))
        ),
        "{err:?}"
    );
    assert_eq!(api.phase(), Phase::LoggedOut);
    let later = api.get(&s.item(3)).unwrap_err();
    assert!(later.auth().is_permanent(), "{later:?}");
    let stats = s.stats();
    assert_eq!(stats.token_calls("refresh_token"), 1);
    assert_eq!(stats.0["token_errors"]["refresh_token"]["invalid_grant"], 1);
    // The later request was not sent at all.
    assert_eq!(stats.api(401), 1);
}

/// An API that answers an expired token with a bare 403, as django-oauth-toolkit's stock
/// views do: the default trigger hands the 403 back; `Rfc6750OrBare403` refreshes once
/// and the replay succeeds; a 403 with `insufficient_scope` never refreshes.
fn bare_403_preset<A: Adapter>(s: &OidcProvider) {
    let endpoint = s.endpoint().with_resource(&s.info().resource).unwrap();
    let grant = OAuth2Grant::refresh_token(endpoint);
    let mut preset = config(s);
    preset.trigger = RefreshTrigger::Rfc6750OrBare403;
    let (plain, bare) = (A::build(config(s), grant.clone()), A::build(preset, grant));
    plain.login(s.login());
    bare.login(s.login());
    s.expire();
    assert_eq!(plain.get(&s.dot_item(1)).unwrap(), 403);
    assert_eq!(s.stats().token_calls("refresh_token"), 0);
    assert_eq!(bare.get(&s.dot_item(1)).unwrap(), 200);
    assert_eq!(s.stats().token_calls("refresh_token"), 1);
    all_ok(&bare.storm(&s.dot_item(2), 20));
    assert_eq!(bare.get(&s.admin_only()).unwrap(), 403);
    let stats = s.stats();
    assert_eq!(stats.token_calls("refresh_token"), 1);
    assert_eq!(stats.reuse_detections(), 0);
}

// ---- Both adapters ---------------------------------------------------------------------

#[test]
fn reqwest_client_credentials_without_resource_is_refused() {
    run(client_credentials_without_resource_is_refused::<Async>);
}

#[test]
fn ureq_client_credentials_without_resource_is_refused() {
    run(client_credentials_without_resource_is_refused::<Blocking>);
}

#[test]
fn reqwest_client_credentials_with_resource_is_accepted() {
    run(client_credentials_with_resource_is_accepted::<Async>);
}

#[test]
fn ureq_client_credentials_with_resource_is_accepted() {
    run(client_credentials_with_resource_is_accepted::<Blocking>);
}

#[test]
fn reqwest_refresh_token_rotation_from_code_and_pkce() {
    run(refresh_token_rotation::<Async>);
}

#[test]
fn ureq_refresh_token_rotation_from_code_and_pkce() {
    run(refresh_token_rotation::<Blocking>);
}

#[test]
fn reqwest_reused_refresh_token_revokes_the_grant_and_logs_out() {
    run(reused_refresh_token_revokes_the_grant::<Async>);
}

#[test]
fn ureq_reused_refresh_token_revokes_the_grant_and_logs_out() {
    run(reused_refresh_token_revokes_the_grant::<Blocking>);
}

#[test]
fn reqwest_storm_of_1000_after_expiry_refreshes_once() {
    run(storm_after_expiry::<Async>);
}

#[test]
fn ureq_storm_of_1000_after_expiry_refreshes_once() {
    run(storm_after_expiry::<Blocking>);
}

#[test]
fn reqwest_revoked_grant_logs_out() {
    run(revoked_grant_logs_out::<Async>);
}

#[test]
fn ureq_revoked_grant_logs_out() {
    run(revoked_grant_logs_out::<Blocking>);
}

#[test]
fn reqwest_bare_403_preset_refreshes() {
    run(bare_403_preset::<Async>);
}

#[test]
fn ureq_bare_403_preset_refreshes() {
    run(bare_403_preset::<Blocking>);
}
