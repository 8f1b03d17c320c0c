//! The refresh-and-persist protocol end to end: one test per behaviour that used to break
//! (the issue "The refresh-and-persist protocol inside the proven machine"), against the
//! testkit's real token endpoint and API on loopback, with both adapters where the
//! behaviour is theirs. Several clients on one token file stand in for processes (two
//! `FileStore` handles lock and lease exactly as two processes do); `tests/persist` runs
//! real processes.
#![cfg(all(feature = "file-store", feature = "reqwest", feature = "ureq"))]

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{
    AccessToken, Config, Entry, Error, Event, FileStore, LogoutReason, Origin, Phase, RefreshToken,
    TokenSet, TokenStore,
};
use reauth_testkit::{Fault, IssuedTokens, ServerConfig, TestServer};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn endpoint(server: &TestServer) -> TokenEndpoint {
    TokenEndpoint::new(
        server.token_url().parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap()
}

fn config(server: &TestServer) -> Config {
    let mut c = Config::new(Origin::parse(&server.base_url()).unwrap());
    c.refresh_timeout = Duration::from_secs(5);
    c.waiter_timeout = Duration::from_secs(20);
    c.backoff.base = Duration::from_millis(20);
    c.backoff.cap = Duration::from_millis(200);
    c
}

fn tokens(issued: &IssuedTokens) -> TokenSet {
    TokenSet::new(AccessToken::new(issued.access_token.clone()).unwrap())
        .with_refresh_token(RefreshToken::new(issued.refresh_token.clone()).unwrap())
        .with_expires_in(Duration::from_secs(issued.expires_in))
}

fn client(
    config: Config,
    server: &TestServer,
    store: impl TokenStore + 'static,
) -> reauth::reqwest::Client {
    reauth::reqwest::Client::builder(reqwest::Client::builder(), config)
        .oauth2(OAuth2Grant::refresh_token(endpoint(server)))
        .store(store)
        .build()
        .unwrap()
}

fn agent(
    config: Config,
    server: &TestServer,
    store: impl TokenStore + 'static,
) -> reauth::ureq::Agent {
    reauth::ureq::Agent::builder(ureq::Agent::new_with_defaults(), config)
        .oauth2(OAuth2Grant::refresh_token(endpoint(server)))
        .store(store)
        .build()
        .unwrap()
}

async fn get(c: &reauth::reqwest::Client, url: &str) -> Result<u16, Error> {
    match c.get(url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(e
            .auth()
            .cloned()
            .unwrap_or_else(|| panic!("transport: {e}"))),
    }
}

fn call(a: &reauth::ureq::Agent, url: &str) -> Result<u16, Error> {
    match a.get(url).call() {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(e
            .auth()
            .cloned()
            .unwrap_or_else(|| panic!("transport: {e}"))),
    }
}

async fn storm(c: &reauth::reqwest::Client, url: &str, n: usize) -> Vec<Result<u16, Error>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (c, url) = (c.clone(), url.to_owned());
            tokio::spawn(async move { get(&c, &url).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn storm_blocking(a: &reauth::ureq::Agent, url: &str, n: usize) -> Vec<Result<u16, Error>> {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..n).map(|_| s.spawn(|| call(a, url))).collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("end-to-end test exceeded its time limit")
}

/// Polls `cond` every 5 ms for at most 10 s: for states the test cannot await.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn tombstoned(path: &Path) -> bool {
    matches!(
        FileStore::new(path).read_record().unwrap().map(|r| r.entry),
        Some(Entry::LoggedOut(_))
    )
}

fn logged_out(r: &Result<u16, Error>) -> Option<&LogoutReason> {
    match r {
        Err(Error::LoggedOut(reason)) => Some(reason),
        _ => None,
    }
}

/// Behaviour 1: a logout while a refresh is on its way to being saved sticks. The
/// refresh's late answer is ignored, the file holds a tombstone, and the next start is
/// logged out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_refresh_sticks_in_the_file() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let c = client(config(&server), &server, FileStore::new(&path));
        c.login(tokens(&server.issue_tokens()));
        server.expire_access_tokens();
        server.push_fault(Fault::Delay(Duration::from_millis(600)));
        let url = server.api_url("items/1");
        let pending = tokio::spawn({
            let (c, url) = (c.clone(), url.clone());
            async move { get(&c, &url).await }
        });
        until("the refresh is in flight", || {
            server.stats().token_calls == 1
        })
        .await;
        c.logout();
        assert!(logged_out(&pending.await.unwrap()).is_some());
        // The refresh answers now (rotated tokens): ignored, the tombstone stays.
        until("the late answer arrived", || server.stats().token_ok == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tombstoned(&path));
        let next = client(config(&server), &server, FileStore::new(&path));
        assert_eq!(next.snapshot().phase, Phase::LoggedOut);
        assert!(logged_out(&get(&next, &url).await).is_some());
        server.shutdown().await;
    })
    .await;
}

/// Behaviour 1, blocking adapter: the refreshing thread is busy in the call when another
/// thread logs out.
#[test]
fn a_logout_during_a_blocking_refresh_sticks_in_the_file() {
    with_server(ServerConfig::default(), |server| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let a = agent(config(server), server, FileStore::new(&path));
        a.login(tokens(&server.issue_tokens()));
        server.expire_access_tokens();
        server.push_fault(Fault::Delay(Duration::from_millis(600)));
        let url = server.api_url("items/1");
        std::thread::scope(|s| {
            let refreshing = s.spawn(|| call(&a, &url));
            wait_for(|| server.stats().token_calls == 1);
            a.logout();
            // The refreshing thread's own request: the refresh it made is ignored.
            assert!(logged_out(&refreshing.join().unwrap()).is_some());
        });
        assert!(tombstoned(&path));
        let next = agent(config(server), server, FileStore::new(&path));
        assert_eq!(next.snapshot().phase, Phase::LoggedOut);
    });
}

/// Behaviour 2: a logout in one process holds for another that is still logged in: its
/// next refresh reads the tombstone instead of writing its tokens back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_in_one_process_logs_the_other_out_for_good() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let first = client(config(&server), &server, FileStore::new(&path));
        first.login(tokens(&server.issue_tokens()));
        let second =
            tokio::task::block_in_place(|| agent(config(&server), &server, FileStore::new(&path)));
        assert_eq!(second.snapshot().phase, Phase::Valid);
        first.logout();
        server.expire_access_tokens();
        let url = server.api_url("items/1");
        let results = tokio::task::block_in_place(|| storm_blocking(&second, &url, 8));
        for r in &results {
            assert!(
                matches!(logged_out(r), Some(LogoutReason::Elsewhere(_))),
                "{r:?}"
            );
        }
        // It never presented the refresh token: the tombstone was read under the lease.
        assert_eq!(server.stats().token_calls, 0);
        assert!(tombstoned(&path));
        server.shutdown().await;
    })
    .await;
}

/// Behaviour 3: two users on one token file never take each other's tokens. The first
/// session, whose record was replaced by another login, is logged out `Superseded`; the
/// other login keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_on_one_file_never_adopt_each_others_tokens() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default().with_scope("read"))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let reader = client(config(&server), &server, FileStore::new(&path));
        reader.login(tokens(&server.issue_tokens()));
        let admin = client(config(&server), &server, FileStore::new(&path));
        admin.login(tokens(&server.issue_tokens_with_scope("read admin")));
        server.expire_access_tokens();
        let url = server.api_url("items/1");
        let r = get(&reader, &url).await;
        assert!(
            matches!(logged_out(&r), Some(LogoutReason::Superseded)),
            "{r:?}"
        );
        // The other login is unharmed, and still the store's.
        assert_eq!(get(&admin, &url).await, Ok(200));
        assert_eq!(get(&admin, &server.api_url("scoped")).await, Ok(200));
        let record = FileStore::new(&path).read_record().unwrap().unwrap();
        assert_eq!(Some(record.lineage), admin.snapshot().lineage);
        assert_eq!(server.stats().reuse_detections, 0);
        server.shutdown().await;
    })
    .await;
}

/// Behaviour 4: the token endpoint rotates and answers after the refresh timeout. The
/// refresh is in doubt, not retried: its late answer is installed, nobody presents the
/// rotated-away token, nobody is logged out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_after_rotation_is_installed_not_retried() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let mut cfg = config(&server);
        cfg.refresh_timeout = Duration::from_millis(300);
        let c = client(cfg, &server, reauth::MemoryStore::new());
        c.login(tokens(&server.issue_tokens()));
        let mut events = c.subscribe();
        server.expire_access_tokens();
        server.push_fault(Fault::RotateThenDelay(Duration::from_millis(1200)));
        let results = storm(&c, &server.api_url("items/1"), 50).await;
        assert!(results.iter().all(|r| *r == Ok(200)), "{results:?}");
        let stats = server.stats();
        assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
        assert_eq!(c.snapshot().phase, Phase::Valid);
        let overdue = std::iter::from_fn(|| events.try_recv().ok())
            .any(|e| matches!(e, Event::RefreshOverdue { .. }));
        assert!(overdue, "the overdue refresh was reported");
        server.shutdown().await;
    })
    .await;
}

/// Behaviour 4, blocking adapter.
#[test]
fn a_late_blocking_answer_after_rotation_is_installed_not_retried() {
    with_server(ServerConfig::default(), |server| {
        let mut cfg = config(server);
        cfg.refresh_timeout = Duration::from_millis(300);
        let a = agent(cfg, server, reauth::MemoryStore::new());
        a.login(tokens(&server.issue_tokens()));
        server.expire_access_tokens();
        server.push_fault(Fault::RotateThenDelay(Duration::from_millis(1200)));
        let results = storm_blocking(&a, &server.api_url("items/1"), 16);
        assert!(results.iter().all(|r| *r == Ok(200)), "{results:?}");
        let stats = server.stats();
        assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
    });
}

/// Behaviour 5: a refresh closure slower than the refresh timeout and the backoff is
/// never running twice: rule 1 counts overdue refreshes, for every refresh source.
#[test]
fn a_slow_blocking_refresh_closure_never_runs_twice_at_once() {
    with_server(ServerConfig::default(), |server| {
        let (running, most, calls) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        // Issued once the login's tokens are expired on the server (expiry is for all).
        let next = Arc::new(std::sync::Mutex::new(None::<TokenSet>));
        let mut cfg = config(server);
        cfg.refresh_timeout = Duration::from_millis(100);
        let a = reauth::ureq::Agent::builder(ureq::Agent::new_with_defaults(), cfg)
            .refresh_fn({
                let (running, most, calls, next) =
                    (running.clone(), most.clone(), calls.clone(), next.clone());
                move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(800));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(next
                        .lock()
                        .unwrap()
                        .clone()
                        .expect("issued before the storm"))
                }
            })
            .build()
            .unwrap();
        a.login(tokens(&server.issue_tokens()));
        server.expire_access_tokens();
        *next.lock().unwrap() = Some(tokens(&server.issue_tokens()));
        let results = storm_blocking(&a, &server.api_url("items/1"), 16);
        assert!(results.iter().all(|r| *r == Ok(200)), "{results:?}");
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

/// Behaviour 5, async adapter: an async closure that outlives the refresh timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_async_refresh_closure_never_runs_twice_at_once() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let (running, most, calls) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let next = Arc::new(std::sync::Mutex::new(None::<TokenSet>));
        let mut cfg = config(&server);
        cfg.refresh_timeout = Duration::from_millis(100);
        let c = reauth::reqwest::Client::builder(reqwest::Client::builder(), cfg)
            .refresh_fn({
                let (running, most, calls, next) =
                    (running.clone(), most.clone(), calls.clone(), next.clone());
                move |_| {
                    let (running, most, calls, next) =
                        (running.clone(), most.clone(), calls.clone(), next.clone());
                    async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(800)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        let next = next.lock().unwrap().clone();
                        Ok(next.expect("issued before the storm"))
                    }
                }
            })
            .build()
            .unwrap();
        c.login(tokens(&server.issue_tokens()));
        server.expire_access_tokens();
        *next.lock().unwrap() = Some(tokens(&server.issue_tokens()));
        let results = storm(&c, &server.api_url("items/1"), 100).await;
        assert!(results.iter().all(|r| *r == Ok(200)), "{results:?}");
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        server.shutdown().await;
    })
    .await;
}

/// Behaviour 6: a replay sent with generation 2 meets a 401 because a second refresh to
/// generation 3 revoked it (as django-oauth-toolkit does at every rotation). It is tried
/// again with generation 3, not failed `Unauthorized`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_meets_a_newer_rotation_is_tried_again() {
    bounded(async {
        let server =
            TestServer::start(ServerConfig::default().with_access_revoked_on_rotation(true))
                .await
                .unwrap();
        let c = client(config(&server), &server, reauth::MemoryStore::new());
        c.login(tokens(&server.issue_tokens()));
        server.expire_access_tokens();
        // The slow request's token is checked 600 ms after it arrives.
        let slow = tokio::spawn({
            let (c, url) = (c.clone(), server.api_url("items/1?delay_ms=600"));
            async move { get(&c, &url).await }
        });
        until("the slow request replays with g2", || {
            c.snapshot().generation.get() == 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Meanwhile g2 is refused elsewhere: a second refresh, to g3, revokes it.
        server.expire_access_tokens();
        assert_eq!(get(&c, &server.api_url("items/2")).await, Ok(200));
        assert_eq!(c.snapshot().generation.get(), 3);
        assert_eq!(slow.await.unwrap(), Ok(200));
        assert_eq!(server.stats().token_calls, 2);
        server.shutdown().await;
    })
    .await;
}

/// Behaviour 6, blocking adapter.
#[test]
fn a_blocking_replay_that_meets_a_newer_rotation_is_tried_again() {
    with_server(
        ServerConfig::default().with_access_revoked_on_rotation(true),
        |server| {
            let a = agent(config(server), server, reauth::MemoryStore::new());
            a.login(tokens(&server.issue_tokens()));
            server.expire_access_tokens();
            let slow_url = server.api_url("items/1?delay_ms=600");
            std::thread::scope(|s| {
                let slow = s.spawn(|| call(&a, &slow_url));
                wait_for(|| a.snapshot().generation.get() == 2);
                std::thread::sleep(Duration::from_millis(100));
                server.expire_access_tokens();
                assert_eq!(call(&a, &server.api_url("items/2")), Ok(200));
                assert_eq!(slow.join().unwrap(), Ok(200));
            });
            assert_eq!(server.stats().token_calls, 2);
        },
    );
}

/// Behaviour 7: an API that refuses every fresh token costs a few refreshes, not one per
/// request, and every caller still hears `Unauthorized` promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_refusing_every_token_costs_a_few_refreshes_not_one_per_request() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let mut cfg = config(&server);
        cfg.backoff = reauth::Backoff::default();
        let c = client(cfg, &server, reauth::MemoryStore::new());
        c.login(tokens(&server.issue_tokens()));
        let url = server.api_url("reject");
        for _ in 0..100 {
            let started = Instant::now();
            assert_eq!(get(&c, &url).await, Err(Error::Unauthorized));
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        let calls = server.stats().token_calls;
        assert!(
            (1..=6).contains(&calls),
            "{calls} refreshes for 100 requests"
        );
        assert_eq!(c.snapshot().phase, Phase::Valid);
        server.shutdown().await;
    })
    .await;
}

/// Behaviour 7, blocking adapter.
#[test]
fn a_blocking_client_of_an_api_refusing_every_token_refreshes_a_few_times() {
    with_server(ServerConfig::default(), |server| {
        let mut cfg = config(server);
        cfg.backoff = reauth::Backoff::default();
        let a = agent(cfg, server, reauth::MemoryStore::new());
        a.login(tokens(&server.issue_tokens()));
        let url = server.api_url("reject");
        for _ in 0..100 {
            assert_eq!(call(&a, &url), Err(Error::Unauthorized));
        }
        let calls = server.stats().token_calls;
        assert!(
            (1..=6).contains(&calls),
            "{calls} refreshes for 100 requests"
        );
    });
}

/// Behaviour 8: an idle client does not rotate tokens on a timer (a refresh-token idle
/// timeout then works as the server meant it); the next request refreshes. Keeping the
/// token warm is an explicit option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_does_not_refresh_on_a_timer() {
    bounded(async {
        let server = TestServer::start(
            ServerConfig::default().with_access_token_lifetime(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        let idle_config = || {
            let mut cfg = config(&server);
            cfg.leeway = Duration::from_millis(300);
            cfg.refresh_window = Duration::from_millis(500);
            cfg
        };
        let url = server.api_url("items/1");
        let idle = client(idle_config(), &server, reauth::MemoryStore::new());
        idle.login(tokens(&server.issue_tokens()));
        assert_eq!(get(&idle, &url).await, Ok(200));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(server.stats().token_calls, 0, "an idle client refreshed");
        assert_eq!(get(&idle, &url).await, Ok(200));
        assert_eq!(server.stats().token_calls, 1);

        let mut warm_config = idle_config();
        warm_config.keep_warm = true;
        let warm = client(warm_config, &server, reauth::MemoryStore::new());
        warm.login(tokens(&server.issue_tokens()));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(server.stats().token_calls >= 2, "keep_warm kept it warm");
        assert_eq!(get(&warm, &url).await, Ok(200));
        server.shutdown().await;
    })
    .await;
}

/// The testkit on a runtime this test owns; the agents block on plain threads.
fn with_server(config: ServerConfig, f: impl FnOnce(&TestServer)) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start(config)).unwrap();
    f(&server);
    rt.block_on(server.shutdown());
}

/// Polls `cond` every 5 ms for at most 10 s, on a blocking thread.
fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition never held"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
