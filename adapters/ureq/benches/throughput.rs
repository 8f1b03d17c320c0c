//! Throughput of `reauth_ureq::Agent` against raw ureq with a static bearer header, in the
//! same run: 16 threads each send K requests to the testkit's `GET /api/items/1`.
//!
//! Rounds of the two sides are interleaved (A B B A A B …), so drift in the machine's load
//! hits both alike. The report gives each side's median throughput, the ratio of the
//! medians, and the median of the ratios of adjacent rounds. It ends with the client-side
//! cost alone (one thread, both agents answered by a middleware, no network).
//!
//! Many short rounds beat a few long ones on a shared machine: adjacent rounds see the same
//! background load, so the median of their ratios is the steadiest figure.
//!
//! `cargo bench -p reauth-ureq` (env: `REAUTH_BENCH_ROUNDS` per side, default 60;
//! `REAUTH_BENCH_REQUESTS` per thread and round, default 250; `REAUTH_BENCH_THREADS`,
//! default 16; `REAUTH_BENCH_ONLY=raw|wrapped` runs one side only, for profiling).

use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{AccessToken, Config, Origin, RefreshToken, TokenSet};
use reauth_testkit::{ServerConfig, TestServer};
use std::sync::Barrier;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Both sides' agents: ureq's defaults, with room for every thread's idle connection. No
/// timeout: with one, ureq resolves the host of every request on a new thread, which
/// costs more than everything measured here.
fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_idle_connections(256)
        .max_idle_connections_per_host(256)
        .build()
        .new_agent()
}

/// One round: `threads` threads released together, each sending `k` requests with `send`.
/// Returns requests per second.
fn round(threads: usize, k: usize, send: &(dyn Fn() + Sync)) -> f64 {
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|scope| {
        for _ in 0..threads {
            let start = &start;
            scope.spawn(move || {
                start.wait();
                for _ in 0..k {
                    send();
                }
            });
        }
        start.wait();
        // The scope joins every thread before returning.
        Instant::now()
    })
    .elapsed();
    (threads * k) as f64 / elapsed.as_secs_f64()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn token_set(access: &str, refresh: &str, expires_in: u64) -> TokenSet {
    TokenSet::new(AccessToken::new(access).unwrap())
        .with_refresh_token(RefreshToken::new(refresh).unwrap())
        .with_expires_in(Duration::from_secs(expires_in))
}

fn main() {
    let rounds = env("REAUTH_BENCH_ROUNDS", 60).max(1);
    let k = env("REAUTH_BENCH_REQUESTS", 250).max(1);
    let threads = env("REAUTH_BENCH_THREADS", 16).max(1);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let url = server.api_url("items/1");
    let tokens = server.issue_tokens();

    // A: raw ureq, a static header.
    let raw = http();
    let header = format!("Bearer {}", tokens.access_token);
    let send_raw = || {
        let mut r = raw
            .get(&url)
            .header("authorization", &header)
            .call()
            .expect("raw request");
        assert_eq!(r.status(), 200);
        r.body_mut().read_to_vec().expect("raw body");
    };

    // B: the same through the session.
    let endpoint = TokenEndpoint::new(
        server.token_url().parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap();
    // The same ureq agent (a clone shares its connection pool), so both sides use the same
    // connections and the same server-side connection threads.
    let wrapped = reauth_ureq::Agent::builder(
        raw.clone(),
        Config::new(Origin::parse(&server.base_url()).unwrap()),
    )
    .oauth2(OAuth2Grant::refresh_token(endpoint))
    .build()
    .unwrap();
    wrapped.login(token_set(
        &tokens.access_token,
        &tokens.refresh_token,
        tokens.expires_in,
    ));
    let send_wrapped = || {
        let mut r = wrapped.get(&url).call().expect("wrapped request");
        assert_eq!(r.status(), 200);
        r.body_mut().read_to_vec().expect("wrapped body");
    };

    let only: Option<(&str, &(dyn Fn() + Sync))> =
        match std::env::var("REAUTH_BENCH_ONLY").as_deref() {
            Ok("raw") => Some(("raw", &send_raw)),
            Ok("wrapped") => Some(("wrapped", &send_wrapped)),
            _ => None,
        };
    if let Some((name, send)) = only {
        for _ in 0..rounds {
            println!("{name} {:.0} req/s", round(threads, k, send));
        }
        runtime.block_on(server.shutdown());
        return;
    }

    // Warm up both pools and the server.
    round(threads, k / 4 + 1, &send_raw);
    round(threads, k / 4 + 1, &send_wrapped);

    let (mut a, mut b) = (Vec::new(), Vec::new());
    let connections = server.stats().connections_accepted;
    for i in 0..rounds {
        // A B B A A B B A …
        if i % 2 == 0 {
            a.push(round(threads, k, &send_raw));
            b.push(round(threads, k, &send_wrapped));
        } else {
            b.push(round(threads, k, &send_wrapped));
            a.push(round(threads, k, &send_raw));
        }
    }
    let stats = server.stats();
    assert_eq!(stats.token_calls, 0, "no refresh during the benchmark");
    runtime.block_on(server.shutdown());

    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let pairs: Vec<f64> = a.iter().zip(&b).map(|(a, b)| b / a).collect();
    println!(
        "throughput: {threads} threads x {k} requests per round, {rounds} rounds per side, \
         interleaved (req/s)"
    );
    println!("  raw ureq + static header : {}", list(&a));
    println!("  reauth_ureq::Agent       : {}", list(&b));
    println!("  median raw               : {:.0} req/s", median(&a));
    println!("  median wrapped           : {:.0} req/s", median(&b));
    println!(
        "  ratio of medians         : {:.3}",
        median(&b) / median(&a)
    );
    println!("  median of round ratios   : {:.3}", median(&pairs));
    let mut sorted = pairs.clone();
    // Quartiles of the round ratios show how much the machine's load moved meanwhile.
    sorted.sort_by(f64::total_cmp);
    let (q1, q3) = (sorted[sorted.len() / 4], sorted[sorted.len() * 3 / 4]);
    println!(
        "  round ratios, quartiles  : {q1:.3} {:.3} {q3:.3}",
        median(&pairs)
    );
    println!(
        "  new connections while measuring: {}",
        stats.connections_accepted - connections
    );

    let (raw_ns, wrapped_ns) = client_side_cost();
    println!(
        "client-side cost per request, no network, 1 thread: raw {raw_ns:.0} ns, \
         wrapped {wrapped_ns:.0} ns (+{:.0} ns)",
        wrapped_ns - raw_ns
    );
    // One machine-readable line for the benchmark report script.
    println!(
        "BENCH-JSON {{\"bench\":\"ureq_throughput\",\"threads\":{threads},\"rounds\":{rounds},\
         \"raw_rps\":{:.1},\"reauth_rps\":{:.1},\"ratio\":{:.4},\"ratio_per_round\":{:.4},\
         \"ratio_q1\":{q1:.4},\"ratio_q3\":{q3:.4},\"raw_ns\":{raw_ns:.1},\"wrapped_ns\":{wrapped_ns:.1}}}",
        median(&a),
        median(&b),
        median(&b) / median(&a),
        median(&pairs)
    );
}

/// A middleware that answers every request itself.
fn canned(
    _: ureq::http::Request<ureq::SendBody>,
    _: ureq::middleware::MiddlewareNext,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    Ok(ureq::http::Response::builder()
        .status(200)
        .body(ureq::Body::builder().data("{}"))
        .unwrap())
}

/// Nanoseconds per request of each side when a middleware answers: what the wrapper adds
/// on the calling thread, without the network's noise.
fn client_side_cost() -> (f64, f64) {
    let agent = || {
        ureq::Agent::config_builder()
            .middleware(canned)
            .build()
            .new_agent()
    };
    let url = "http://127.0.0.1:9/api/items/1";
    let token = "at_abcdefghijklmnopqrstuvwxyz0123456789";
    let header = format!("Bearer {token}");
    let raw = agent();
    let wrapped = reauth_ureq::Agent::builder(
        agent(),
        Config::new(Origin::parse("http://127.0.0.1:9").unwrap()),
    )
    .refresh_fn(|_| unreachable!("the token stays valid"))
    .build()
    .unwrap();
    wrapped.login(token_set(token, "rt_unused", 3600));
    let n = 200_000;
    let ns = |send: &(dyn Fn() + Sync)| 1e9 / round(1, n, send);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(ns(&|| {
            let r = raw.get(url).header("authorization", &header).call();
            std::hint::black_box(r.unwrap());
        }));
        b.push(ns(&|| {
            std::hint::black_box(wrapped.get(url).call().unwrap());
        }));
    }
    (median(&a), median(&b))
}
