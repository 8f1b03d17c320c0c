//! `reauth-testkit` binary: runs the test server on 127.0.0.1 and prints a quickstart.
//!
//! ```text
//! cargo run -p reauth-testkit -- --port 8080
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use reauth_testkit::{Fault, ServerConfig, TestServer, FAULT_NAMES};

const USAGE: &str = "\
usage: reauth-testkit [--port PORT] [--lifetime SECS] [--grace SECS] [--no-rotation]
                      [--scope SCOPE] [--fault KIND]...

  --port PORT      listen on 127.0.0.1:PORT (default 8080; 0 = any free port)
  --lifetime SECS  access-token lifetime (default 3600)
  --grace SECS     refresh-token reuse grace window (default 0)
  --no-rotation    keep refresh tokens instead of rotating them
  --scope SCOPE    scope granted to new logins (default \"read write\"; try \"read write admin\")
  --fault KIND     queue a fault for the next token-endpoint call (repeatable)";

fn main() -> ExitCode {
    let (config, faults) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}\n\nfault kinds: {FAULT_NAMES}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, faults))
}

async fn run(config: ServerConfig, faults: Vec<Fault>) -> ExitCode {
    let server = match TestServer::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    for fault in &faults {
        server.push_fault(*fault);
    }
    print_quickstart(&server, &faults);
    stop_requested().await;
    let stats = server.stats();
    println!(
        "\nshutting down: {} token calls ({} ok), {} API calls, {} reuse detections",
        stats.token_calls, stats.token_ok, stats.api_calls, stats.reuse_detections
    );
    server.shutdown().await;
    ExitCode::SUCCESS
}

fn print_quickstart(server: &TestServer, faults: &[Fault]) {
    let config = server.config();
    let login = server.issue_tokens();
    let mobile = server.issue_tokens();
    let client = match &config.client_secret {
        Some(secret) => format!("-u '{}:{secret}' ", config.client_id),
        None => format!("-d client_id='{}' ", config.client_id),
    };
    println!(
        "reauth-testkit listening (HTTP/1.1 and h2c) on {}",
        server.base_url()
    );
    println!();
    println!("  token endpoint   POST {}", server.token_url());
    println!("  JSON refresh     POST {}", server.json_refresh_url());
    println!(
        "  protected API    GET  {}  (also /api/echo, /api/scoped, /api/redirect?to=/x)",
        server.api_url("items/1")
    );
    println!(
        "  leak listener    {}  (records Authorization headers)",
        server.leak_url()
    );
    println!(
        "  client           {} / {}",
        config.client_id,
        config.client_secret.as_deref().unwrap_or("(public)")
    );
    println!();
    println!(
        "starter tokens ({}, scope \"{}\", expires_in {}s):",
        login.family, login.scope, login.expires_in
    );
    println!("  access_token  = {}", login.access_token);
    println!("  refresh_token = {}", login.refresh_token);
    println!();
    println!("# call the API with the access token");
    println!(
        "curl -s -H 'Authorization: Bearer {}' {}",
        login.access_token,
        server.api_url("items/1")
    );
    println!();
    println!("# refresh (the refresh token rotates: a second use revokes the family)");
    println!(
        "curl -s {client}-d grant_type=refresh_token -d refresh_token={} {}",
        login.refresh_token,
        server.token_url()
    );
    println!();
    println!("# client credentials grant");
    println!(
        "curl -s {client}-d grant_type=client_credentials {}",
        server.token_url()
    );
    println!();
    println!("# custom JSON refresh endpoint (its own starter refresh token)");
    println!(
        "curl -s -H 'Content-Type: application/json' -d '{{\"refreshToken\":\"{}\"}}' {}",
        mobile.refresh_token,
        server.json_refresh_url()
    );
    if !faults.is_empty() {
        let names: Vec<String> = faults.iter().map(ToString::to_string).collect();
        println!();
        println!(
            "queued faults for the next token calls: {}",
            names.join(", ")
        );
    }
    println!();
    println!("Ctrl-C to stop.");
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and process supervisors send).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `Ok(None)` means `--help`.
fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<(ServerConfig, Vec<Fault>)>, String> {
    let mut config = ServerConfig::default().with_port(8080);
    let mut faults = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                let v = value("--port")?;
                config.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--lifetime" => config.access_token_lifetime = secs(&value("--lifetime")?)?,
            "--grace" => config.reuse_grace = secs(&value("--grace")?)?,
            "--no-rotation" => config.rotate_refresh_tokens = false,
            "--scope" => config.scope = value("--scope")?,
            "--fault" => faults.push(Fault::parse(&value("--fault")?).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((config, faults)))
}

fn secs(v: &str) -> Result<Duration, String> {
    v.parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("expected whole seconds, got {v:?}"))
}
