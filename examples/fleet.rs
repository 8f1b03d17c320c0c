//! One refresh for a whole fleet: K replica processes share one login through Redis. The
//! example starts the embedded OAuth2 server (rotating refresh tokens, reuse detection)
//! and a `redis-server` from PATH on a free loopback port, logs in, expires the access
//! token on the server, then runs K copies of itself as replicas, each sending N
//! concurrent requests at once. One replica takes the refresh lease in Redis and
//! refreshes; the others wait, re-read the record and adopt the new tokens.
//!
//! ```sh
//! cargo run --release --example fleet                 # 4 replicas x 250 requests
//! cargo run --release --example fleet -- --k 8 --n 1000
//! cargo run --release --example fleet -- --json       # one line of JSON
//! cargo run --release --example fleet -- --store memory --k 1 --n 1000
//! ```
//!
//! `--store memory` is the baseline the fleet benchmark compares against: one replica
//! with the default memory store, handed the login on its stdin; no Redis.
//!
//! Needs `redis-server` on PATH (Debian: `apt-get install redis-server`).

#[path = "../stores/redis/tests/support/redis_server.rs"]
mod redis_server;

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{AccessToken, Config, Entry, Expect, Lineage, Origin, Record, RefreshToken, TokenSet};
use reauth::{SavedTokens, TokenStore};
// The same item as `reauth::RedisStore` (feature `redis`).
use reauth_redis::{redis, RedisStore};
use reauth_testkit::{ServerConfig, TestServer};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

const USAGE: &str = "usage: fleet [--k REPLICAS] [--n REQUESTS] [--store redis|memory] [--json]";
/// Set in a replica's environment: its role, and where the servers are.
const REPLICA_ENV: &str = "REAUTH_FLEET_EXAMPLE_REPLICA";
const SESSION: &str = "fleet-example";
/// In a replica's environment instead of a Redis URL: use a memory store.
const MEMORY: &str = "memory";

struct Args {
    k: usize,
    n: usize,
    json: bool,
    /// One replica with a memory store instead of a fleet over Redis.
    memory: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        k: 4,
        n: 250,
        json: false,
        memory: false,
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str, max: usize| -> Result<usize, String> {
        let v = v.ok_or(format!("{what} needs a number"))?;
        match v.parse() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("{what} must be between 1 and {max}")),
        }
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--k" => args.k = number(it.next(), "--k", 32)?,
            "--n" => args.n = number(it.next(), "--n", 10_000)?,
            "--json" => args.json = true,
            "--store" => match it.next().as_deref() {
                Some("redis") => args.memory = false,
                Some("memory") => args.memory = true,
                _ => return Err(format!("--store needs redis or memory\n{USAGE}")),
            },
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.memory && args.k != 1 {
        return Err("--store memory: a memory store is not shared, so --k must be 1".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    if let Ok(spec) = std::env::var(REPLICA_ENV) {
        return replica(&spec);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let redis = if args.memory {
        None
    } else {
        if redis_server::find().is_none() {
            eprintln!(
                "fleet: redis-server is not on PATH; install it (Debian: apt-get install \
                 redis-server) and run again"
            );
            return ExitCode::from(2);
        }
        let Some(redis) = redis_server::RedisServer::start() else {
            return ExitCode::from(2);
        };
        Some(redis)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .expect("the token server starts");
    let redis_url = redis.as_ref().map_or(MEMORY.to_owned(), |r| r.url());
    let code = run(&args, &server, &redis_url);
    rt.block_on(server.shutdown());
    code
}

fn store(redis_url: &str) -> RedisStore {
    let client = redis::Client::open(redis_url).expect("a valid Redis URL");
    RedisStore::builder(client, SESSION).build()
}

/// A login, as the first replica to log in would write it.
fn log_in(server: &TestServer, redis_url: &str) {
    let issued = server.issue_tokens();
    let record = Record {
        lineage: Lineage::from_u128(0xf1ee7),
        version: 1,
        entry: Entry::Tokens(SavedTokens {
            access_token: AccessToken::new(issued.access_token).expect("a token"),
            refresh_token: Some(RefreshToken::new(issued.refresh_token).expect("a token")),
            expires_at: Some(SystemTime::now() + Duration::from_secs(issued.expires_in)),
            scope: None,
        }),
    };
    store(redis_url)
        .compare_and_swap(Expect::Any, &record)
        .expect("Redis takes the login");
}

fn run(args: &Args, server: &TestServer, redis_url: &str) -> ExitCode {
    // With a memory store the replica is handed the login on its stdin instead.
    let handed = if args.memory {
        let t = server.issue_tokens();
        Some(format!(
            "{} {} {}\n",
            t.access_token, t.refresh_token, t.expires_in
        ))
    } else {
        log_in(server, redis_url);
        None
    };
    server.expire_access_tokens();
    server.reset_stats();
    let exe = std::env::current_exe().expect("this program's path");
    let mut replicas: Vec<_> = (0..args.k)
        .map(|_| {
            let mut child = Command::new(&exe)
                .env(
                    REPLICA_ENV,
                    format!("{} {} {}", server.base_url(), redis_url, args.n),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("a replica starts");
            let lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
            (child, lines)
        })
        .collect();
    if let Some(login) = &handed {
        for (child, _) in &mut replicas {
            let stdin = child.stdin.as_mut().expect("its stdin");
            let _ = stdin
                .write_all(login.as_bytes())
                .and_then(|()| stdin.flush());
        }
    }
    // Every replica has read the (expired) tokens from Redis before the storm.
    for (_, lines) in &mut replicas {
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(ready.as_deref(), Some("ready"), "a replica did not start");
    }
    let start = Instant::now();
    for (child, _) in &mut replicas {
        let stdin = child.stdin.as_mut().expect("its stdin");
        let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
    }
    let mut results = Vec::new();
    for (child, lines) in &mut replicas {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = child.wait();
        let mut words = line
            .split_whitespace()
            .map(|w| w.parse::<u64>().unwrap_or(0));
        let (ok, failed, ms) = (
            words.next().unwrap_or(0),
            words.next().unwrap_or(0),
            words.next().unwrap_or(0),
        );
        results.push((ok, failed, ms));
    }
    let wall = start.elapsed();
    let stats = server.stats();
    let ok: u64 = results.iter().map(|r| r.0).sum();
    let total = (args.k * args.n) as u64;
    if args.json {
        let line = serde_json::json!({
            "example": "fleet",
            "store": if args.memory { "memory" } else { "redis" },
            "replicas": args.k,
            "requests_per_replica": args.n,
            "succeeded": ok,
            "token_endpoint_calls": stats.token_calls,
            "reuse_detections": stats.reuse_detections,
            "wall_ms": wall.as_millis() as u64,
            "wall_us": wall.as_micros() as u64,
            "replica_ms": results.iter().map(|r| r.2).collect::<Vec<_>>(),
        });
        println!("{line}");
    } else {
        for (i, (ok, failed, ms)) in results.iter().enumerate() {
            println!("replica {i}: {ok} ok, {failed} failed, {ms} ms");
        }
        let note = if stats.token_calls == 1 {
            "  <- one refresh for the whole fleet"
        } else {
            ""
        };
        println!(
            "{ok}/{total} succeeded in {wall:.2?}; token-endpoint calls: {}{note}; reuse \
             detections: {}",
            stats.token_calls, stats.reuse_detections
        );
    }
    if ok == total && stats.token_calls == 1 && stats.reuse_detections == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A replica: a reauth client over the shared `RedisStore`; `ready`, then on `go` its
/// storm, answered as `<ok> <failed> <milliseconds>`.
fn replica(spec: &str) -> ExitCode {
    let mut parts = spec.split(' ');
    let (Some(base), Some(redis_url), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return ExitCode::from(2);
    };
    let n: usize = n.parse().unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let client = if redis_url == MEMORY {
            let client = client(base, None);
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let mut words = line.split_whitespace();
            let (Some(access), Some(refresh), Some(expires_in)) =
                (words.next(), words.next(), words.next())
            else {
                return;
            };
            client.login(
                TokenSet::new(AccessToken::new(access).expect("a token"))
                    .with_refresh_token(RefreshToken::new(refresh).expect("a token"))
                    .with_expires_in(Duration::from_secs(expires_in.parse().unwrap_or(3600))),
            );
            client
        } else {
            client(base, Some(store(redis_url)))
        };
        println!("ready");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let start = Instant::now();
        let url = format!("{base}/api/items/1");
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { client.get(url).send().await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            if matches!(t.await, Ok(Ok(r)) if r.status() == 200) {
                ok += 1;
            }
        }
        println!("{ok} {} {}", n - ok, start.elapsed().as_millis());
    });
    ExitCode::SUCCESS
}

/// The async adapter over h2c (hundreds of requests on a few sockets) with the store
/// (none: the default memory store).
fn client(base: &str, store: Option<RedisStore>) -> reauth::reqwest::Client {
    let endpoint = TokenEndpoint::new(
        format!("{base}/oauth/token").parse().expect("a URL"),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .expect("an endpoint");
    let http = reqwest::Client::builder().http2_prior_knowledge();
    let config = Config::new(Origin::parse(base).expect("an origin"));
    let builder =
        reauth::reqwest::Client::builder(http, config).oauth2(OAuth2Grant::refresh_token(endpoint));
    match store {
        Some(store) => builder.store(store),
        None => builder,
    }
    .build()
    .expect("a client")
}
