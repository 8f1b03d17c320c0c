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
                    if tx
                        .send(line[at + worker::PREFIX.len()..].to_owned())
                        .is_err()
                    {
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

#[test]
fn a_logout_on_one_replica_is_seen_by_the_others() {
    let Some(fleet) = Fleet::start(ServerConfig::default()) else {
        return;
    };
    let lineage = Lineage::from_u128(0x1060);
    fleet.seed(lineage);
    let mut a = fleet.spawn("session", &[]);
    let mut b = fleet.spawn("session", &[(worker::ADAPTER_ENV, "ureq".into())]);
    a.ready();
    b.ready();
    assert_eq!(a.ask("get"), "result ok");
    assert_eq!(b.ask("get"), "result ok");
    assert_eq!(a.ask("logout"), "result tombstone");
    let tomb = fleet.store().read_record().unwrap().unwrap();
    assert!(matches!(tomb.entry, Entry::LoggedOut(_)));
    assert_eq!((tomb.lineage, tomb.version), (lineage, 2));
    // B learns of it at its next refresh (no notifications yet): it stops there.
    fleet.server.expire_access_tokens();
    assert_eq!(b.ask("get"), "result logged_out elsewhere:requested");
    assert_eq!(b.ask("get"), "result logged_out elsewhere:requested");
    // A replica started now is logged out from the start.
    let mut c = fleet.spawn("once", &[]);
    c.ready();
    let result = c.next(Duration::from_secs(30)).expect("a result line");
    assert_eq!(c.exit_code(Duration::from_secs(30)), 0);
    assert_eq!(result, "result logged_out elsewhere:requested");
    // Nobody brought the tokens back, and nobody called the token endpoint.
    assert_eq!(fleet.store().read_record().unwrap(), Some(tomb));
    assert_eq!(fleet.server.stats().token_calls, 0);
    a.quit();
    b.quit();
    fleet.shutdown();
}

#[test]
fn redis_away_requests_flow_each_replica_refreshes_alone_and_nobody_is_logged_out() {
    // Two processes refreshing alone present the same refresh token: only a server with
    // a grace window for that survives it without a reuse detection.
    let config = ServerConfig::default().with_reuse_grace(Duration::from_secs(60));
    let Some(mut fleet) = Fleet::start(config) else {
        return;
    };
    let lineage = Lineage::from_u128(0xa3a7);
    fleet.seed(lineage);
    let mut a = fleet.spawn("session", &[]);
    let mut b = fleet.spawn("session", &[(worker::ADAPTER_ENV, "ureq".into())]);
    a.ready();
    b.ready();
    fleet.redis.stop();
    // The fast path never touches Redis.
    assert_eq!(a.ask("storm 50"), "result ok=50 failed=0 first=\"\"");
    assert_eq!(b.ask("storm 50"), "result ok=50 failed=0 first=\"\"");
    assert_eq!(a.ask("events"), "result store_failed=0");
    // An expiry: each replica refreshes once for its own storm, with the store failing.
    fleet.server.expire_access_tokens();
    fleet.server.reset_stats();
    let start = Instant::now();
    assert_eq!(a.ask("storm 100"), "result ok=100 failed=0 first=\"\"");
    assert_eq!(b.ask("storm 100"), "result ok=100 failed=0 first=\"\"");
    let away = start.elapsed();
    let stats = fleet.server.stats();
    let failed_a = field(&a.ask("events"), "store_failed");
    let failed_b = field(&b.ask("events"), "store_failed");
    eprintln!(
        "figures: Redis away, 2 replicas x 100 requests after expiry: token calls {}, reuse \
         detections {}, grace reuses {}, store failures {failed_a}+{failed_b}, wall {away:?}",
        stats.token_calls, stats.reuse_detections, stats.grace_reuses
    );
    assert_eq!(stats.token_calls, 2, "single-flight per process: {stats:?}");
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    assert!(failed_a >= 1 && failed_b >= 1, "{failed_a} {failed_b}");
    // Redis back (empty: no persistence): the replicas go on, nobody is logged out.
    fleet.redis.restart();
    fleet.server.expire_access_tokens();
    fleet.server.reset_stats();
    assert_eq!(a.ask("storm 100"), "result ok=100 failed=0 first=\"\"");
    assert_eq!(b.ask("storm 100"), "result ok=100 failed=0 first=\"\"");
    let stats = fleet.server.stats();
    let saved = fleet
        .store()
        .read_record()
        .unwrap()
        .expect("the record is written anew");
    eprintln!(
        "figures: Redis restarted empty, then an expiry: token calls {}, reuse detections {}, \
         record version {}",
        stats.token_calls, stats.reuse_detections, saved.version
    );
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    assert_eq!(saved.lineage, lineage);
    a.quit();
    b.quit();
    fleet.shutdown();
}

/// What became of a refresh whose lease holder was killed mid-call.
struct Takeover {
    result: String,
    waited: Duration,
    lineage: Lineage,
    first_refresh: String,
}

/// Seeds an expired session, makes the token endpoint answer the first call late with
/// `fault`, kills the replica that holds the lease once `in_flight` says the call is
/// where it should be, and runs the next replica. The lease lives the refresh deadline
/// (1 s) plus the session's margin.
fn kill_the_lease_holder(
    fleet: &Fleet,
    fault: Fault,
    in_flight: impl Fn(&TestServer) -> bool,
) -> Takeover {
    let lineage = Lineage::from_u128(0xdead);
    let first_refresh = fleet.seed(lineage);
    fleet.server.expire_access_tokens();
    fleet.server.reset_stats();
    fleet.server.push_fault(fault);
    let deadline = [(worker::DEADLINE_ENV, "1000".to_owned())];
    let mut victim = fleet.spawn("once", &deadline);
    victim.ready();
    until(Duration::from_secs(30), "the refresh call", || {
        in_flight(&fleet.server)
    });
    let ttl = fleet.lease_ttl().expect("the victim holds the lease");
    let expiry = Instant::now() + ttl;
    victim.kill_9();
    let killed = Instant::now();
    let r = fleet.store().read_record().unwrap().unwrap();
    assert_eq!((r.lineage, r.version), (lineage, 1));
    let mut next = fleet.spawn("once", &deadline);
    next.ready();
    let result = next.next(Duration::from_secs(60)).expect("a result line");
    let waited = killed.elapsed();
    assert_eq!(next.exit_code(Duration::from_secs(30)), 0, "{result}");
    // It took over only once the dead holder's lease had run out.
    assert!(
        Instant::now() >= expiry,
        "finished before the lease ran out"
    );
    Takeover {
        result,
        waited,
        lineage,
        first_refresh,
    }
}

#[test]
fn a_lease_holder_killed_before_the_server_rotated_is_taken_over_after_its_ttl() {
    let Some(fleet) = Fleet::start(ServerConfig::default()) else {
        return;
    };
    let t = kill_the_lease_holder(&fleet, Fault::Delay(Duration::from_secs(120)), |s| {
        s.stats().faults("delay") == 1
    });
    let stats = fleet.server.stats();
    eprintln!(
        "figures: fleet lease holder killed before rotation: next replica {:?} after {:?}, \
         token calls {}, rotations {}, reuse detections {}",
        t.result, t.waited, stats.token_calls, stats.refresh_grants, stats.reuse_detections
    );
    assert_eq!(t.result, "result ok");
    assert_eq!(stats.refresh_grants, 1, "{stats:?}");
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    let saved = fleet.store().read_record().unwrap().unwrap();
    assert_eq!((saved.lineage, saved.version), (t.lineage, 2));
    let family = fleet
        .server
        .family_of(&t.first_refresh)
        .expect("the family lives");
    assert!(fleet.server.current_refresh_token(family) == Some(refresh_token(&saved)));
    fleet.shutdown();
}

#[test]
fn a_lease_holder_killed_after_the_server_rotated_logs_every_replica_out_cleanly() {
    let Some(fleet) = Fleet::start(ServerConfig::default()) else {
        return;
    };
    // The server rotates at once and holds the answer back: the new refresh token dies
    // with the victim. Without a grace window, presenting the old one is a reuse.
    let t = kill_the_lease_holder(
        &fleet,
        Fault::RotateThenDelay(Duration::from_secs(120)),
        |s| s.stats().refresh_grants == 1,
    );
    let stats = fleet.server.stats();
    eprintln!(
        "figures: fleet lease holder killed after rotation, no grace: next replica {:?} \
         after {:?}, token calls {}, reuse detections {}",
        t.result, t.waited, stats.token_calls, stats.reuse_detections
    );
    assert_eq!(t.result, "result logged_out rejected");
    assert_eq!(
        (stats.token_calls, stats.reuse_detections),
        (2, 1),
        "{stats:?}"
    );
    let tomb = fleet.store().read_record().unwrap().unwrap();
    assert!(matches!(tomb.entry, Entry::LoggedOut(_)));
    assert_eq!((tomb.lineage, tomb.version), (t.lineage, 2));
    // No loop: the replica after it is logged out by the tombstone, without a call.
    let mut third = fleet.spawn("once", &[]);
    third.ready();
    let result = third.next(Duration::from_secs(30)).expect("a result line");
    assert_eq!(third.exit_code(Duration::from_secs(30)), 0, "{result}");
    assert_eq!(result, "result logged_out elsewhere:refresh_rejected");
    assert_eq!(fleet.server.stats().token_calls, 2);
    fleet.shutdown();
}

#[test]
fn a_lease_holder_killed_after_the_server_rotated_is_recovered_inside_a_grace_window() {
    let config = ServerConfig::default().with_reuse_grace(Duration::from_secs(60));
    let Some(fleet) = Fleet::start(config) else {
        return;
    };
    let t = kill_the_lease_holder(
        &fleet,
        Fault::RotateThenDelay(Duration::from_secs(120)),
        |s| s.stats().refresh_grants == 1,
    );
    let stats = fleet.server.stats();
    eprintln!(
        "figures: fleet lease holder killed after rotation, 60 s grace: next replica {:?} \
         after {:?}, token calls {}, grace reuses {}, reuse detections {}",
        t.result, t.waited, stats.token_calls, stats.grace_reuses, stats.reuse_detections
    );
    assert_eq!(t.result, "result ok");
    assert_eq!(
        (stats.reuse_detections, stats.grace_reuses),
        (0, 1),
        "{stats:?}"
    );
    let saved = fleet.store().read_record().unwrap().unwrap();
    assert_eq!((saved.lineage, saved.version), (t.lineage, 2));
    let family = fleet
        .server
        .family_of(&t.first_refresh)
        .expect("the family lives");
    assert!(fleet.server.current_refresh_token(family) == Some(refresh_token(&saved)));
    fleet.shutdown();
}

#[test]
fn redis_restarted_mid_storm_costs_no_request_and_no_logout() {
    const REPLICAS: usize = 4;
    const PER: usize = 100;
    // Without Redis for a moment the replicas refresh alone: a grace window on the
    // server keeps their parallel refreshes from counting as reuse.
    let config = ServerConfig::default().with_reuse_grace(Duration::from_secs(60));
    let Some(mut fleet) = Fleet::start(config) else {
        return;
    };
    let lineage = Lineage::from_u128(0x3e57a);
    fleet.seed(lineage);
    fleet.server.expire_access_tokens();
    fleet.server.reset_stats();
    // The lease holder's refresh is in flight when Redis goes.
    fleet
        .server
        .push_fault(Fault::Delay(Duration::from_millis(800)));
    let env = [(worker::REQUESTS_ENV, PER.to_string())];
    let mut workers: Vec<_> = (0..REPLICAS).map(|_| fleet.spawn("storm", &env)).collect();
    for w in &workers {
        w.ready();
    }
    for w in &mut workers {
        w.send("go");
    }
    until(Duration::from_secs(30), "the refresh call", || {
        fleet.server.stats().faults("delay") == 1
    });
    fleet.redis.restart();
    let (mut ok, mut store_failed) = (0, 0);
    for w in &mut workers {
        let result = w.next(Duration::from_secs(120)).expect("a result line");
        assert_eq!(w.exit_code(Duration::from_secs(30)), 0, "{result}");
        ok += field(&result, "ok");
        store_failed += field(&result, "store_failed");
    }
    let stats = fleet.server.stats();
    eprintln!(
        "figures: Redis restarted mid-storm ({REPLICAS} x {PER}): successes {ok}/{}, token \
         calls {}, reuse detections {}, grace reuses {}, store failures {store_failed}",
        REPLICAS * PER,
        stats.token_calls,
        stats.reuse_detections,
        stats.grace_reuses
    );
    assert_eq!(ok, REPLICAS * PER);
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    // Single-flight still holds within each process.
    assert!(stats.token_calls as usize <= REPLICAS, "{stats:?}");
    // The record is written anew, of the same login.
    let saved = fleet.store().read_record().unwrap().expect("a record");
    assert_eq!(saved.lineage, lineage);
    assert!(saved.tokens().is_some());
    fleet.shutdown();
}
