//! A blocking command-line tool that keeps its tokens in a file across runs, with the
//! ureq adapter and a `FileStore`. Several copies may run at once over the same file:
//! they refresh one at a time under the file's lock, and a copy that finds the tokens
//! already rotated by another adopts them instead of refreshing again.
//!
//! Against a testkit server started separately (its quickstart prints a token pair):
//!
//! ```sh
//! cargo run -p reauth-testkit -- --port 8080 &
//! cargo run --example cli -- --server http://127.0.0.1:8080 login ACCESS REFRESH
//! cargo run --example cli -- --server http://127.0.0.1:8080 get /api/items/1
//! cargo run --example cli -- --server http://127.0.0.1:8080 status
//! cargo run --example cli -- --server http://127.0.0.1:8080 logout
//! ```
//!
//! Without `--server` it runs a self-contained demo on an embedded server: log in, "exit",
//! start again from the file, let the token expire on the server, and call the API.

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::ureq::Agent;
use reauth::{AccessToken, Config, FileStore, Origin, RefreshToken, TokenSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

type Failure = Box<dyn std::error::Error>;

/// One run of the tool: an agent over the token file.
fn open(server: &str, file: &Path) -> Result<Agent, Failure> {
    let endpoint = TokenEndpoint::new(
        format!("{server}/oauth/token").parse()?,
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )?;
    let agent = Agent::builder(
        ureq::Agent::new_with_defaults(),
        Config::new(Origin::parse(server)?),
    )
    .oauth2(OAuth2Grant::refresh_token(endpoint))
    .store(FileStore::new(file))
    .build()?;
    if let Some(e) = agent.store_load_error() {
        eprintln!("note: the token file could not be read ({e}); please log in again");
    }
    Ok(agent)
}

fn command(server: &str, file: &Path, args: &[String]) -> Result<(), Failure> {
    let agent = open(server, file)?;
    match args {
        [cmd, access, refresh] if cmd == "login" => {
            agent.login(
                TokenSet::new(AccessToken::new(access.as_str())?)
                    .with_refresh_token(RefreshToken::new(refresh.as_str())?),
            );
            println!("logged in; tokens saved to {}", file.display());
        }
        [cmd, path] if cmd == "get" => {
            let mut response = agent.get(format!("{server}{path}")).call()?;
            println!("{}", response.status());
            println!("{}", response.body_mut().read_to_string()?);
        }
        [cmd] if cmd == "status" => println!("{:?}", agent.snapshot()),
        [cmd] if cmd == "logout" => {
            agent.logout();
            println!("logged out; {} cleared", file.display());
        }
        _ => return Err("commands: login ACCESS REFRESH | get PATH | status | logout".into()),
    }
    Ok(())
}

fn demo(file: &Path) -> Result<(), Failure> {
    use reauth_testkit::{ServerConfig, TestServer};
    let rt = tokio::runtime::Runtime::new()?;
    let server = rt.block_on(TestServer::start(ServerConfig::default()))?;
    let base = server.base_url();
    let issued = server.issue_tokens();

    println!("run 1: log in");
    command(
        &base,
        file,
        &["login".into(), issued.access_token, issued.refresh_token],
    )?;

    println!("run 2: a new process, tokens read from the file");
    command(&base, file, &["get".into(), "/api/items/1".into()])?;

    server.expire_access_tokens();
    println!("run 3: the access token expired on the server meanwhile");
    command(&base, file, &["get".into(), "/api/items/2".into()])?;
    let stats = server.stats();
    println!(
        "token-endpoint calls: {} (one refresh, saved to the file for the next run)",
        stats.token_calls
    );

    println!("run 4: logout clears the file");
    command(&base, file, &["logout".into()])?;
    println!("token file exists afterwards: {}", file.exists());
    rt.block_on(server.shutdown());
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut server = None;
    let mut file = None;
    while let Some(flag) = args.first().filter(|a| a.starts_with("--")).cloned() {
        args.remove(0);
        if args.is_empty() {
            eprintln!("{flag} needs a value");
            return ExitCode::from(2);
        }
        let value = args.remove(0);
        match flag.as_str() {
            "--server" => server = Some(value),
            "--token-file" => file = Some(PathBuf::from(value)),
            other => {
                eprintln!("unknown flag {other}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match server {
        Some(server) => {
            let file = file.unwrap_or_else(|| PathBuf::from("reauth-tokens.json"));
            command(server.trim_end_matches('/'), &file, &args)
        }
        None => match tempfile::tempdir() {
            Ok(dir) => demo(&file.unwrap_or_else(|| dir.path().join("tokens.json"))),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
