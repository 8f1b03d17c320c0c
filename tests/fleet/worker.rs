//! The child process: one replica of a service, with a reauth client over the shared
//! `RedisStore`. It is this test binary itself, run again with [`WORKER_ENV`] set (see
//! `main.rs`), so no extra binary has to be built or found.
//!
//! It talks to the parent over stdout, one line per message, each starting with
//! [`PREFIX`] (libtest prints its own lines too): `ready` once the client is built (the
//! record read from Redis), then `result ...` lines. Modes:
//! - `storm`: waits for a `go` line on stdin, so that every replica meets the expired
//!   token together, then sends [`REQUESTS_ENV`] concurrent requests (tasks on the async
//!   adapter, threads on the blocking one) and answers `result ok=<n> failed=<n>
//!   store_failed=<n> first=<text>`.
//! - `once`: one request at once.
//! - `session`: one command per stdin line: `get` (one request), `storm <n>` (`n` at
//!   once), `logout`, `events` (`result store_failed=<n>`), `quit`.
//!
//! A request's result is `result ok`, `result logged_out <why>`, `result status <n>` or
//! `result error <text>`. [`ADAPTER_ENV`] picks the adapter: `reqwest` (default) or `ureq`.

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{Config, Entry, Error, Event, LogoutReason, Origin, TokenStore};
use reauth_redis::{redis, RedisStore};
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const WORKER_ENV: &str = "REAUTH_FLEET_WORKER";
pub const BASE_ENV: &str = "REAUTH_FLEET_BASE";
pub const REDIS_ENV: &str = "REAUTH_FLEET_REDIS";
pub const SESSION_ENV: &str = "REAUTH_FLEET_SESSION";
pub const ADAPTER_ENV: &str = "REAUTH_FLEET_ADAPTER";
pub const REQUESTS_ENV: &str = "REAUTH_FLEET_REQUESTS";
/// `Config::refresh_deadline` in milliseconds (the lease lives this plus a margin).
pub const DEADLINE_ENV: &str = "REAUTH_FLEET_DEADLINE_MS";
pub const PREFIX: &str = "@worker ";

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// How long the worker waits for its own store writes to show in Redis.
const SETTLE: Duration = Duration::from_secs(10);

fn say(line: &str) {
    println!("{PREFIX}{line}");
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The store every replica of a test shares. Generous timeouts: a loaded CI machine must
/// not turn a slow answer into a store failure (a stopped Redis refuses at once anyway).
pub fn store(redis_url: &str, session: &str) -> RedisStore {
    RedisStore::builder(redis::Client::open(redis_url).unwrap(), session)
        .connect_timeout(Duration::from_secs(3))
        .response_timeout(Duration::from_secs(3))
        .build()
}

/// Runs the worker described by the environment and exits the process with its code.
pub fn main(mode: &str) -> ! {
    let code = match (env(BASE_ENV), env(REDIS_ENV), env(SESSION_ENV)) {
        (Some(base), Some(redis), Some(session)) => run(mode, &base, &redis, &session),
        _ => EXIT_USAGE,
    };
    std::process::exit(code)
}

fn config(base: &str) -> Config {
    let mut config = Config::new(Origin::parse(base).unwrap());
    config.refresh_timeout = Duration::from_secs(10);
    config.waiter_timeout = Duration::from_secs(60);
    config.backoff.base = Duration::from_millis(20);
    config.backoff.cap = Duration::from_millis(200);
    if let Some(ms) = env(DEADLINE_ENV).and_then(|v| v.parse().ok()) {
        config.refresh_deadline = Duration::from_millis(ms);
        config.refresh_timeout = config.refresh_timeout.min(config.refresh_deadline);
    }
    config
}

fn grant(base: &str) -> OAuth2Grant {
    let endpoint = TokenEndpoint::new(
        format!("{base}/oauth/token").parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap();
    OAuth2Grant::refresh_token(endpoint)
}

/// The async adapter over h2c, so that hundreds of requests share a few sockets.
fn reqwest_client(base: &str, store: RedisStore) -> reauth::reqwest::Client {
    let http = reqwest::Client::builder().http2_prior_knowledge();
    reauth::reqwest::Client::builder(http, config(base))
        .oauth2(grant(base))
        .store(store)
        .build()
        .unwrap()
}

/// The blocking adapter; `on_event` sees every session event.
fn ureq_agent(
    base: &str,
    store: RedisStore,
    on_event: impl Fn(&Event) + Send + Sync + 'static,
) -> reauth::ureq::Agent {
    reauth::ureq::Agent::builder(ureq::Agent::new_with_defaults(), config(base))
        .oauth2(grant(base))
        .store(store)
        .on_event(on_event)
        .build()
        .unwrap()
}

/// One replica's client, on either adapter.
enum Replica {
    Reqwest(reauth::reqwest::Client, tokio::runtime::Runtime),
    Ureq(reauth::ureq::Agent),
}

/// What one request came to.
enum Outcome {
    Ok,
    LoggedOut(String),
    Status(u16),
    Failed(String),
}

impl Replica {
    fn get(&self, url: &str) -> Outcome {
        match self {
            Replica::Reqwest(client, rt) => match rt.block_on(client.get(url).send()) {
                Ok(r) if r.status() == 200 => Outcome::Ok,
                Ok(r) => Outcome::Status(r.status().as_u16()),
                Err(e) if e.is_logged_out() => {
                    Outcome::LoggedOut(e.auth().map_or("other".into(), why))
                }
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Replica::Ureq(agent) => match agent.get(url).call() {
                Ok(r) if r.status() == 200 => Outcome::Ok,
                Ok(r) => Outcome::Status(r.status().as_u16()),
                Err(e) if e.is_logged_out() => {
                    Outcome::LoggedOut(e.auth().map_or("other".into(), why))
                }
                Err(e) => Outcome::Failed(e.to_string()),
            },
        }
    }

    /// `n` requests at once: (succeeded, failed, the first failure).
    fn storm(self: &Arc<Self>, url: &str, n: usize) -> (usize, usize, String) {
        let outcomes: Vec<Outcome> = match &**self {
            Replica::Reqwest(client, rt) => rt.block_on(async {
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        let (client, url) = (client.clone(), url.to_owned());
                        tokio::spawn(async move {
                            match client.get(url).send().await {
                                Ok(r) if r.status() == 200 => Outcome::Ok,
                                Ok(r) => Outcome::Status(r.status().as_u16()),
                                Err(e) => Outcome::Failed(e.to_string()),
                            }
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                out
            }),
            Replica::Ureq(_) => {
                let threads: Vec<_> = (0..n)
                    .map(|_| {
                        let (me, url) = (self.clone(), url.to_owned());
                        std::thread::spawn(move || me.get(&url))
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            }
        };
        let (mut ok, mut failed, mut first) = (0, 0, String::new());
        for o in outcomes {
            match o {
                Outcome::Ok => ok += 1,
                other => {
                    failed += 1;
                    if first.is_empty() {
                        first = describe(&other);
                    }
                }
            }
        }
        (ok, failed, first)
    }

    fn logout(&self) {
        match self {
            Replica::Reqwest(client, _) => client.logout(),
            Replica::Ureq(agent) => agent.logout(),
        }
    }

    fn lineage(&self) -> Option<reauth::Lineage> {
        match self {
            Replica::Reqwest(client, _) => client.snapshot().lineage,
            Replica::Ureq(agent) => agent.snapshot().lineage,
        }
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".into(),
        Outcome::LoggedOut(why) => format!("logged_out {why}"),
        Outcome::Status(s) => format!("status {s}"),
        Outcome::Failed(e) => format!("error {e}"),
    }
}

/// A short name for why a request was refused.
pub fn why(e: &Error) -> String {
    match e {
        Error::NotAuthenticated => "not_authenticated".into(),
        Error::LoggedOut(reason) => match reason {
            LogoutReason::Requested => "requested".into(),
            LogoutReason::RefreshRejected(_) => "rejected".into(),
            LogoutReason::NoRefreshToken => "no_refresh_token".into(),
            LogoutReason::AttemptsExhausted(_) => "exhausted".into(),
            LogoutReason::Elsewhere(t) => format!("elsewhere:{}", t.as_str()),
            LogoutReason::Superseded => "superseded".into(),
            _ => "other".into(),
        },
        _ => "other".into(),
    }
}

fn run(mode: &str, base: &str, redis_url: &str, session: &str) -> i32 {
    let store_failed = Arc::new(AtomicUsize::new(0));
    let replica = match env(ADAPTER_ENV).as_deref() {
        None | Some("reqwest") => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let client = rt.block_on(async { reqwest_client(base, store(redis_url, session)) });
            let mut events = client.subscribe();
            let count = store_failed.clone();
            rt.spawn(async move {
                while let Ok(event) = events.recv().await {
                    if matches!(event, Event::StoreFailed { .. }) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            Replica::Reqwest(client, rt)
        }
        Some("ureq") => {
            let count = store_failed.clone();
            Replica::Ureq(ureq_agent(base, store(redis_url, session), move |event| {
                if matches!(event, Event::StoreFailed { .. }) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }))
        }
        Some(_) => return EXIT_USAGE,
    };
    let replica = Arc::new(replica);
    say("ready");
    let url = format!("{base}/api/items/1");
    match mode {
        "storm" => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).unwrap();
            if line.trim() != "go" {
                return EXIT_USAGE;
            }
            let n: usize = env(REQUESTS_ENV).and_then(|v| v.parse().ok()).unwrap_or(50);
            let start = Instant::now();
            let (ok, failed, first) = replica.storm(&url, n);
            say(&format!(
                "result ok={ok} failed={failed} store_failed={} ms={} first={first:?}",
                store_failed.load(Ordering::Relaxed),
                start.elapsed().as_millis()
            ));
            if failed == 0 {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        "once" => report(&replica, &url, redis_url, session),
        "session" => {
            let mut lines = std::io::stdin().lock().lines();
            while let Some(Ok(line)) = lines.next() {
                match line.trim() {
                    "get" => {
                        report(&replica, &url, redis_url, session);
                    }
                    "logout" => {
                        replica.logout();
                        let lineage = replica.lineage();
                        let written = settle(redis_url, session, |r| {
                            r.is_some_and(|r| {
                                Some(r.lineage) == lineage && matches!(r.entry, Entry::LoggedOut(_))
                            })
                        });
                        say(if written {
                            "result tombstone"
                        } else {
                            "result error no tombstone"
                        });
                    }
                    cmd if cmd.starts_with("storm ") => {
                        let n = cmd[6..].parse().unwrap_or(1);
                        let (ok, failed, first) = replica.storm(&url, n);
                        say(&format!("result ok={ok} failed={failed} first={first:?}"));
                    }
                    "events" => say(&format!(
                        "result store_failed={}",
                        store_failed.load(Ordering::Relaxed)
                    )),
                    "quit" => break,
                    _ => return EXIT_USAGE,
                }
            }
            EXIT_OK
        }
        _ => EXIT_USAGE,
    }
}

/// One request, reported as a `result` line.
fn report(replica: &Replica, url: &str, redis_url: &str, session: &str) -> i32 {
    let outcome = replica.get(url);
    if let Outcome::LoggedOut(_) = outcome {
        // A logout of this session's own making writes a tombstone after the request
        // failed: wait for it (another login in Redis is left alone), so that a process
        // exiting at once does not lose it.
        let lineage = replica.lineage();
        settle(redis_url, session, |r| {
            r.is_none_or(|r| Some(r.lineage) != lineage || matches!(r.entry, Entry::LoggedOut(_)))
        });
    }
    say(&format!("result {}", describe(&outcome)));
    match outcome {
        Outcome::Ok | Outcome::LoggedOut(_) => EXIT_OK,
        _ => EXIT_FAILED,
    }
}

/// Waits until the record in Redis satisfies `done`, within [`SETTLE`]. False if it
/// never did.
fn settle(redis_url: &str, session: &str, done: impl Fn(Option<&reauth::Record>) -> bool) -> bool {
    let store = store(redis_url, session);
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if store.read().is_ok_and(|r| done(r.as_ref())) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
