//! A fleet of replicas sharing one login through Redis, for real: separate OS processes,
//! one `RedisStore` on a `redis-server` of the test's own (from PATH, on a free loopback
//! port, no persistence; the tests are skipped with a message when there is none, and
//! fail on CI), and the testkit token server (rotation + reuse detection) on loopback in
//! this process.
//!
//! The replicas are this very test binary, run again with `--exact worker_entry` and
//! [`worker::WORKER_ENV`] set, as in `tests/persist`.
//!
//! Run with `--nocapture` to see the figures.

#[path = "../../stores/redis/tests/support/redis_server.rs"]
mod redis_server;
mod worker;

use reauth::{AccessToken, Entry, Expect, Lineage, Record, RefreshToken, SavedTokens, Swap};
use reauth_redis::{redis, RedisStore};
use reauth_testkit::{Fault, ServerConfig, TestServer};
use redis_server::RedisServer;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

#[test]
fn worker_entry() {
    if let Ok(mode) = std::env::var(worker::WORKER_ENV) {
        worker::main(&mode);
    }
}

/// The token server, Redis, and the session every replica shares.
struct Fleet {
    rt: tokio::runtime::Runtime,
    server: TestServer,
    redis: RedisServer,
    session: String,
}

impl Fleet {
    /// `None` (the test is skipped) without a redis-server on PATH.
    fn start(config: ServerConfig) -> Option<Fleet> {
        let redis = RedisServer::start()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(TestServer::start(config)).unwrap();
        Some(Fleet {
            rt,
            server,
            redis,
            session: "fleet".into(),
        })
    }

    fn store(&self) -> RedisStore {
        worker::store(&self.redis.url(), &self.session)
    }

    /// Logs a user in on the server and writes the tokens to Redis as a new lineage at
    /// version 1, as a login would. Returns the refresh token.
    fn seed(&self, lineage: Lineage) -> String {
        let issued = self.server.issue_tokens();
        let record = Record {
            lineage,
            version: 1,
            entry: Entry::Tokens(SavedTokens {
                access_token: AccessToken::new(issued.access_token).unwrap(),
                refresh_token: Some(RefreshToken::new(issued.refresh_token.clone()).unwrap()),
                expires_at: Some(SystemTime::now() + Duration::from_secs(issued.expires_in)),
                scope: None,
            }),
        };
        let swap = self.store().write_record(Expect::Any, &record).unwrap();
        assert_eq!(swap, Swap::Written);
        issued.refresh_token
    }

    fn spawn(&self, mode: &str, env: &[(&str, String)]) -> Worker {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "worker_entry", "--nocapture", "--test-threads=1"])
            .env(worker::WORKER_ENV, mode)
            .env(worker::BASE_ENV, self.server.base_url())
            .env(worker::REDIS_ENV, self.redis.url())
            .env(worker::SESSION_ENV, &self.session)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        Worker::spawn(command)
    }

    /// The lease's remaining time to live, if it is held.
    fn lease_ttl(&self) -> Option<Duration> {
        let mut c = self.redis.client().get_connection().unwrap();
        let ms: i64 = redis::cmd("PTTL")
            .arg(self.store().lease_key())
            .query(&mut c)
            .unwrap();
        u64::try_from(ms).ok().map(Duration::from_millis)
    }

    fn shutdown(self) {
        self.rt.block_on(self.server.shutdown());
    }
}

/// A replica process and the messages it prints.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn spawn(mut command: Command) -> Worker {
        let mut child = command.spawn().expect("spawn a worker");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest's "test worker_entry ... " may share the first line.
                if let Some(at) = line.find(worker::PREFIX) {
                    if tx.send(line[at + worker::PREFIX.len()..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        Worker {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    fn next(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    fn ready(&self) {
        assert_eq!(self.next(Duration::from_secs(60)).as_deref(), Some("ready"));
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.next(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no answer to {command}"))
    }

    /// The exit code within `limit`; a worker that overruns is killed and the test fails.
    fn exit_code(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("a worker hung for more than {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL (std's `Child::kill` on Unix), and reap it.
    fn kill_9(&mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    fn quit(&mut self) {
        self.send("quit");
        assert_eq!(self.exit_code(Duration::from_secs(30)), 0);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Never leave a process behind, whatever happened.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `done` holds, within `limit`.
fn until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn refresh_token(r: &Record) -> String {
    r.tokens()
        .and_then(|t| t.refresh_token.as_ref())
        .map_or_else(String::new, |t| t.secret().to_owned())
}

/// A number in a `result` line: `key=<n>`.
fn field(line: &str, key: &str) -> usize {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// K replicas, `per` concurrent requests each, all meeting the expired access token.
fn storm(adapter: &str) {
    const REPLICAS: usize = 4;
    const PER: usize = 250;
    let Some(fleet) = Fleet::start(ServerConfig::default()) else {
        return;
    };
    let lineage = Lineage::from_u128(0xf1ee7);
    let first = fleet.seed(lineage);
    fleet.server.expire_access_tokens();
    fleet.server.reset_stats();
    let env = [
        (worker::REQUESTS_ENV, PER.to_string()),
        (worker::ADAPTER_ENV, adapter.to_owned()),
    ];
    let mut workers: Vec<_> = (0..REPLICAS).map(|_| fleet.spawn("storm", &env)).collect();
    // Every replica has read the (expired) tokens from Redis before any request goes out.
    for w in &workers {
        w.ready();
    }
    let start = Instant::now();
    for w in &mut workers {
        w.send("go");
    }
    let (mut ok, mut store_failed) = (0, 0);
    for (i, w) in workers.iter_mut().enumerate() {
        let result = w.next(Duration::from_secs(120)).expect("a result line");
        assert_eq!(w.exit_code(Duration::from_secs(30)), 0, "{result}");
        eprintln!("replica {i} ({adapter}): {result}");
        ok += field(&result, "ok");
        store_failed += field(&result, "store_failed");
    }
    let wall = start.elapsed();
    let stats = fleet.server.stats();
    eprintln!(
        "figures: fleet {REPLICAS} replicas x {PER} requests ({adapter}): token-endpoint calls \
         {}, reuse detections {}, successes {ok}/{}, API 401s {}, store failures {store_failed}, \
         wall {wall:?}",
        stats.token_calls,
        stats.reuse_detections,
        REPLICAS * PER,
        stats.api_status(401),
    );
    assert_eq!(stats.token_calls, 1, "{stats:?}");
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    assert_eq!(ok, REPLICAS * PER);
    assert_eq!(store_failed, 0);
    // Every replica met the expired token, so every one needed the refresh.
    assert!(stats.api_status(401) >= REPLICAS as u64, "{stats:?}");
    // Redis holds the rotated tokens of the same family, one version on.
    let saved = fleet.store().read_record().unwrap().unwrap();
    assert_eq!((saved.lineage, saved.version), (lineage, 2));
    let family = fleet.server.family_of(&first).expect("the family lives");
    assert!(
        fleet.server.current_refresh_token(family) == Some(refresh_token(&saved)),
        "Redis holds the family's current refresh token"
    );
    // The lease was given back.
    assert_eq!(fleet.lease_ttl(), None);
    fleet.shutdown();
}

#[test]
fn four_replicas_with_250_requests_each_refresh_once_reqwest() {
    storm("reqwest");
}

#[test]
fn four_replicas_with_250_requests_each_refresh_once_ureq() {
    storm("ureq");
}
