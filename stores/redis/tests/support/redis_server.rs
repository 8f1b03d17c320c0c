//! A real `redis-server` for tests and examples: started from PATH on a free 127.0.0.1
//! port in a temporary folder, with no persistence, and killed when dropped.
//!
//! Shared by file path (`#[path]`) by this crate's tests, the facade's fleet tests and
//! the fleet example, so it is no public API of any crate.

#![allow(dead_code)]

use reauth_redis::redis;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server may take to answer.
const START: Duration = Duration::from_secs(20);

/// A running `redis-server` of our own.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// Where `redis-server` is, if it is on PATH.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

impl RedisServer {
    /// A new server, or `None` with a message on stderr if `redis-server` is not on PATH.
    /// On CI (`CI` set) a missing server is a failure, not a skip.
    pub fn start() -> Option<RedisServer> {
        if find().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not on PATH (.ci/run installs it)"
            );
            eprintln!(
                "SKIPPED: redis-server is not on PATH; install it (Debian: apt-get install \
                 redis-server) to run the Redis tests"
            );
            return None;
        }
        // A port taken between our probe and the server's bind: try another.
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                dir: tempfile::tempdir().expect("a temporary folder"),
            };
            if server.launch() {
                return Some(server);
            }
        }
        panic!("redis-server did not start (see its log in the temporary folder)");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A redis-rs client for it.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a valid URL")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server (SIGKILL): its data is gone, as with a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START;
        // The port is free again at once (redis binds with SO_REUSEADDR); retry anyway.
        while !self.launch() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart: {}",
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel, nothing is
    /// answered. [`resume`](Self::resume) thaws it.
    pub fn pause(&self) {
        signal("-STOP", self.pid());
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        signal("-CONT", self.pid());
    }

    /// Starts the server on `self.port` and waits until it answers; false if it exited.
    fn launch(&mut self) -> bool {
        let log = self.dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + START;
        let client = self.client();
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Never leave a server behind, whatever happened (thawed first, so it can die).
        if self.child.is_some() {
            self.resume();
        }
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn signal(which: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([which, &pid.to_string()])
        .status();
}
