//! The fast path (a valid token, no refresh) of the async adapter with a `RedisStore`
//! against the same adapter with the default memory store, in the same process, in
//! interleaved rounds: 64 concurrent workers on one shared h2c connection to the testkit,
//! every response body read. Redis is touched only to refresh, on a notification or at
//! start-up, so the goal is a ratio >= 0.99.
//!
//! Starts its own `redis-server` from PATH on a free loopback port.
//! `cargo bench -p reauth-redis --bench fast_path` (`-- --quick` for fewer rounds).
//! `REAUTH_BENCH_ONLY=memory|redis` runs one side alone (for callgrind),
//! `REAUTH_BENCH_ROUNDS` sets the rounds (of 6,400 requests).

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::TokenSet;
use reauth_core::{AccessToken, Config, Origin, RefreshToken, TokenStore};
use reauth_redis::RedisStore;
use reauth_reqwest::Client;
use reauth_testkit::{ServerConfig, TestServer};
use std::time::{Duration, Instant};

const WORKERS: usize = 64;
const PER_WORKER: usize = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn client(server: &TestServer, store: impl TokenStore + 'static) -> Client {
    // The adapter owns its client (it follows redirects itself): one h2c connection each.
    let http = reqwest::Client::builder().http2_prior_knowledge();
    let endpoint = TokenEndpoint::new(
        server.token_url().parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap();
    let mut config = Config::new(Origin::parse(&server.base_url()).unwrap());
    config.waiter_timeout = Duration::from_secs(60);
    let client = Client::builder(http, config)
        .oauth2(OAuth2Grant::refresh_token(endpoint))
        .store(store)
        .build()
        .unwrap();
    let t = server.issue_tokens();
    client.login(
        TokenSet::new(AccessToken::new(t.access_token).unwrap())
            .with_refresh_token(RefreshToken::new(t.refresh_token).unwrap())
            .with_expires_in(Duration::from_secs(t.expires_in)),
    );
    client
}

/// Requests per second of `WORKERS` workers each sending `PER_WORKER` requests in turn.
async fn throughput(client: &Client, url: &str) -> f64 {
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (c, u) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                for _ in 0..PER_WORKER {
                    let response = c.get(&u).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    // Read, so that the h2 stream ends cleanly.
                    response.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    (WORKERS * PER_WORKER) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = std::env::var("REAUTH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 7 } else { 31 });
    let Some(redis) = redis_server::RedisServer::start() else {
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let memory = client(&server, reauth_core::MemoryStore::new());
        let store = RedisStore::builder(redis.client(), "bench")
            .connect()
            .unwrap();
        let redis_client = client(&server, store);
        let url = server.api_url("items/1");
        if let Ok(side) = std::env::var("REAUTH_BENCH_ONLY") {
            let c = if side == "redis" {
                &redis_client
            } else {
                &memory
            };
            for _ in 0..rounds {
                println!("{side} {:.0} req/s", throughput(c, &url).await);
            }
            server.shutdown().await;
            return;
        }
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds + 1 {
            // Alternate which side goes first, so drift favours neither.
            let (a, b) = if round % 2 == 0 {
                let a = throughput(&redis_client, &url).await;
                (a, throughput(&memory, &url).await)
            } else {
                let b = throughput(&memory, &url).await;
                (throughput(&redis_client, &url).await, b)
            };
            // Round 0 warms connections and caches.
            if round > 0 {
                ours.push(a);
                theirs.push(b);
                ratios.push(a / b);
            }
        }
        let (a, b, per_round) = (median(ours), median(theirs), median(ratios));
        println!("fast path, {WORKERS} concurrent, {rounds} rounds (median):");
        println!("  memory store    {b:>10.0} req/s");
        println!("  Redis store     {a:>10.0} req/s");
        println!("  ratio           {:>10.3}   goal >= 0.99", a / b);
        println!("  per-round       {per_round:>10.3}");
        println!(
            "BENCH-JSON {}",
            serde_json::json!({"bench": "redis_fast_path", "concurrency": WORKERS,
                "rounds": rounds, "requests_per_round": WORKERS * PER_WORKER,
                "memory_rps": b, "redis_rps": a, "ratio": a / b, "ratio_per_round": per_round})
        );
        server.shutdown().await;
    });
    drop(redis);
}
