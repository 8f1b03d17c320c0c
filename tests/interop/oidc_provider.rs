//! The interop server (`interop/server.mjs`: node `oidc-provider` and a protected API on
//! 127.0.0.1) as a child process of the test: started per test, killed when dropped.

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::{http, AccessToken, RefreshToken, TokenSet};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the server may take to print its addresses.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long `npm ci` may take on a fresh clone.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);

/// The server's addresses and its client's credentials, from its first line of output.
#[derive(Debug, Clone)]
pub struct Info {
    pub issuer: String,
    pub token_endpoint: String,
    pub api: String,
    pub resource: String,
    pub client_id: String,
    pub client_secret: String,
}

/// A running interop server. Dropping it kills the process (it also exits by itself when
/// its standard input closes, so a test process that dies takes it along).
pub struct OidcProvider {
    child: Child,
    info: Info,
    stderr: Arc<Mutex<String>>,
    admin: ureq::Agent,
}

impl OidcProvider {
    /// Starts a server, installing the node packages first if `interop/node_modules` is
    /// missing. `None`, with the reason printed, when node or npm is not installed: the
    /// suite is skipped, not failed, on a machine without them.
    pub fn start() -> Option<Self> {
        if let Err(why) = installed() {
            if why.starts_with("skip") {
                println!("interop: {why}");
                return None;
            }
            panic!("interop: {why}");
        }
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(interop_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node was found but did not start");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                *sink.lock().unwrap() = text.clone();
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(START_LIMIT) {
            Ok(line) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match other {
                    Err(RecvTimeoutError::Timeout) => "did not start in time",
                    _ => "exited before listening",
                };
                panic!(
                    "interop server {why}; its stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let v: Value = serde_json::from_str(&line).expect("the server's first line is JSON");
        let field = |name: &str| v[name].as_str().expect(name).to_owned();
        let info = Info {
            issuer: field("issuer"),
            token_endpoint: field("token_endpoint"),
            api: field("api"),
            resource: field("resource"),
            client_id: field("client_id"),
            client_secret: field("client_secret"),
        };
        let admin = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Some(Self {
            child,
            info,
            stderr,
            admin,
        })
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The URL of an API item.
    pub fn item(&self, id: u32) -> String {
        format!("{}/api/items/{id}", self.info.api)
    }

    /// The URL of an API item that the API holds for `hold` before checking the token.
    pub fn slow_item(&self, id: u32, hold: Duration) -> String {
        format!("{}?hold_ms={}", self.item(id), hold.as_millis())
    }

    /// The URL of an API item behind the django-oauth-toolkit-style view (a refused token
    /// gets a bare 403).
    pub fn dot_item(&self, id: u32) -> String {
        format!("{}/api/dot/items/{id}", self.info.api)
    }

    /// A route that needs a scope no token has: a 403 with `insufficient_scope`.
    pub fn admin_only(&self) -> String {
        format!("{}/api/admin", self.info.api)
    }

    /// A first token pair, from the scripted authorization-code + PKCE flow.
    pub fn login(&self) -> TokenSet {
        let v = self.post("login");
        let text = |name: &str| v[name].as_str().expect(name).to_owned();
        TokenSet::new(AccessToken::new(text("access_token")).unwrap())
            .with_refresh_token(RefreshToken::new(text("refresh_token")).unwrap())
            .with_expires_in(Duration::from_secs(v["expires_in"].as_u64().unwrap()))
    }

    /// Every access token issued so far is refused by the API from now on.
    pub fn expire(&self) {
        self.post("expire");
    }

    /// Every grant is revoked, with its tokens.
    pub fn revoke(&self) {
        self.post("revoke");
    }

    /// The server's counters.
    pub fn stats(&self) -> Stats {
        let url = format!("{}/admin/stats", self.info.issuer);
        let mut response = self.admin.get(&url).call().expect("GET /admin/stats");
        let text = response
            .body_mut()
            .read_to_string()
            .expect("GET /admin/stats");
        Stats(serde_json::from_str(&text).expect("stats are JSON"))
    }

    /// The token endpoint, with the server's confidential client (`client_secret_basic`).
    pub fn endpoint(&self) -> TokenEndpoint {
        TokenEndpoint::new(
            self.info.token_endpoint.parse().unwrap(),
            ClientAuth::secret_basic(
                &self.info.client_id,
                ClientSecret::new(&self.info.client_secret),
            ),
        )
        .unwrap()
    }

    /// Sends a token request outside any session (as a thief holding an old refresh token
    /// would); returns the status.
    pub fn send(&self, request: http::Request<Vec<u8>>) -> u16 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .run(request)
            .expect("the token endpoint answers")
            .status()
            .as_u16()
    }

    fn post(&self, what: &str) -> Value {
        let url = format!("{}/admin/{what}", self.info.issuer);
        let mut response = self
            .admin
            .post(&url)
            .send_empty()
            .unwrap_or_else(|e| panic!("POST /admin/{what}: {e}; stderr:\n{}", self.stderr()));
        let text = response.body_mut().read_to_string().expect("admin answers");
        serde_json::from_str(&text).expect("admin answers JSON")
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("interop server stderr:\n{}", self.stderr());
        }
    }
}

/// The counters of `GET /admin/stats`.
#[derive(Debug)]
pub struct Stats(pub Value);

impl Stats {
    /// Token-endpoint calls with this `grant_type`.
    pub fn token_calls(&self, grant_type: &str) -> u64 {
        self.0["token_calls"][grant_type].as_u64().unwrap_or(0)
    }

    /// Rotated refresh tokens presented again (each revokes its grant).
    pub fn reuse_detections(&self) -> u64 {
        self.0["reuse_detections"].as_u64().unwrap()
    }

    /// Grants revoked for any reason.
    pub fn grants_revoked(&self) -> u64 {
        self.0["grants_revoked"].as_u64().unwrap()
    }

    /// API answers with this status.
    pub fn api(&self, status: u16) -> u64 {
        self.0["api"][status.to_string()].as_u64().unwrap_or(0)
    }
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Node is there and the packages are installed (`npm ci` once per test process, from the
/// committed lock file). `Err("skip…")` when node or npm is absent.
fn installed() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED.get_or_init(install).clone()
}

fn install() -> Result<(), String> {
    let found = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !found("node") {
        return Err(
            "skipping the oidc-provider interop suite: `node` is not installed \
                    (install Node.js 20 or later and npm to run it)"
                .into(),
        );
    }
    let dir = interop_dir();
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return Ok(());
    }
    if !found("npm") {
        return Err("skipping the oidc-provider interop suite: `npm` is not installed, and \
                    interop/node_modules is missing (install npm, or run `npm ci --prefix interop`)"
            .into());
    }
    println!("interop: interop/node_modules is missing, running `npm ci`");
    let mut npm = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("npm did not start: {e}"))?;
    let deadline = Instant::now() + INSTALL_LIMIT;
    loop {
        match npm.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("`npm ci` in interop/ failed: {status}")),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => {
                let _ = npm.kill();
                let _ = npm.wait();
                return Err(format!(
                    "`npm ci` in interop/ took longer than {INSTALL_LIMIT:?}"
                ));
            }
        }
    }
}
