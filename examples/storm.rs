//! The refresh storm, live: an embedded OAuth2 server on loopback, a logged-in client, the
//! access token expired on the server, then N concurrent requests at once. The first to
//! reach the API meet the dead token; those admitted after the first 401 wait for the
//! refresh instead of being sent, and reauth turns the storm into exactly one refresh.
//!
//! ```sh
//! cargo run --release --example storm                    # 1,000 concurrent requests
//! cargo run --release --example storm -- --n 10000
//! cargo run --release --example storm -- --fault 503     # the first refresh fails
//! cargo run --release --example storm -- --json          # one line of JSON
//! cargo run --release --example storm -- --adapter ureq  # blocking: threads, not tasks
//! ```
//!
//! Faults (applied to the first refresh): `delay:<N>ms`, `500`, `503[:<N>s]`,
//! `429[:<N>s]`, `invalid_grant`, `invalid_client`, `malformed`, `oversized`, `reset`,
//! `hang`.

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{AccessToken, Config, Origin, RefreshToken, TokenSet};
use reauth_testkit::{Fault, ServerConfig, TestServer};
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    n: usize,
    fault: Option<Fault>,
    json: bool,
    adapter: Adapter,
}

#[derive(Clone, Copy, PartialEq)]
enum Adapter {
    Reqwest,
    Ureq,
}

const USAGE: &str = "usage: storm [--n N] [--fault KIND] [--json] [--adapter reqwest|ureq]";

/// One thread and one HTTP/1.1 connection per request (on both sides, in this process):
/// beyond this the open-file limit (20,000 here) would be the bottleneck, not reauth.
const MAX_UREQ_THREADS: usize = 4000;

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        n: 1000,
        fault: None,
        json: false,
        adapter: Adapter::Reqwest,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--n" => {
                let v = it.next().ok_or("--n needs a number")?;
                args.n = v.parse().map_err(|_| format!("--n: not a number: {v}"))?;
                if args.n == 0 || args.n > 20_000 {
                    return Err("--n must be between 1 and 20000".into());
                }
            }
            "--fault" => {
                let v = it.next().ok_or("--fault needs a kind")?;
                args.fault = Some(Fault::parse(&v).map_err(|e| e.to_string())?);
            }
            "--json" => args.json = true,
            "--adapter" => {
                args.adapter = match it.next().as_deref() {
                    Some("reqwest") => Adapter::Reqwest,
                    Some("ureq") => Adapter::Ureq,
                    _ => return Err("--adapter takes reqwest or ureq".into()),
                }
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.adapter == Adapter::Ureq && args.n > MAX_UREQ_THREADS {
        return Err(format!(
            "--adapter ureq runs one thread per request: --n must be at most {MAX_UREQ_THREADS}"
        ));
    }
    Ok(args)
}

/// What one storm did.
struct Summary {
    requests: usize,
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    token_requests: u64,
    api_401s: u64,
    reuse_detections: u64,
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Summary {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

fn session_config(server: &TestServer) -> Config {
    let mut config = Config::new(Origin::parse(&server.base_url()).expect("loopback origin"));
    config.refresh_timeout = Duration::from_secs(2);
    // `--fault hang`: the call is abandoned (and retried) at this deadline.
    config.refresh_deadline = Duration::from_secs(4);
    config.waiter_timeout = Duration::from_secs(30);
    config
}

fn grant(server: &TestServer) -> OAuth2Grant {
    let endpoint = TokenEndpoint::new(
        server.token_url().parse().expect("token url"),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .expect("loopback endpoint");
    OAuth2Grant::refresh_token(endpoint)
}

fn login_tokens(server: &TestServer) -> TokenSet {
    let issued = server.issue_tokens();
    TokenSet::new(AccessToken::new(issued.access_token).expect("token"))
        .with_refresh_token(RefreshToken::new(issued.refresh_token).expect("token"))
        .with_expires_in(Duration::from_secs(issued.expires_in))
}

/// Kills the token behind the client's back, then queues the fault for the refresh.
fn expire(server: &TestServer, fault: Option<Fault>) {
    server.expire_access_tokens();
    server.reset_stats();
    if let Some(f) = fault {
        server.push_fault(f);
    }
}

impl Summary {
    fn new(requests: usize) -> Self {
        Summary {
            requests,
            ok: 0,
            errors: 0,
            first_error: None,
            token_requests: 0,
            api_401s: 0,
            reuse_detections: 0,
            latencies: Vec::with_capacity(requests),
            wall: Duration::ZERO,
        }
    }

    fn record(&mut self, latency: Duration, result: Result<(), String>) {
        self.latencies.push(latency);
        match result {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn finish(&mut self, wall: Duration, server: &TestServer) {
        self.wall = wall;
        self.latencies.sort();
        let stats = server.stats();
        self.token_requests = stats.token_calls;
        self.api_401s = stats.api_status(401);
        self.reuse_detections = stats.reuse_detections;
    }
}

async fn storm_reqwest(server: &TestServer, n: usize, fault: Option<Fault>) -> Summary {
    // h2c: thousands of concurrent requests share a few connections.
    let http = reqwest::Client::builder().http2_prior_knowledge();
    let client = reauth::reqwest::Client::builder(http, session_config(server))
        .oauth2(grant(server))
        .build()
        .expect("reauth client");
    client.login(login_tokens(server));
    let url = server.api_url("items/1");
    // Warm up the connection, then kill the token behind the client's back.
    let _ = client.get(&url).send().await;
    expire(server, fault);

    // Every task waits at the barrier, so all requests leave together with the dead
    // token: a real storm, not a queue.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n + 1));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, barrier) = (client.clone(), url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let t = Instant::now();
                let r = match client.get(url).send().await {
                    Ok(resp) if resp.status().is_success() => Ok(()),
                    Ok(resp) => Err(format!("HTTP {}", resp.status())),
                    Err(e) => Err(e.to_string()),
                };
                (t.elapsed(), r)
            })
        })
        .collect();
    barrier.wait().await;
    let start = Instant::now();
    let mut summary = Summary::new(n);
    for t in tasks {
        let (latency, result) = t.await.expect("request task");
        summary.record(latency, result);
    }
    summary.finish(start.elapsed(), server);
    summary
}

/// The same storm through the blocking adapter: one thread per request, all released at
/// once by a barrier.
fn storm_ureq(server: &TestServer, n: usize, fault: Option<Fault>) -> Summary {
    let agent =
        reauth::ureq::Agent::builder(ureq::Agent::new_with_defaults(), session_config(server))
            .oauth2(grant(server))
            .build()
            .expect("reauth agent");
    agent.login(login_tokens(server));
    let url = server.api_url("items/1");
    let _ = agent.get(&url).call();
    expire(server, fault);

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (agent, url, barrier) = (agent.clone(), url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let t = Instant::now();
                let r = match agent.get(&url).call() {
                    Ok(resp) if resp.status().is_success() => Ok(()),
                    Ok(resp) => Err(format!("HTTP {}", resp.status())),
                    Err(e) => Err(e.to_string()),
                };
                (t.elapsed(), r)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut summary = Summary::new(n);
    for t in threads {
        let (latency, result) = t.join().expect("request thread");
        summary.record(latency, result);
    }
    summary.finish(start.elapsed(), server);
    summary
}

fn print_human(s: &Summary, fault: Option<&Fault>, adapter: &str) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let unit = if adapter == "ureq" {
        "threads"
    } else {
        "tasks"
    };
    println!(
        "reauth storm: {} concurrent requests ({adapter}, one per {unit}) against an expired token",
        s.requests,
        unit = &unit[..unit.len() - 1]
    );
    if let Some(f) = fault {
        println!("  fault injected: {f} (first token-endpoint call)");
    }
    println!("  succeeded            {:>8}", s.ok);
    println!("  failed               {:>8}", s.errors);
    // Often fewer than the requests: those admitted after the first 401 wait, unsent
    // (none do when every request is on the wire before the first 401 comes back).
    let waited = u64::try_from(s.requests)
        .unwrap_or(u64::MAX)
        .saturating_sub(s.api_401s);
    let unsent = if waited > 0 {
        format!("   (the other {waited} waited for the refresh, unsent)")
    } else {
        String::new()
    };
    println!("  401s seen by the API {:>8}{unsent}", s.api_401s);
    let note = match s.token_requests {
        1 => "<- one refresh for the whole storm".to_string(),
        n if n > 1 && fault.is_some() => format!(
            "<- one refresh, {} failed tr{} before it",
            n - 1,
            if n == 2 { "y" } else { "ies" }
        ),
        _ => String::new(),
    };
    println!("  token-endpoint calls {:>8}   {note}", s.token_requests);
    println!("  reuse detections     {:>8}", s.reuse_detections);
    println!("  latency p50          {:>8.1} ms", ms(s.percentile(0.50)));
    println!("  latency p99          {:>8.1} ms", ms(s.percentile(0.99)));
    println!("  wall time            {:>8.1} ms", ms(s.wall));
    if let Some(e) = &s.first_error {
        println!("  first error: {e}");
    }
}

fn print_json(s: &Summary, fault: Option<&Fault>, adapter: &str) {
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let line = serde_json::json!({
        "adapter": adapter,
        "requests": s.requests,
        "ok": s.ok,
        "errors": s.errors,
        "token_requests": s.token_requests,
        "api_401s": s.api_401s,
        "reuse_detections": s.reuse_detections,
        "p50_ms": ms(s.percentile(0.50)),
        "p99_ms": ms(s.percentile(0.99)),
        "wall_ms": ms(s.wall),
        "fault": fault.map(ToString::to_string),
        "first_error": s.first_error,
    });
    println!("{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let server = match TestServer::start(ServerConfig::default()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("could not start the embedded token server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (summary, adapter) = match args.adapter {
        Adapter::Reqwest => (storm_reqwest(&server, args.n, args.fault).await, "reqwest"),
        Adapter::Ureq => {
            // Blocking threads must not run on the runtime that serves the token server.
            let summary = tokio::task::block_in_place(|| storm_ureq(&server, args.n, args.fault));
            (summary, "ureq")
        }
    };
    server.shutdown().await;
    if args.json {
        print_json(&summary, args.fault.as_ref(), adapter);
    } else {
        print_human(&summary, args.fault.as_ref(), adapter);
    }
    ExitCode::SUCCESS
}
