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

use reauth::{AccessToken, FileStore, RefreshToken, SavedTokens};
use reauth_testkit::{Fault, ServerConfig, TestServer};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

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

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
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

/// Logs a user in on the server and writes the tokens to the file, as a login command
/// would. Returns the refresh token.
fn seed(server: &TestServer, store: &FileStore) -> String {
    let issued = server.issue_tokens();
    store
        .write(&SavedTokens {
            access_token: AccessToken::new(issued.access_token).unwrap(),
            refresh_token: Some(RefreshToken::new(issued.refresh_token.clone()).unwrap()),
            expires_at: Some(SystemTime::now() + Duration::from_secs(issued.expires_in)),
            scope: None,
        })
        .unwrap();
    issued.refresh_token
}

fn refresh_token(saved: &SavedTokens) -> String {
    saved.refresh_token.as_ref().unwrap().secret().to_owned()
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
    let first = seed(&server, &store);
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
        assert_eq!(w.next(Duration::from_secs(60)).as_deref(), Some("ready"));
    }
    let start = Instant::now();
    for w in &mut workers {
        w.go();
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
    // The file holds the rotated tokens of the same family.
    let saved = store.read().unwrap().unwrap();
    assert_ne!(refresh_token(&saved), first);
    assert_eq!(
        server.family_of(&refresh_token(&saved)),
        server.family_of(&first)
    );
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
    /// The file still held the old tokens, the server had not rotated them.
    before_rotation: u32,
    /// The file still held the old tokens, the server had already rotated them.
    rotated_not_saved: u32,
    /// The file held the new tokens.
    saved: u32,
    /// The worker finished before the kill landed.
    finished_first: u32,
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
    let start = Instant::now();

    while tally.iterations < MAX_ITERATIONS && start.elapsed() < BUDGET {
        let i = tally.iterations;
        // A logged-in file (again, if the last recovery logged out).
        let before = match store.read().unwrap() {
            Some(saved) => refresh_token(&saved),
            None => seed(&server, &store),
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
        assert_eq!(
            victim.next(Duration::from_secs(60)).as_deref(),
            Some("ready")
        );
        // ready → request → 401 → lock → re-read → token call (delay) → save (pause).
        std::thread::sleep(Duration::from_millis(
            rng.below(delay + PERSIST_PAUSE_MS + 15),
        ));
        if victim.child.try_wait().unwrap().is_some() {
            tally.finished_first += 1;
        }
        // std's Child::kill is SIGKILL on Unix.
        let _ = victim.child.kill();
        victim.child.wait().unwrap();
        drop(victim);
        // Let a token call the kill cut short finish (or not) on the server side.
        std::thread::sleep(Duration::from_millis(delay + 10));

        // After every kill: the file loads, as the old set or the new one, never torn.
        let after = match store.read() {
            Ok(Some(saved)) => refresh_token(&saved),
            other => panic!("iteration {i}: the file did not load cleanly: {other:?}"),
        };
        let rotated = server.stats().refresh_grants > rotations;
        if after != before {
            assert!(rotated, "iteration {i}: new tokens the server never issued");
            assert_eq!(server.family_of(&after), server.family_of(&before));
            tally.saved += 1;
        } else if rotated {
            tally.rotated_not_saved += 1;
        } else {
            tally.before_rotation += 1;
        }

        // The next process recovers: requests work, or the session ends cleanly because
        // the server had already rotated the tokens the file holds.
        server.clear_faults();
        let mut next = Worker::spawn("once", &server, &path, &[]);
        assert_eq!(next.next(Duration::from_secs(60)).as_deref(), Some("ready"));
        let result = next.next(Duration::from_secs(60)).expect("a result line");
        assert_eq!(
            next.exit_code(Duration::from_secs(30)),
            0,
            "iteration {i}: {result}"
        );
        match result.as_str() {
            "result ok" => tally.recovered_ok += 1,
            "result logged_out" => {
                assert_eq!(
                    after, before,
                    "iteration {i}: logged out although the file held the new tokens"
                );
                tally.recovered_logged_out += 1;
            }
            other => panic!("iteration {i}: {other}"),
        }
        // Whatever happened, the file is still readable (logged out: no file).
        store.read().unwrap();
        tally.iterations += 1;
    }
    let took = start.elapsed();

    tally.temp_files_left = temp_files(dir.path()).len();
    let stats = server.stats();
    eprintln!(
        "figures: crash loop: {tally:?}, reuse detections {}, time {took:?}",
        stats.reuse_detections
    );
    assert!(
        tally.iterations >= MIN_ITERATIONS,
        "only {} iterations in {BUDGET:?}",
        tally.iterations
    );
    // Only the kills between the server's rotation and the rename cost a login.
    assert!(stats.reuse_detections <= u64::from(tally.rotated_not_saved + tally.before_rotation));
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
    drop(store.lock(Duration::from_secs(5)).unwrap());
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
