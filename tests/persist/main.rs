//! Processes sharing one token file, for real: separate OS processes, one `FileStore`
//! file, the testkit server (rotation + reuse detection) on loopback in this process.
//!
//! The child processes are this very test binary, run again with `--exact worker_entry`
//! and [`worker::WORKER_ENV`] set: `worker_entry` is an ordinary test that returns at once
//! unless that variable is set, and otherwise becomes the worker and exits the process.
//! This needs no extra binary target, no `required-features` and no guessing of cargo's
//! target folder (`std::env::current_exe()` is always the binary being run), and it is
//! always built together with the test.
//!
//! Run with `--nocapture` to see the figures.
#![cfg(all(feature = "file-store", feature = "reqwest"))]

mod worker;

use reauth::{
    AccessToken, Entry, Expect, FileStore, Lease, Lineage, Record, RefreshToken, SavedTokens, Swap,
};
use reauth_testkit::{Fault, ServerConfig, TestServer};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn worker_entry() {
    if let Ok(mode) = std::env::var(worker::WORKER_ENV) {
        worker::main(&mode);
    }
}

/// A worker process and the messages it prints.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn spawn(mode: &str, server: &TestServer, file: &Path, env: &[(&str, String)]) -> Worker {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "worker_entry", "--nocapture", "--test-threads=1"])
            .env(worker::WORKER_ENV, mode)
            .env(worker::BASE_ENV, server.base_url())
            .env(worker::FILE_ENV, file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn a worker");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest's "test worker_entry ... " may share the first line.
                if let Some(at) = line.find(worker::PREFIX) {
                    let msg = &line[at + worker::PREFIX.len()..];
                    if tx.send(msg.to_owned()).is_err() {
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

    /// The next message, within `limit`.
    fn next(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Waits for `ready`; the worker's messages so far if it does not come.
    fn ready(&self) {
        let line = self.next(Duration::from_secs(60));
        assert_eq!(line.as_deref(), Some("ready"));
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a `session` command and returns its result line.
    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.next(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no answer to {command}"))
    }

    /// Waits for the exit code within `limit`; a worker that overruns is killed and the
    /// test fails.
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Logs a user in on the server and writes the tokens to the file as a new lineage at
/// version 1, as a login would. Returns the refresh token.
fn seed(server: &TestServer, store: &FileStore, lineage: Lineage) -> String {
    let issued = server.issue_tokens();
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
    assert_eq!(
        store.write_record(Expect::Any, &record).unwrap(),
        Swap::Written
    );
    issued.refresh_token
}

fn refresh_token(r: &Record) -> String {
    r.tokens()
        .and_then(|t| t.refresh_token.as_ref())
        .map_or_else(String::new, |t| t.secret().to_owned())
}

fn is_tombstone(r: &Record) -> bool {
    matches!(r.entry, Entry::LoggedOut(_))
}

/// When the lease in the lock file runs out, if there is one.
fn lease_expiry(store: &FileStore) -> Option<SystemTime> {
    let text = std::fs::read_to_string(store.lock_path()).ok()?;
    let millis = text.split_whitespace().nth(3)?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(millis))
}

/// Waits until `done` holds, within `limit`.
fn until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn eight_processes_with_fifty_requests_each_refresh_once() {
    const PROCESSES: usize = 8;
    const REQUESTS: usize = 50;
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    let lineage = Lineage::from_u128(8);
    let first = seed(&server, &store, lineage);
    server.expire_access_tokens();
    server.reset_stats();

    let mut workers: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Worker::spawn(
                "storm",
                &server,
                &path,
                &[(worker::REQUESTS_ENV, REQUESTS.to_string())],
            )
        })
        .collect();
    // Every process has loaded the (expired) tokens before any request goes out.
    for w in &workers {
        w.ready();
    }
    let start = Instant::now();
    for w in &mut workers {
        w.send("go");
    }
    let mut ok = 0;
    for w in &mut workers {
        let result = w.next(Duration::from_secs(60)).expect("a result line");
        assert_eq!(w.exit_code(Duration::from_secs(30)), 0, "{result}");
        ok += result
            .strip_prefix("result ok=")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{result}"));
    }
    let wall = start.elapsed();
    let stats = server.stats();
    eprintln!(
        "figures: {PROCESSES} processes x {REQUESTS} requests: token-endpoint calls {}, \
         reuse detections {}, successes {ok}/{}, API 401s {}, wall {wall:?}",
        stats.token_calls,
        stats.reuse_detections,
        PROCESSES * REQUESTS,
        stats.api_status(401),
    );
    assert_eq!(stats.token_calls, 1, "{stats:?}");
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    assert_eq!(ok, PROCESSES * REQUESTS);
    // Every process met the expired token, so every one needed the refresh.
    assert!(stats.api_status(401) >= PROCESSES as u64, "{stats:?}");
    // The file holds the rotated tokens of the same family, one version on.
    let saved = store.read_record().unwrap().unwrap();
    assert_eq!((saved.lineage, saved.version), (lineage, 2));
    assert!(
        refresh_token(&saved) != first,
        "the rotated refresh token was saved"
    );
    assert_eq!(
        server.family_of(&refresh_token(&saved)),
        server.family_of(&first)
    );
    rt.block_on(server.shutdown());
}

#[test]
fn a_lease_held_by_another_process_holds_the_refresh_back() {
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    let lineage = Lineage::from_u128(0x1ea5e);
    seed(&server, &store, lineage);
    server.expire_access_tokens();
    // This process holds the lease; the worker meets the expired token.
    let Lease::Granted(held) = store.take_lease(lineage, Duration::from_secs(30)).unwrap() else {
        panic!("a free lease was refused")
    };
    let mut w = Worker::spawn("once", &server, &path, &[]);
    w.ready();
    assert_eq!(
        w.next(Duration::from_secs(1)),
        None,
        "it waits for the lease"
    );
    assert_eq!(server.stats().token_calls, 0);
    store.give_back(held).unwrap();
    let result = w.next(Duration::from_secs(30)).expect("a result line");
    assert_eq!(result, "result ok");
    assert_eq!(w.exit_code(Duration::from_secs(30)), 0);
    let stats = server.stats();
    assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
    rt.block_on(server.shutdown());
}

/// What became of a refresh whose lease holder was killed mid-call.
struct Takeover {
    /// The next process's result line.
    result: String,
    /// From the kill to that result.
    waited: Duration,
    /// The record the file held after the next process.
    record: Record,
    lineage: Lineage,
    first_refresh: String,
}

/// Seeds an expired session, makes the token endpoint answer the first call late with
/// `fault`, kills the worker that holds the lease once `in_flight` says the call is where
/// it should be, and runs the next process. The lease lives the refresh deadline (1 s)
/// plus the session's margin.
fn kill_the_lease_holder(
    server: &TestServer,
    path: &Path,
    fault: Fault,
    in_flight: impl Fn(&TestServer) -> bool,
) -> Takeover {
    let store = FileStore::new(path);
    let lineage = Lineage::from_u128(0xdead);
    let first_refresh = seed(server, &store, lineage);
    server.expire_access_tokens();
    server.reset_stats();
    server.push_fault(fault);
    let deadline = [(worker::DEADLINE_ENV, "1000".to_owned())];
    let mut victim = Worker::spawn("once", server, path, &deadline);
    victim.ready();
    until(Duration::from_secs(30), "the refresh call", || {
        in_flight(server)
    });
    // The lease is the victim's, as every process sees it.
    assert_eq!(
        store.take_lease(lineage, Duration::from_secs(1)).unwrap(),
        Lease::Busy
    );
    let expiry = lease_expiry(&store).expect("a lease line");
    victim.kill_9();
    let killed = Instant::now();
    // The file still holds the record the victim started from, whole.
    let r = store.read_record().unwrap().unwrap();
    assert_eq!((r.lineage, r.version), (lineage, 1));
    assert!(
        refresh_token(&r) == first_refresh,
        "the victim's refresh token"
    );

    let mut next = Worker::spawn("once", server, path, &deadline);
    next.ready();
    let result = next.next(Duration::from_secs(60)).expect("a result line");
    let waited = killed.elapsed();
    assert_eq!(next.exit_code(Duration::from_secs(30)), 0, "{result}");
    // It took over only once the dead holder's lease had run out.
    assert!(
        SystemTime::now() >= expiry,
        "finished {:?} before the lease ran out",
        expiry.duration_since(SystemTime::now()).unwrap_or_default()
    );
    Takeover {
        result,
        waited,
        record: store.read_record().unwrap().unwrap(),
        lineage,
        first_refresh,
    }
}

#[test]
fn a_lease_holder_killed_before_the_server_rotated_is_taken_over_after_its_ttl() {
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    // The answer is late by far more than the test lasts: the victim dies waiting.
    let t = kill_the_lease_holder(
        &server,
        &path,
        Fault::Delay(Duration::from_secs(120)),
        |s| s.stats().faults("delay") == 1,
    );
    let stats = server.stats();
    eprintln!(
        "figures: lease holder killed before rotation: next process {:?} after {:?}, \
         token calls {}, rotations {}, reuse detections {}",
        t.result, t.waited, stats.token_calls, stats.refresh_grants, stats.reuse_detections
    );
    assert_eq!(t.result, "result ok");
    // Only the next process rotated, with the token the victim never got to use.
    assert_eq!(stats.refresh_grants, 1, "{stats:?}");
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    assert_eq!((t.record.lineage, t.record.version), (t.lineage, 2));
    let family = server
        .family_of(&t.first_refresh)
        .expect("the family lives");
    assert!(
        server.current_refresh_token(family) == Some(refresh_token(&t.record)),
        "the file holds the family's current refresh token"
    );
    rt.block_on(server.shutdown());
}

#[test]
fn a_lease_holder_killed_after_the_server_rotated_costs_a_clean_logout() {
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    // The server rotates at once and holds the answer back: the new refresh token dies
    // with the victim. Without a grace window, presenting the old one is a reuse.
    let t = kill_the_lease_holder(
        &server,
        &path,
        Fault::RotateThenDelay(Duration::from_secs(120)),
        |s| s.stats().refresh_grants == 1,
    );
    let stats = server.stats();
    eprintln!(
        "figures: lease holder killed after rotation, no grace: next process {:?} after \
         {:?}, token calls {}, reuse detections {}",
        t.result, t.waited, stats.token_calls, stats.reuse_detections
    );
    assert_eq!(t.result, "result logged_out rejected");
    assert_eq!(stats.reuse_detections, 1, "{stats:?}");
    assert_eq!(stats.token_calls, 2, "{stats:?}");
    // It wrote its tombstone over the record it started from.
    assert!(is_tombstone(&t.record));
    assert_eq!((t.record.lineage, t.record.version), (t.lineage, 2));
    // No loop: the process after it is logged out by the tombstone, without a call.
    let mut third = Worker::spawn("once", &server, &path, &[]);
    third.ready();
    let result = third.next(Duration::from_secs(30)).expect("a result line");
    assert_eq!(third.exit_code(Duration::from_secs(30)), 0, "{result}");
    assert_eq!(result, "result logged_out elsewhere:refresh_rejected");
    assert_eq!(server.stats().token_calls, 2);
    rt.block_on(server.shutdown());
}

#[test]
fn a_lease_holder_killed_after_the_server_rotated_is_recovered_inside_a_grace_window() {
    let rt = runtime();
    let config = ServerConfig::default().with_reuse_grace(Duration::from_secs(60));
    let server = rt.block_on(TestServer::start(config)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let t = kill_the_lease_holder(
        &server,
        &path,
        Fault::RotateThenDelay(Duration::from_secs(120)),
        |s| s.stats().refresh_grants == 1,
    );
    let stats = server.stats();
    eprintln!(
        "figures: lease holder killed after rotation, 60 s grace: next process {:?} after \
         {:?}, token calls {}, grace reuses {}, reuse detections {}",
        t.result, t.waited, stats.token_calls, stats.grace_reuses, stats.reuse_detections
    );
    assert_eq!(t.result, "result ok");
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    assert_eq!(stats.grace_reuses, 1, "{stats:?}");
    assert_eq!((t.record.lineage, t.record.version), (t.lineage, 2));
    let family = server
        .family_of(&t.first_refresh)
        .expect("the family lives");
    assert!(
        server.current_refresh_token(family) == Some(refresh_token(&t.record)),
        "the file holds the family's current refresh token"
    );
    rt.block_on(server.shutdown());
}

#[test]
fn a_logout_sticks_across_processes() {
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    let lineage = Lineage::from_u128(0x1060);
    seed(&server, &store, lineage);
    let mut a = Worker::spawn("session", &server, &path, &[]);
    let mut b = Worker::spawn("session", &server, &path, &[]);
    a.ready();
    b.ready();
    // B refreshes: the file moves on to version 2, past what A read at start.
    server.expire_access_tokens();
    assert_eq!(b.ask("get"), "result ok");
    assert_eq!(store.read_record().unwrap().unwrap().version, 2);
    // A logs out from version 1: its tombstone is written over B's newer tokens.
    assert_eq!(a.ask("logout"), "result tombstone");
    let tomb = store.read_record().unwrap().unwrap();
    assert!(is_tombstone(&tomb));
    assert_eq!((tomb.lineage, tomb.version), (lineage, 3));
    let bytes = std::fs::read(&path).unwrap();
    // B's access token expires: its refresh episode finds the tombstone and stops.
    server.expire_access_tokens();
    assert_eq!(b.ask("get"), "result logged_out elsewhere:requested");
    assert_eq!(b.ask("get"), "result logged_out elsewhere:requested");
    // A process started now is logged out from the start.
    let mut c = Worker::spawn("once", &server, &path, &[]);
    c.ready();
    let result = c.next(Duration::from_secs(30)).expect("a result line");
    assert_eq!(result, "result logged_out elsewhere:requested");
    assert_eq!(c.exit_code(Duration::from_secs(30)), 0);
    // The file never went back to tokens, and only B's first refresh reached the server.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let stats = server.stats();
    assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
    for w in [&mut a, &mut b] {
        w.send("quit");
        assert_eq!(w.exit_code(Duration::from_secs(30)), 0);
    }
    rt.block_on(server.shutdown());
}

#[test]
fn a_logout_during_another_process_refresh_sticks() {
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    let lineage = Lineage::from_u128(0x1061);
    seed(&server, &store, lineage);
    let mut a = Worker::spawn("session", &server, &path, &[]);
    let mut b = Worker::spawn("session", &server, &path, &[]);
    a.ready();
    b.ready();
    server.expire_access_tokens();
    server.push_fault(Fault::Delay(Duration::from_millis(800)));
    // B's refresh is in flight when A logs out.
    b.send("get");
    until(Duration::from_secs(30), "B's refresh call", || {
        server.stats().faults("delay") == 1
    });
    assert_eq!(a.ask("logout"), "result tombstone");
    // B's refreshed tokens lose to the tombstone: it is logged out, the file stays so.
    let result = b.next(Duration::from_secs(30)).expect("a result line");
    assert_eq!(result, "result logged_out elsewhere:requested");
    let tomb = store.read_record().unwrap().unwrap();
    assert!(is_tombstone(&tomb));
    assert_eq!((tomb.lineage, tomb.version), (lineage, 2));
    assert_eq!(server.stats().refresh_grants, 1);
    for w in [&mut a, &mut b] {
        w.send("quit");
        assert_eq!(w.exit_code(Duration::from_secs(30)), 0);
    }
    rt.block_on(server.shutdown());
}

#[test]
fn a_second_login_on_the_file_supersedes_the_first_without_lending_it_tokens() {
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    let login = |t: &reauth_testkit::IssuedTokens| {
        [
            (worker::LOGIN_ACCESS_ENV, t.access_token.clone()),
            (worker::LOGIN_REFRESH_ENV, t.refresh_token.clone()),
        ]
    };
    let (user1, user2) = (server.issue_tokens(), server.issue_tokens());
    let mut a = Worker::spawn("session", &server, &path, &login(&user1));
    a.ready();
    let a_lineage = store.read_record().unwrap().unwrap().lineage;
    let mut b = Worker::spawn("session", &server, &path, &login(&user2));
    b.ready();
    let b_record = store.read_record().unwrap().unwrap();
    assert_ne!(b_record.lineage, a_lineage);
    assert!(
        refresh_token(&b_record) == user2.refresh_token,
        "the file holds user 2's login"
    );
    server.expire_access_tokens();
    // A's refresh finds another login in the file: it stops, takes nothing, calls nothing.
    assert_eq!(a.ask("get"), "result logged_out superseded");
    assert_eq!(server.stats().token_calls, 0);
    assert_eq!(store.read_record().unwrap().unwrap(), b_record);
    // B goes on as usual.
    assert_eq!(b.ask("get"), "result ok");
    let after = store.read_record().unwrap().unwrap();
    assert_eq!((after.lineage, after.version), (b_record.lineage, 2));
    assert_eq!(server.family_of(&refresh_token(&after)), Some(user2.family));
    // A stays out; user 1's family was never touched.
    assert_eq!(a.ask("get"), "result logged_out superseded");
    assert!(
        server.current_refresh_token(user1.family) == Some(user1.refresh_token.clone()),
        "user 1's family was not rotated"
    );
    let stats = server.stats();
    assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
    for w in [&mut a, &mut b] {
        w.send("quit");
        assert_eq!(w.exit_code(Duration::from_secs(30)), 0);
    }
    rt.block_on(server.shutdown());
}

/// A tiny deterministic generator for kill delays (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[derive(Debug, Default)]
struct Tally {
    iterations: u32,
    /// The file still held the old version, the server had not rotated it.
    old_not_rotated: u32,
    /// The file still held the old version, the server had already rotated it.
    old_rotated: u32,
    /// The file held the next version.
    new_version: u32,
    /// The worker finished before the kill landed.
    finished_first: u32,
    /// A dead victim's lease was left in the lock file.
    leases_left: u32,
    recovered_ok: u32,
    recovered_logged_out: u32,
    temp_files_left: usize,
}

#[test]
fn kill_9_during_refresh_and_persist_never_tears_the_file() {
    const MIN_ITERATIONS: u32 = 100;
    const MAX_ITERATIONS: u32 = 150;
    const BUDGET: Duration = Duration::from_secs(120);
    /// Pause in the middle of writing the temporary file, so kills land mid-save.
    const PERSIST_PAUSE_MS: u64 = 15;
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tally = Tally::default();
    let mut lineages = 0u128;
    let start = Instant::now();

    while tally.iterations < MAX_ITERATIONS && start.elapsed() < BUDGET {
        let i = tally.iterations;
        // A logged-in file (a new login, if the last recovery logged out).
        let before = match store.read_record().unwrap() {
            Some(r) if !is_tombstone(&r) => r,
            _ => {
                lineages += 1;
                seed(&server, &store, Lineage::from_u128(lineages));
                store.read_record().unwrap().unwrap()
            }
        };
        server.expire_access_tokens();
        server.clear_faults();
        let delay = 5 + rng.below(30);
        server.push_fault(Fault::Delay(Duration::from_millis(delay)));
        let rotations = server.stats().refresh_grants;

        let mut victim = Worker::spawn(
            "once",
            &server,
            &path,
            &[(worker::PAUSE_ENV, PERSIST_PAUSE_MS.to_string())],
        );
        victim.ready();
        // ready → request → 401 → lease → re-read → token call (delay) → save (pause).
        std::thread::sleep(Duration::from_millis(
            rng.below(delay + PERSIST_PAUSE_MS + 15),
        ));
        if victim.child.try_wait().unwrap().is_some() {
            tally.finished_first += 1;
        }
        victim.kill_9();
        drop(victim);
        // The lease of a holder killed mid-refresh runs out only after the refresh
        // deadline plus a margin (tested on its own above); here the dead holder's
        // lease is cleared, as if that time had passed, so iterations do not wait it out.
        if lease_expiry(&store).is_some_and(|at| at > SystemTime::now()) {
            tally.leases_left += 1;
        }
        std::fs::File::options()
            .write(true)
            .open(store.lock_path())
            .and_then(|f| f.set_len(0))
            .unwrap();
        // Let a token call the kill cut short finish (or not) on the server side.
        std::thread::sleep(Duration::from_millis(delay + 10));

        // After every kill: the file loads as a whole record, at the old version or the
        // next one, never torn.
        let after = match store.read_record() {
            Ok(Some(r)) if !is_tombstone(&r) => r,
            other => panic!("iteration {i}: the file did not load cleanly: {other:?}"),
        };
        assert_eq!(after.lineage, before.lineage, "iteration {i}");
        let rotated = server.stats().refresh_grants > rotations;
        if after.version == before.version {
            assert_eq!(after, before, "iteration {i}: same version, other content");
            if rotated {
                tally.old_rotated += 1;
            } else {
                tally.old_not_rotated += 1;
            }
        } else {
            assert_eq!(after.version, before.version + 1, "iteration {i}");
            assert!(rotated, "iteration {i}: new tokens the server never issued");
            assert!(
                refresh_token(&after) != refresh_token(&before),
                "iteration {i}: a new version with the old refresh token"
            );
            assert_eq!(
                server.family_of(&refresh_token(&after)),
                server.family_of(&refresh_token(&before))
            );
            tally.new_version += 1;
        }

        // The next process recovers: requests work, or the session ends cleanly because
        // the server had already rotated the tokens the file holds.
        server.clear_faults();
        let mut next = Worker::spawn("once", &server, &path, &[]);
        next.ready();
        let result = next.next(Duration::from_secs(60)).expect("a result line");
        assert_eq!(
            next.exit_code(Duration::from_secs(30)),
            0,
            "iteration {i}: {result}"
        );
        let now = store.read_record().unwrap().unwrap();
        match result.as_str() {
            "result ok" => {
                assert!(!is_tombstone(&now), "iteration {i}");
                tally.recovered_ok += 1;
            }
            "result logged_out rejected" => {
                assert!(
                    after.version == before.version && rotated,
                    "iteration {i}: logged out although the file held usable tokens"
                );
                // It left a tombstone at the next version, not a loop.
                assert!(is_tombstone(&now), "iteration {i}");
                assert_eq!(now.version, after.version + 1, "iteration {i}");
                tally.recovered_logged_out += 1;
            }
            other => panic!("iteration {i}: {other}"),
        }
        tally.iterations += 1;
    }
    let took = start.elapsed();

    tally.temp_files_left = temp_files(dir.path()).len();
    let stats = server.stats();
    eprintln!(
        "figures: crash loop: {tally:?}, logins {lineages}, reuse detections {}, time {took:?}",
        stats.reuse_detections
    );
    assert!(
        tally.iterations >= MIN_ITERATIONS,
        "only {} iterations in {BUDGET:?}",
        tally.iterations
    );
    // Each logout is one reuse of a token rotated but never saved, and nothing else.
    assert_eq!(
        stats.reuse_detections,
        u64::from(tally.recovered_logged_out)
    );
    assert!(tally.recovered_logged_out <= tally.old_rotated);
    // No file was ever unreadable, so none was set aside.
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert!(aside.is_empty(), "{aside:?}");
    // Half-written temporary files of killed writers are ignored, and removed by the
    // next holder of the lock once they are old.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for t in temp_files(dir.path()) {
        std::fs::File::options()
            .write(true)
            .open(&t)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    let Lease::Granted(id) = store
        .take_lease(Lineage::from_u128(0), Duration::from_secs(5))
        .unwrap()
    else {
        panic!("a free lease was refused")
    };
    store.give_back(id).unwrap();
    assert!(temp_files(dir.path()).is_empty());
    rt.block_on(server.shutdown());
}

fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect()
}
