//! The child process: a small command-line "tool" with a reauth client over one shared
//! token file. It is this test binary itself, run again with [`WORKER_ENV`] set (see
//! `main.rs`), so no extra binary has to be built or found.
//!
//! It talks to the parent over stdout, one line per message, each starting with
//! [`PREFIX`] (libtest prints its own lines too): `ready` once the client is built (the
//! token file loaded), then `result ...`. In `storm` mode it waits for a `go` line on
//! stdin before firing its requests, so that every process meets the expired token
//! together.

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{Config, FileStore, Origin};
use std::io::BufRead;
use std::time::Duration;

pub const WORKER_ENV: &str = "REAUTH_PERSIST_WORKER";
pub const BASE_ENV: &str = "REAUTH_PERSIST_BASE";
pub const FILE_ENV: &str = "REAUTH_PERSIST_FILE";
pub const REQUESTS_ENV: &str = "REAUTH_PERSIST_REQUESTS";
pub const PAUSE_ENV: &str = "REAUTH_PERSIST_PAUSE_MS";
pub const PREFIX: &str = "@worker ";

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

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
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let client = reauth::reqwest::Client::builder(http, config)
            .oauth2(OAuth2Grant::refresh_token(endpoint))
            .store(store)
            .build()
            .unwrap();
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
            "once" => match client.get(url).send().await {
                Ok(r) if r.status() == 200 => {
                    say("result ok");
                    EXIT_OK
                }
                Err(e) if e.is_logged_out() => {
                    say("result logged_out");
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
            },
            _ => EXIT_USAGE,
        }
    })
}
