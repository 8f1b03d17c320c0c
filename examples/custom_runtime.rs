//! Your own runtime: `reauth-core`'s [`Session`] driven by hand over plain
//! `std::net::TcpStream`, with no HTTP client crate and no async runtime. This is what the
//! `reqwest` and `ureq` adapters do for you; read it to drive the session from anything
//! else (an event loop, an embedded stack, another language's FFI).
//!
//! One thread runs the session. Each HTTP exchange (API call or refresh) runs on a thread
//! of its own and reports back through a channel; between reports the loop sleeps until
//! the session's next deadline ([`Session::poll_timeout`]) and fires it. The store is a
//! [`MemoryStore`], answered at once. Against the embedded testkit it shows:
//!
//! 1. the credential attached to a request;
//! 2. an expired token: five requests get 401, one refresh runs, the five wait for it as
//!    waiters and are replayed with the new token;
//! 3. a request that fails at the network level (no response within its read timeout):
//!    there is nothing to report to the session, the attempt is dropped and the request
//!    retried with a fresh `begin_request`;
//! 4. a timer: with `keep_warm`, the session's deadline fires in the stale window and a
//!    background refresh runs while nothing else happens.
//!
//! ```sh
//! cargo run --example custom_runtime
//! ```

use reauth::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri};
use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::{prepare_request, redirected, OAuth2Grant};
use reauth::{
    AccessToken, Admission, Attempt, Command, Config, Event, MemoryStore, Origin, RefreshError,
    RefreshErrorKind, RefreshId, RefreshOutcome, RefreshProtocol, RefreshToken, Session,
    StoreCommand, StoreOutcome, StoreReply, TokenSet, TokenStore, Verdict, WaiterId,
};
use reauth_testkit::{ServerConfig, TestServer};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

/// What the run did, for the closing line (and for `tests/custom_runtime.rs`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Requests that ended with 200.
    pub ok: u32,
    /// 401s the session was told of.
    pub unauthorized: u32,
    /// Waiters the session resumed.
    pub resumed: u32,
    /// Requests that got no response (and were retried).
    pub network_failures: u32,
    /// Deadlines the loop slept until and fired.
    pub timers_fired: u32,
    /// Refreshes that succeeded.
    pub refreshed: u32,
    /// Refresh calls the token endpoint counted.
    pub token_calls: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(s) => {
            println!(
                "\n{} requests ok, {} 401s, {} waiters resumed, {} network failure(s) retried, \
                 {} timers fired, {} refreshes ({} token endpoint calls)",
                s.ok,
                s.unauthorized,
                s.resumed,
                s.network_failures,
                s.timers_fired,
                s.refreshed,
                s.token_calls
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("custom_runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the testkit, runs the four steps, stops the testkit.
pub fn run() -> Result<Summary, Box<dyn std::error::Error>> {
    // The testkit is async; it gets a small tokio runtime of its own. Nothing below uses it.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = tokio.block_on(TestServer::start(
        ServerConfig::default().with_access_token_lifetime(Duration::from_secs(6)),
    ))?;
    let result = steps(&server);
    tokio.block_on(server.shutdown());
    result
}

fn steps(server: &TestServer) -> Result<Summary, Box<dyn std::error::Error>> {
    let mut config = Config::new(Origin::parse(&server.base_url())?);
    // Short windows for a 6 s token: the background refresh is due 3 s after each one.
    config.leeway = Duration::from_secs(1);
    config.refresh_window = Duration::from_secs(2);
    config.keep_warm = true;
    let endpoint = TokenEndpoint::new(
        server.token_url().parse()?,
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )?;
    let mut rt = Runtime::new(config, OAuth2Grant::refresh_token(endpoint), server.addr());

    // The user logged in (here: tokens straight from the testkit).
    let issued = server.issue_tokens();
    rt.session.login(
        Instant::now(),
        TokenSet::new(AccessToken::new(issued.access_token)?)
            .with_refresh_token(RefreshToken::new(issued.refresh_token)?)
            .with_expires_in(Duration::from_secs(issued.expires_in)),
    );
    rt.carry_out();

    rt.say("1. one request: the credential is attached");
    rt.start(&server.api_url("items/1"), READ_TIMEOUT);
    rt.run_until("the request is done", |rt| rt.idle())?;

    rt.say("2. the token dies early: five 401s, one refresh, five replays");
    server.expire_access_tokens();
    for i in 2..7 {
        rt.start(&server.api_url(&format!("items/{i}")), READ_TIMEOUT);
    }
    rt.run_until("the replays are done", |rt| rt.idle())?;

    rt.say("3. a request gets no response: nothing to report, retry it");
    // The testkit answers after 1.5 s; this call gives up after 200 ms, its retry waits.
    rt.start(
        &server.api_url("items/7?delay_ms=1500"),
        Duration::from_millis(200),
    );
    rt.run_until("the retry is done", |rt| rt.idle())?;

    rt.say("4. nothing to do: the session's timer fires, a background refresh runs");
    let before = rt.summary.refreshed;
    rt.run_until("the background refresh", |rt| {
        rt.summary.refreshed > before && rt.idle()
    })?;
    rt.start(&server.api_url("items/8"), READ_TIMEOUT);
    rt.run_until("the last request is done", |rt| rt.idle())?;

    rt.summary.token_calls = server.stats().token_calls;
    Ok(rt.summary)
}

/// How long an API call may go without a byte from the server.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Every step must be over by then.
const STEP_LIMIT: Duration = Duration::from_secs(15);

/// What a worker thread reports.
enum Done {
    Api {
        request: usize,
        attempt: Attempt,
        result: io::Result<Response>,
    },
    Refresh {
        id: RefreshId,
        outcome: RefreshOutcome,
    },
}

/// One of the program's requests.
struct Call {
    uri: Uri,
    /// How long it may go without a byte from the server.
    read_timeout: Duration,
}

/// The loop's state: the session, its store, and what is on the wire.
struct Runtime {
    session: Session,
    store: MemoryStore,
    protocol: Arc<OAuth2Grant>,
    server: SocketAddr,
    reports: mpsc::Receiver<Done>,
    reporter: mpsc::Sender<Done>,
    requests: Vec<Call>,
    /// Which request each waiter belongs to.
    waiters: HashMap<WaiterId, usize>,
    /// API calls and refresh calls under way.
    in_flight: usize,
    t0: Instant,
    summary: Summary,
}

impl Runtime {
    fn new(config: Config, protocol: OAuth2Grant, server: SocketAddr) -> Self {
        let (reporter, reports) = mpsc::channel();
        Self {
            session: Session::new(config),
            store: MemoryStore::new(),
            protocol: Arc::new(protocol),
            server,
            reports,
            reporter,
            requests: Vec::new(),
            waiters: HashMap::new(),
            in_flight: 0,
            t0: Instant::now(),
            summary: Summary::default(),
        }
    }

    fn say(&self, what: &str) {
        println!("{:>6} ms  {what}", self.t0.elapsed().as_millis());
    }

    /// Nothing on the wire and nobody waiting.
    fn idle(&self) -> bool {
        self.in_flight == 0 && self.waiters.is_empty()
    }

    /// A new request: ask the session, then send, queue, or give up.
    fn start(&mut self, uri: &str, read_timeout: Duration) {
        let uri: Uri = uri.parse().expect("a testkit URL");
        let request = self.requests.len();
        self.requests.push(Call { uri, read_timeout });
        match self
            .session
            .begin_request(Instant::now(), &self.requests[request].uri)
        {
            Admission::Send(attempt) => self.send(request, attempt),
            Admission::Wait(waiter) => {
                self.waiters.insert(waiter, request);
            }
            Admission::Anonymous => unreachable!("every request here goes to the API"),
            Admission::Reject(e) => self.say(&format!("request {request}: not sent: {e}")),
            other => unreachable!("{other:?}"),
        }
        self.carry_out();
    }

    /// Sends `request` with `attempt`'s credential on a thread of its own.
    fn send(&mut self, request: usize, attempt: Attempt) {
        let r = &self.requests[request];
        let mut http = Request::get(r.uri.clone()).body(Vec::new()).expect("a GET");
        http.headers_mut().insert(
            reauth::http::header::AUTHORIZATION,
            attempt.header_value().clone(),
        );
        let (server, timeout, reporter) = (self.server, r.read_timeout, self.reporter.clone());
        self.in_flight += 1;
        std::thread::spawn(move || {
            let result = exchange(server, &http, timeout, 64 * 1024);
            let _ = reporter.send(Done::Api {
                request,
                attempt,
                result,
            });
        });
    }

    /// Carries out every command the session has for us.
    fn carry_out(&mut self) {
        while let Some(command) = self.session.poll_command() {
            match command {
                Command::Store { id, op } => {
                    let now = Instant::now();
                    let outcome = answer(&self.store, op, now);
                    self.session
                        .handle_store(now, SystemTime::now(), id, outcome);
                }
                Command::StartRefresh {
                    id,
                    refresh_token,
                    deadline,
                } => self.refresh(id, refresh_token, deadline),
                Command::Resume { waiter, attempt } => {
                    self.summary.resumed += 1;
                    let request = self.waiters.remove(&waiter).expect("a waiter of ours");
                    self.send(request, attempt);
                }
                Command::Fail { waiter, error } => {
                    let request = self.waiters.remove(&waiter).expect("a waiter of ours");
                    self.say(&format!("request {request}: failed: {error}"));
                }
                Command::Event(event) => {
                    if let Event::Refreshed { .. } = event {
                        self.summary.refreshed += 1;
                    }
                    self.say(&format!("event: {event}"));
                }
                other => self.say(&format!("(not used here: {other:?})")),
            }
        }
    }

    /// Runs refresh `id` on a thread: the protocol builds the request and reads the answer.
    fn refresh(&mut self, id: RefreshId, token: Option<RefreshToken>, deadline: Instant) {
        self.say(&format!("refresh {id} starts"));
        let (protocol, server, reporter) =
            (self.protocol.clone(), self.server, self.reporter.clone());
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.in_flight += 1;
        std::thread::spawn(move || {
            let outcome = match prepare_request(&*protocol, token.as_ref(), false) {
                Err(e) => RefreshOutcome::Failed(e),
                Ok(request) => {
                    let limit = protocol.max_response_bytes() + 1;
                    match exchange(server, &request, timeout, limit) {
                        // Never follow a token endpoint's redirect: it would carry the
                        // refresh token elsewhere.
                        Ok(r) => match redirected(r.status, &r.headers) {
                            Some(e) => RefreshOutcome::Failed(e),
                            None => protocol.parse_response(
                                r.status,
                                &r.headers,
                                &r.body,
                                SystemTime::now(),
                            ),
                        },
                        // A refresh with no answer *is* reported: the session waits for it.
                        Err(e) => RefreshOutcome::Failed(RefreshError::transient(
                            if e.kind() == io::ErrorKind::WouldBlock
                                || e.kind() == io::ErrorKind::TimedOut
                            {
                                RefreshErrorKind::Timeout
                            } else {
                                RefreshErrorKind::Network
                            },
                        )),
                    }
                }
            };
            let _ = reporter.send(Done::Refresh { id, outcome });
        });
    }

    /// One turn of the loop: take the next report, or sleep until the session's next
    /// deadline and fire it.
    fn turn(&mut self) {
        let deadline = self.session.poll_timeout();
        let wait = deadline.map_or(STEP_LIMIT, |at| {
            at.saturating_duration_since(Instant::now())
        });
        let report = self.reports.recv_timeout(wait);
        let now = Instant::now();
        match report {
            Err(_) if deadline.is_none() => {} // nothing due, nothing reported
            Err(_) => {
                // Waking early or late is harmless: the session fires what is due.
                self.summary.timers_fired += 1;
                self.say("timer: the session's deadline is due");
                self.session.handle_timeout(now);
            }
            Ok(Done::Refresh { id, outcome }) => {
                self.in_flight -= 1;
                self.session.handle_refresh(now, id, outcome);
            }
            Ok(Done::Api {
                request,
                attempt,
                result,
            }) => {
                self.in_flight -= 1;
                self.api_done(now, request, attempt, result);
            }
        }
        self.carry_out();
    }

    fn api_done(
        &mut self,
        now: Instant,
        request: usize,
        attempt: Attempt,
        result: io::Result<Response>,
    ) {
        let sent_with = attempt.generation();
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                // No response says nothing about the token: the session is not told, the
                // attempt is dropped, and nothing is left pending in the session. A retry
                // is a new request (a fresh `begin_request`, with the current token).
                self.summary.network_failures += 1;
                let why = match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".into(),
                    _ => e.to_string(),
                };
                let uri = self.requests[request].uri.to_string();
                self.say(&format!(
                    "request {request}: no response ({why}): attempt dropped, retried with a \
                     longer timeout as request {}",
                    self.requests.len()
                ));
                self.start(&uri, READ_TIMEOUT);
                return;
            }
        };
        let status = response.status;
        if status == StatusCode::UNAUTHORIZED {
            self.summary.unauthorized += 1;
        }
        match self
            .session
            .handle_response(now, &attempt, status, &response.headers, true)
        {
            Verdict::Done => {
                if status == StatusCode::OK {
                    self.summary.ok += 1;
                }
                self.say(&format!(
                    "request {request}: {} with token {sent_with}{}",
                    status.as_u16(),
                    if attempt.is_replay() { " (replay)" } else { "" }
                ));
            }
            Verdict::Replay(again) => {
                // The refresh had already landed: replayed at once, no waiting.
                self.say(&format!(
                    "request {request}: 401 for an older token, replayed"
                ));
                self.send(request, again);
            }
            Verdict::Wait(waiter) => {
                self.say(&format!("request {request}: 401, waits for the refresh"));
                self.waiters.insert(waiter, request);
            }
            Verdict::Fail(e) => self.say(&format!("request {request}: failed: {e}")),
            other => unreachable!("{other:?}"),
        }
    }

    /// Turns the loop until `done` holds.
    fn run_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) -> Result<(), String> {
        let start = Instant::now();
        while !done(self) {
            if start.elapsed() > STEP_LIMIT {
                return Err(format!("{what}: not within {STEP_LIMIT:?}"));
            }
            self.turn();
        }
        Ok(())
    }
}

/// Carries a store command out on the `MemoryStore`.
fn answer(store: &MemoryStore, op: StoreCommand, now: Instant) -> StoreOutcome {
    match op {
        StoreCommand::Lease { lineage, ttl } => store.lease(lineage, ttl).map(StoreReply::Lease),
        StoreCommand::Read => store.read().map(StoreReply::Read),
        StoreCommand::Write { expect, record } => store
            .compare_and_swap(expect, &record.saved(now, SystemTime::now()))
            .map(StoreReply::Swap),
        StoreCommand::Release { lineage, lease } => {
            store.release(lineage, lease).map(|()| StoreReply::Released)
        }
        other => unreachable!("a store command of a later version: {other:?}"),
    }
}

/// An HTTP/1.1 response.
struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// One HTTP/1.1 exchange on a new connection (`Connection: close`, so the response ends
/// where the stream does). By hand, because this example is about the session, not about
/// HTTP: enough for the testkit, not a general client (no TLS, no chunked bodies).
fn exchange(
    server: SocketAddr,
    request: &Request<Vec<u8>>,
    read_timeout: Duration,
    max_body: usize,
) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(read_timeout.max(Duration::from_millis(1))))?;
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nhost: {server}\r\nconnection: close\r\ncontent-length: {}\r\n",
        request.method(),
        request.body().len()
    )
    .into_bytes();
    for (name, value) in request.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    stream.write_all(&head)?;
    stream.write_all(request.body())?;
    let mut raw = Vec::new();
    (&mut stream)
        .take((16 * 1024 + max_body) as u64)
        .read_to_end(&mut raw)?;
    parse_response(&raw, max_body)
}

fn parse_response(raw: &[u8], max_body: usize) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of the response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("a response head not in UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a header line without ':'"))?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad("a header name"))?,
            HeaderValue::from_str(value.trim()).map_err(|_| bad("a header value"))?,
        );
    }
    if headers.contains_key("transfer-encoding") {
        return Err(bad("a chunked body (not read by this tiny client)"));
    }
    let mut body = raw[end + 4..].to_vec();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    body.truncate(max_body);
    Ok(Response {
        status,
        headers,
        body,
    })
}
