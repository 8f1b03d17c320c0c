//! End-to-end benchmarks of the async adapter against the testkit server on loopback.
//! Each comparison runs both sides in the same process, in interleaved rounds, and reports
//! medians and their ratio:
//!
//! - fast path: throughput through the adapter vs raw reqwest with a static bearer header
//!   (marked sensitive, as `bearer_auth` marks it), 64 concurrent workers (goal: ratio >= 0.98);
//! - storm recovery: 10,000 concurrent requests after the token expired vs the same
//!   10,000 with a valid token plus one refresh round trip (goal: <= 1.2x);
//! - the tutorials' pattern (a mutex around the refresh plus a token-compare check, on
//!   plain reqwest) on the same storm: its token-endpoint calls and wall time.
//!
//! Run with `cargo bench -p reauth-reqwest --bench e2e` (`-- --quick` for fewer rounds).
//! `REAUTH_BENCH_ONLY=raw|ours` runs one side of the fast path alone, for profiling or
//! counting instructions. `REAUTH_BENCH_ROUNDS` sets the fast path's rounds (of 6,400
//! requests). `--part fast` or `--part storm` runs one comparison only.

use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{AccessToken, Config, Origin, RefreshToken, TokenSet};
use reauth_reqwest::Client;
use reauth_testkit::{ServerConfig, TestServer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const WORKERS: usize = 64;
/// Short rounds (about 80 ms here), many of them: adjacent rounds of the two sides then see
/// the same background load, and the median of their ratios is the steadiest figure on a
/// shared machine whose speed swings within seconds.
const PER_WORKER: usize = 100;
/// Rounds of the fast-path comparison, per side.
const FAST_ROUNDS: usize = 61;
const STORM: usize = 10_000;

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn reauth_client(server: &TestServer) -> (Client, String) {
    let endpoint = TokenEndpoint::new(
        server.token_url().parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap();
    let mut config = Config::new(Origin::parse(&server.base_url()).unwrap());
    config.waiter_timeout = Duration::from_secs(60);
    let client = Client::builder(reqwest::Client::builder().http2_prior_knowledge(), config)
        .oauth2(OAuth2Grant::refresh_token(endpoint))
        .build()
        .unwrap();
    let t = server.issue_tokens();
    client.login(
        TokenSet::new(AccessToken::new(t.access_token.clone()).unwrap())
            .with_refresh_token(RefreshToken::new(t.refresh_token).unwrap())
            .with_expires_in(Duration::from_secs(t.expires_in)),
    );
    (client, t.access_token)
}

/// The status, after reading the body as a client does. A response dropped unread resets
/// its HTTP/2 stream, and enough of those make reqwest's h2 layer end the connection
/// (`too_many_internal_resets`).
async fn consume(response: reqwest::Response) -> u16 {
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    status
}

/// Requests per second of 64 workers each sending `PER_WORKER` requests in sequence.
async fn throughput<F, Fut>(send: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let send = send.clone();
            tokio::spawn(async move {
                for _ in 0..PER_WORKER {
                    assert_eq!(send().await, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    (WORKERS * PER_WORKER) as f64 / start.elapsed().as_secs_f64()
}

async fn fast_path(rounds: usize) {
    let server = TestServer::start(ServerConfig::default()).await.unwrap();
    let (client, access) = reauth_client(&server).await;
    // The very client reauth wraps, so both sides share one HTTP/2 connection: with a
    // connection each, where their connection tasks land on the runtime's two threads
    // favoured one side or the other by up to 10% for a whole run.
    let raw = client.inner().clone();
    let url = server.api_url("items/1");
    // A static header, prepared once and marked sensitive as reqwest's own `bearer_auth`
    // (and reauth) mark it: both sides then put the same bytes on the wire (HPACK never
    // indexes a sensitive header, so it is sent in full every time).
    let mut header = http::HeaderValue::from_str(&format!("Bearer {access}")).unwrap();
    header.set_sensitive(true);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let ours_once = || {
        let (c, u) = (client.clone(), url.clone());
        throughput(move || {
            let (c, u) = (c.clone(), u.clone());
            async move { consume(c.get(u).send().await.unwrap()).await }
        })
    };
    let raw_once = || {
        let (r, u, h) = (raw.clone(), url.clone(), header.clone());
        throughput(move || {
            let (r, u, h) = (r.clone(), u.clone(), h.clone());
            async move {
                let sent = r.get(u).header(http::header::AUTHORIZATION, h).send();
                consume(sent.await.unwrap()).await
            }
        })
    };
    // Profiling aid: one side alone, so an instruction-counting profiler sees only it.
    let rounds = std::env::var("REAUTH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(rounds);
    if let Ok(side) = std::env::var("REAUTH_BENCH_ONLY") {
        for _ in 0..rounds {
            let rps = if side == "raw" {
                raw_once().await
            } else {
                ours_once().await
            };
            println!("{side} {rps:.0} req/s");
        }
        server.shutdown().await;
        return;
    }
    let mut ratios = Vec::new();
    for round in 0..rounds + 1 {
        // Alternate which side goes first, so drift favours neither.
        let (a, b) = if round % 2 == 0 {
            let a = ours_once().await;
            (a, raw_once().await)
        } else {
            let b = raw_once().await;
            (ours_once().await, b)
        };
        if round > 0 {
            // Round 0 warms connections and caches.
            ours.push(a);
            theirs.push(b);
            ratios.push(a / b);
        }
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "fast path, {WORKERS} concurrent, {} requests a round, {rounds} rounds (median):",
        WORKERS * PER_WORKER
    );
    println!("  raw reqwest + static header   {b:>10.0} req/s");
    println!("  reauth-reqwest                {a:>10.0} req/s");
    ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let quartile = |q: usize| ratios[(ratios.len() - 1) * q / 4];
    let (per_round, q1, q3) = (quartile(2), quartile(1), quartile(3));
    println!(
        "  ratio of medians              {:>10.3}   goal >= 0.98",
        a / b
    );
    println!("  median of per-round ratios    {per_round:>10.3}   quartiles {q1:.3} .. {q3:.3}");
    println!(
        "BENCH-JSON {}",
        serde_json::json!({"bench": "reqwest_fast_path", "concurrency": WORKERS, "rounds": rounds,
            "requests_per_round": WORKERS * PER_WORKER, "raw_rps": b, "reauth_rps": a,
            "ratio": a / b, "ratio_per_round": per_round, "ratio_q1": q1, "ratio_q3": q3})
    );
    server.shutdown().await;
}

async fn storm_wall(client: &Client, url: &str, n: usize) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (c, u) = (client.clone(), url.to_owned());
            tokio::spawn(async move { consume(c.get(u).send().await.unwrap()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    start.elapsed()
}

/// One refresh round trip straight to the token endpoint.
async fn refresh_round_trip(server: &TestServer, http: &reqwest::Client) -> Duration {
    let t = server.issue_tokens();
    let endpoint = TokenEndpoint::new(
        server.token_url().parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap();
    let request = endpoint.refresh_token_request(&RefreshToken::new(t.refresh_token).unwrap());
    let start = Instant::now();
    let r = http
        .execute(reqwest::Request::try_from(request).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    start.elapsed()
}

/// The tutorials' pattern on plain reqwest: read the token, send, and on 401 take a
/// mutex, refresh unless someone already changed the token, retry once.
struct Tutorial {
    http: reqwest::Client,
    token_http: reqwest::Client,
    token_url: String,
    tokens: Mutex<(String, String)>,
    refresh_lock: Mutex<()>,
}

impl Tutorial {
    async fn get(&self, url: &str) -> u16 {
        let token = self.tokens.lock().await.0.clone();
        let r = self.http.get(url).bearer_auth(&token).send().await.unwrap();
        if r.status() != 401 {
            return consume(r).await;
        }
        consume(r).await;
        {
            let _guard = self.refresh_lock.lock().await;
            let (current, refresh) = self.tokens.lock().await.clone();
            if current == token {
                let body = format!("grant_type=refresh_token&refresh_token={refresh}");
                let resp = self
                    .token_http
                    .post(&self.token_url)
                    .basic_auth("reauth-test", Some("s3cret"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let json: serde_json::Value =
                    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
                *self.tokens.lock().await = (
                    json["access_token"].as_str().unwrap().to_owned(),
                    json["refresh_token"].as_str().unwrap().to_owned(),
                );
            }
        }
        let token = self.tokens.lock().await.0.clone();
        consume(self.http.get(url).bearer_auth(token).send().await.unwrap()).await
    }
}

async fn storm(rounds: usize) {
    let (mut recovery, mut baseline, mut tutorial, mut tutorial_calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut reauth_calls = Vec::new();
    for round in 0..rounds + 1 {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let (client, _) = reauth_client(&server).await;
        let url = server.api_url("items/1");
        // Baseline: the same storm with a valid token, plus one refresh round trip.
        let valid = storm_wall(&client, &url, STORM).await;
        let rtt = refresh_round_trip(&server, &h2c()).await;
        // Recovery: the storm after the token died on the server.
        server.expire_access_tokens();
        server.reset_stats();
        let after = storm_wall(&client, &url, STORM).await;
        let calls = server.stats().token_calls;
        // The tutorials' pattern on the same server, same storm.
        let t = server.issue_tokens();
        let tut = Arc::new(Tutorial {
            http: h2c(),
            token_http: reqwest::Client::new(),
            token_url: server.token_url(),
            tokens: Mutex::new((t.access_token, t.refresh_token)),
            refresh_lock: Mutex::new(()),
        });
        let warm = tut.get(&url).await;
        assert_eq!(warm, 200);
        server.expire_access_tokens();
        server.reset_stats();
        let start = Instant::now();
        let tasks: Vec<_> = (0..STORM)
            .map(|_| {
                let (tut, u) = (tut.clone(), url.clone());
                tokio::spawn(async move { tut.get(&u).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
        let tut_wall = start.elapsed();
        let tut_calls = server.stats().token_calls;
        server.shutdown().await;
        if round > 0 {
            recovery.push(after.as_secs_f64() * 1000.0);
            baseline.push((valid + rtt).as_secs_f64() * 1000.0);
            tutorial.push(tut_wall.as_secs_f64() * 1000.0);
            tutorial_calls.push(tut_calls as f64);
            reauth_calls.push(calls as f64);
        }
    }
    let (r, b, t) = (median(recovery), median(baseline), median(tutorial));
    let (reauth_calls, tutorial_calls) = (median(reauth_calls), median(tutorial_calls));
    println!("storm of {STORM} concurrent requests, {rounds} rounds (median):");
    println!("  valid token + one refresh round trip  {b:>9.1} ms");
    println!(
        "  reauth after expiry                   {r:>9.1} ms   token calls {:.0}",
        reauth_calls
    );
    println!(
        "  ratio (recovery / baseline)           {:>9.3}      goal <= 1.2",
        r / b
    );
    println!(
        "  tutorial pattern after expiry         {t:>9.1} ms   token calls {:.0}",
        tutorial_calls
    );
    println!(
        "BENCH-JSON {}",
        serde_json::json!({"bench": "reqwest_storm", "n": STORM, "rounds": rounds,
            "baseline_ms": b, "recovery_ms": r, "ratio": r / b,
            "reauth_token_calls": reauth_calls,
            "tutorial_ms": t, "tutorial_token_calls": tutorial_calls})
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--part fast` or `--part storm` runs one comparison. The benchmark report runs the
    // fast path in several processes: each process's heap layout and thread placement
    // favour one side or the other by a few percent for its whole life, so one process is
    // one sample.
    let part = std::env::args().skip_while(|a| a != "--part").nth(1);
    let (fast, storm_part) = match part.as_deref() {
        Some("fast") => (true, false),
        Some("storm") => (false, true),
        _ => (true, std::env::var_os("REAUTH_BENCH_ONLY").is_none()),
    };
    // A storm round is a few hundred milliseconds of 10,000 tasks: the machine's load moves
    // its wall time by tens of percent, so the median needs rounds too.
    let rounds = if quick { 3 } else { 15 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if fast {
            // The fast-path ratio is a few percent at stake, so it gets many more rounds.
            fast_path(if quick { 7 } else { FAST_ROUNDS }).await;
        }
        if storm_part {
            storm(rounds).await;
        }
    });
}
