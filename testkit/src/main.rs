//! `reauth-testkit` binary: runs the test server on 127.0.0.1 and prints a quickstart.
//!
//! ```text
//! cargo run -p reauth-testkit -- --port 8080
//! cargo run -p reauth-testkit -- --port 8080 --admin   # + control routes on 127.0.0.1:8081
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use reauth_testkit::{Fault, ServerConfig, TestServer, FAULT_NAMES};

const USAGE: &str = "\
usage: reauth-testkit [--port PORT] [--lifetime SECS] [--grace SECS] [--no-rotation]
                      [--scope SCOPE] [--fault KIND]... [--admin [--admin-port PORT]]

  --port PORT        listen on 127.0.0.1:PORT (default 8080; 0 = any free port)
  --lifetime SECS    access-token lifetime (default 3600)
  --grace SECS       refresh-token reuse grace window (default 0)
  --no-rotation      keep refresh tokens instead of rotating them
  --scope SCOPE      scope granted to new logins (default \"read write\"; try \"read write admin\")
  --fault KIND       queue a fault for the next token-endpoint call (repeatable)
  --admin            serve the HTTP control interface (below); off by default
  --admin-port PORT  its port on 127.0.0.1 (default PORT + 1; any free port if --port 0)";

const ADMIN_HELP: &str = "\
control interface (--admin): drive the server over HTTP from a test in any language.
It listens on its own loopback port, so control requests never count as the traffic
of the client under test. Answers are JSON; bad input gets 400 with a plain-text reason.

  POST   /_admin/tokens[?scope=S]        log a user in: RFC 6749 token response + \"family\"
  POST   /_admin/expire                  expire every access token issued so far
  POST   /_admin/revoke?family=family-N  revoke a token family (or ?token=ANY_TOKEN_OF_IT)
                                         -> {\"revoked\": true|false}
  POST   /_admin/faults?fault=KIND&count=N
                                         queue KIND N times (default 1) for the next token calls
  POST   /_admin/faults                  queue faults from the body, one KIND per line
  GET    /_admin/faults                  -> {\"pending\": N}
  DELETE /_admin/faults                  drop every queued fault
  GET    /_admin/stats                   every counter (token calls, faults, reuse detections...)
  POST   /_admin/reset                   zero the counters and drop queued faults";

fn main() -> ExitCode {
    let (config, faults) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}\n\nfault kinds: {FAULT_NAMES}\n\n{ADMIN_HELP}");
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
    if let Some(admin) = server.admin_url() {
        println!("  admin            {admin}/  (control interface, see --help)");
    }
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
    if let Some(admin) = server.admin_url() {
        println!();
        println!("# control interface ({admin}/..., see --help)");
        println!("curl -s -X POST {admin}/tokens");
        println!("curl -s -X POST {admin}/expire");
        println!("curl -s -X POST '{admin}/revoke?family={}'", login.family);
        println!("curl -s -X POST '{admin}/faults?fault=503:2s&count=3'");
        println!("curl -s {admin}/faults");
        println!("curl -s -X DELETE {admin}/faults");
        println!("curl -s {admin}/stats");
        println!("curl -s -X POST {admin}/reset");
    }
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
    let mut admin_port = None;
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
            "--admin" => config.admin = true,
            "--admin-port" => {
                let v = value("--admin-port")?;
                admin_port = Some(v.parse().map_err(|_| format!("bad port {v:?}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    config.admin_port = match (admin_port, config.admin) {
        (Some(_), false) => return Err("--admin-port needs --admin".to_owned()),
        (Some(port), true) => port,
        // Any free port stays any free port; otherwise the next one, easy to guess.
        (None, _) if config.port == 0 => 0,
        (None, _) => config
            .port
            .checked_add(1)
            .ok_or("--port 65535 leaves no default --admin-port; give one")?,
    };
    Ok(Some((config, faults)))
}

fn secs(v: &str) -> Result<Duration, String> {
    v.parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("expected whole seconds, got {v:?}"))
}
