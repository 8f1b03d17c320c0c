//! The child process: a small command-line "tool" with a reauth client over one shared
//! token file. It is this test binary itself, run again with [`WORKER_ENV`] set (see
//! `main.rs`), so no extra binary has to be built or found.
//!
//! It talks to the parent over stdout, one line per message, each starting with
//! [`PREFIX`] (libtest prints its own lines too): `ready` once the client is built (the
//! token file loaded, and a login written if [`LOGIN_ACCESS_ENV`] is set), then `result
//! ...` lines. Modes:
//! - `storm`: waits for a `go` line on stdin, so that every process meets the expired
//!   token together, then sends [`REQUESTS_ENV`] concurrent requests.
//! - `once`: one request at once.
//! - `session`: one command per stdin line: `get` (one request), `logout`, `quit`.
//!
//! A request's result is `result ok`, `result logged_out <why>` (see [`why`]), `result
//! status <n>` or `result error <text>`. The adapter writes to the store on tasks of its
//! own and a logout's tombstone may land after the request failed, so before answering
//! a logout the worker waits until the file shows it (bounded): a process that exits
//! at once could otherwise lose it.

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{
    AccessToken, Config, Entry, Error, FileStore, LogoutReason, Origin, RefreshToken, TokenSet,
};
use std::io::BufRead;
use std::time::{Duration, Instant};

pub const WORKER_ENV: &str = "REAUTH_PERSIST_WORKER";
pub const BASE_ENV: &str = "REAUTH_PERSIST_BASE";
pub const FILE_ENV: &str = "REAUTH_PERSIST_FILE";
pub const REQUESTS_ENV: &str = "REAUTH_PERSIST_REQUESTS";
pub const PAUSE_ENV: &str = "REAUTH_PERSIST_PAUSE_MS";
/// `Config::refresh_deadline` in milliseconds (the lease lives this plus a margin).
pub const DEADLINE_ENV: &str = "REAUTH_PERSIST_DEADLINE_MS";
/// A login to make at start (a new lineage, written over whatever the file holds).
pub const LOGIN_ACCESS_ENV: &str = "REAUTH_PERSIST_LOGIN_ACCESS";
pub const LOGIN_REFRESH_ENV: &str = "REAUTH_PERSIST_LOGIN_REFRESH";
pub const PREFIX: &str = "@worker ";

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// How long the worker waits for its own store writes to show in the file.
const SETTLE: Duration = Duration::from_secs(10);

fn say(line: &str) {
    // stdout is line-buffered: each message reaches the parent at once.
    println!("{PREFIX}{line}");
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs the worker described by the environment and exits the process with its code.
pub fn main(mode: &str) -> ! {
    let code = match (env(BASE_ENV), env(FILE_ENV)) {
        (Some(base), Some(file)) => run(mode, &base, &file),
        _ => EXIT_USAGE,
    };
    std::process::exit(code)
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

fn run(mode: &str, base: &str, file: &str) -> i32 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut store = FileStore::new(file);
        if let Some(ms) = env(PAUSE_ENV).and_then(|v| v.parse().ok()) {
            store = store.persist_pause_for_tests(Duration::from_millis(ms));
        }
        let endpoint = TokenEndpoint::new(
            format!("{base}/oauth/token").parse().unwrap(),
            ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
        )
        .unwrap();
        let mut config = Config::new(Origin::parse(base).unwrap());
        config.refresh_timeout = Duration::from_secs(10);
        config.waiter_timeout = Duration::from_secs(30);
        config.backoff.base = Duration::from_millis(20);
        config.backoff.cap = Duration::from_millis(200);
        if let Some(ms) = env(DEADLINE_ENV).and_then(|v| v.parse().ok()) {
            config.refresh_deadline = Duration::from_millis(ms);
            config.refresh_timeout = config.refresh_timeout.min(config.refresh_deadline);
        }
        let http = reqwest::Client::builder().http2_prior_knowledge();
        let client = reauth::reqwest::Client::builder(http, config)
            .oauth2(OAuth2Grant::refresh_token(endpoint))
            .store(store)
            .build()
            .unwrap();
        if let (Some(access), Some(refresh)) = (env(LOGIN_ACCESS_ENV), env(LOGIN_REFRESH_ENV)) {
            client.login(
                TokenSet::new(AccessToken::new(access).unwrap())
                    .with_refresh_token(RefreshToken::new(refresh).unwrap())
                    .with_expires_in(Duration::from_secs(3600)),
            );
            let lineage = client.snapshot().lineage;
            let written = settle(file, |r| r.is_some_and(|r| Some(r.lineage) == lineage)).await;
            if !written {
                say("result error the login was not written");
                return EXIT_FAILED;
            }
        }
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
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        let (client, url) = (client.clone(), url.clone());
                        tokio::spawn(async move { client.get(url).send().await })
                    })
                    .collect();
                let (mut ok, mut failed, mut first) = (0, 0, String::new());
                for t in tasks {
                    match t.await.unwrap() {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => {
                            failed += 1;
                            first = format!("status {}", r.status());
                        }
                        Err(e) => {
                            failed += 1;
                            first = e.to_string();
                        }
                    }
                }
                say(&format!("result ok={ok} failed={failed} first={first:?}"));
                if failed == 0 {
                    EXIT_OK
                } else {
                    EXIT_FAILED
                }
            }
            "once" => get(&client, &url, file).await,
            "session" => {
                let mut lines = std::io::stdin().lock().lines();
                while let Some(Ok(line)) = lines.next() {
                    match line.trim() {
                        "get" => {
                            get(&client, &url, file).await;
                        }
                        "logout" => {
                            client.logout();
                            let lineage = client.snapshot().lineage;
                            let written = settle(file, |r| {
                                r.is_some_and(|r| {
                                    Some(r.lineage) == lineage
                                        && matches!(r.entry, Entry::LoggedOut(_))
                                })
                            })
                            .await;
                            say(if written {
                                "result tombstone"
                            } else {
                                "result error no tombstone"
                            });
                        }
                        "quit" => break,
                        _ => return EXIT_USAGE,
                    }
                }
                EXIT_OK
            }
            _ => EXIT_USAGE,
        }
    })
}

/// One request, reported as a `result` line.
async fn get(client: &reauth::reqwest::Client, url: &str, file: &str) -> i32 {
    match client.get(url).send().await {
        Ok(r) if r.status() == 200 => {
            say("result ok");
            EXIT_OK
        }
        Err(e) if e.is_logged_out() => {
            let why = e.auth().map_or_else(|| "other".into(), why);
            // A logout of this session's own making writes a tombstone after the request
            // was failed: wait for it (another login in the file is left alone).
            let lineage = client.snapshot().lineage;
            settle(file, |r| {
                r.is_none_or(|r| {
                    Some(r.lineage) != lineage || matches!(r.entry, Entry::LoggedOut(_))
                })
            })
            .await;
            say(&format!("result logged_out {why}"));
            EXIT_OK
        }
        Ok(r) => {
            say(&format!("result status {}", r.status()));
            EXIT_FAILED
        }
        Err(e) => {
            say(&format!("result error {e}"));
            EXIT_FAILED
        }
    }
}

/// Waits until the file's record satisfies `done`, within [`SETTLE`]. False if it never
/// did.
async fn settle(file: &str, done: impl Fn(Option<&reauth::Record>) -> bool) -> bool {
    let store = FileStore::new(file);
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if store.read_record().is_ok_and(|r| done(r.as_ref())) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
