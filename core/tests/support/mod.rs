//! Shared helpers for the core's integration tests: a session with a clock that moves by
//! arithmetic, and a compact rendering of commands for transcript assertions.
#![allow(dead_code)]

use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use reauth_core::{
    AccessToken, Admission, Attempt, Command, Config, Entry, Event, MemoryStore, Origin,
    RefreshError, RefreshErrorKind, RefreshId, RefreshOutcome, RefreshToken, Session, StoreCommand,
    TokenSet, Verdict, WaiterId,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub const API: &str = "https://api.test/items/1";

pub fn config() -> Config {
    Config::new(Origin::parse("https://api.test").unwrap())
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn set(access: &str, refresh: Option<&str>, life: Option<u64>) -> TokenSet {
    let mut t = TokenSet::new(AccessToken::new(access).unwrap());
    if let Some(r) = refresh {
        t = t.with_refresh_token(RefreshToken::new(r).unwrap());
    }
    if let Some(l) = life {
        t = t.with_expires_in(secs(l));
    }
    t
}

pub fn transient() -> RefreshOutcome {
    RefreshOutcome::Failed(RefreshError::transient(RefreshErrorKind::Status {
        status: 503,
    }))
}

pub fn transient_after(d: Duration) -> RefreshOutcome {
    RefreshOutcome::Failed(
        RefreshError::transient(RefreshErrorKind::Status { status: 503 }).with_retry_after(d),
    )
}

pub fn permanent() -> RefreshOutcome {
    RefreshOutcome::Failed(RefreshError::permanent(RefreshErrorKind::OAuth {
        code: "invalid_grant".into(),
    }))
}

pub fn ok(access: &str, refresh: Option<&str>, life: Option<u64>) -> RefreshOutcome {
    RefreshOutcome::Success(set(access, refresh, life))
}

/// A session and a clock starting at `t0`.
pub struct Sim {
    pub s: Session,
    pub t0: Instant,
    pub now: Instant,
    /// The session's store: store commands are answered from it at once, and only the
    /// writes are rendered (the lease and the re-reads are the protocol's plumbing).
    /// Shared, to play two processes over one store.
    pub store: Arc<MemoryStore>,
    /// Render every store command, not only the writes.
    pub show_store: bool,
}

impl Sim {
    pub fn new(config: Config) -> Self {
        let t0 = Instant::now();
        Self {
            s: Session::new(config),
            t0,
            now: t0,
            store: Arc::new(MemoryStore::new()),
            show_store: false,
        }
    }

    /// A session logged in with `access-1` / `refresh-1`, lifetime `life` seconds.
    pub fn logged_in(life: Option<u64>) -> Self {
        let mut sim = Self::new(config());
        sim.s
            .login(sim.now, set("access-1", Some("refresh-1"), life));
        sim.drain();
        sim
    }

    /// As [`logged_in`](Self::logged_in), with `keep_warm`: timers refresh without traffic.
    pub fn warm(life: Option<u64>) -> Self {
        let mut c = config();
        c.keep_warm = true;
        let mut sim = Self::new(c);
        sim.s
            .login(sim.now, set("access-1", Some("refresh-1"), life));
        sim.drain();
        sim
    }

    /// Moves the clock to `t0 + at` and fires due timers.
    /// Store answers are inputs too and may set a deadline that is already due (a zero
    /// timeout): fire again until none is, as a driver's loop does.
    pub fn at(&mut self, at: Duration) -> Vec<String> {
        self.now = self.t0 + at;
        let mut out = Vec::new();
        for _ in 0..100 {
            self.s.handle_timeout(self.now);
            out.extend(self.drain());
            if self.s.poll_timeout().is_none_or(|t| t > self.now) {
                break;
            }
        }
        out
    }

    pub fn begin(&mut self) -> Admission {
        self.s.begin_request(self.now, &Uri::from_static(API))
    }

    pub fn send(&mut self) -> Attempt {
        match self.begin() {
            Admission::Send(a) => a,
            other => panic!("expected Send, got {other:?}"),
        }
    }

    pub fn wait(&mut self) -> WaiterId {
        match self.begin() {
            Admission::Wait(w) => w,
            other => panic!("expected Wait, got {other:?}"),
        }
    }

    pub fn respond(&mut self, a: &Attempt, status: u16) -> Verdict {
        let mut h = HeaderMap::new();
        if status == 401 {
            h.insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        self.s
            .handle_response(self.now, a, StatusCode::from_u16(status).unwrap(), &h, true)
    }

    /// The wall-clock time of `now`.
    pub fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_800_000_000)
            + self.now.duration_since(self.t0)
    }

    /// Next command, answering a store command from the store first.
    pub fn poll(&mut self) -> Option<Command> {
        let c = self.s.poll_command()?;
        if let Command::Store { id, op } = &c {
            let outcome = reauth_core::check::answer(&*self.store, op, self.now, self.wall());
            self.s.handle_store(self.now, self.wall(), *id, outcome);
        }
        Some(c)
    }

    pub fn refresh(&mut self, id: RefreshId, outcome: RefreshOutcome) -> Vec<String> {
        self.s.handle_refresh(self.now, id, outcome);
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(c) = self.poll() {
            let line = render(&c, self.t0);
            if self.show_store || !line.starts_with("store ") {
                out.push(line);
            }
        }
        out
    }

    /// Drains and returns the single StartRefresh id, asserting there is exactly one.
    pub fn started(&mut self) -> RefreshId {
        let ids = self.starts();
        assert_eq!(ids.len(), 1, "expected exactly one refresh, got {ids:?}");
        ids[0]
    }

    pub fn starts(&mut self) -> Vec<RefreshId> {
        let mut ids = Vec::new();
        while let Some(c) = self.poll() {
            if let Command::StartRefresh { id, .. } = c {
                ids.push(id);
            }
        }
        ids
    }
}

/// One line per command; secrets are shown because these are our own test tokens.
pub fn render(c: &Command, t0: Instant) -> String {
    let ms = |at: Instant| at.saturating_duration_since(t0).as_millis();
    match c {
        Command::StartRefresh {
            id, refresh_token, ..
        } => format!(
            "start {id} with {}",
            refresh_token.as_ref().map_or("none", |r| r.secret())
        ),
        Command::Resume { waiter, attempt } => format!(
            "resume {waiter} {}{}",
            attempt.generation(),
            if attempt.is_replay() { " replay" } else { "" }
        ),
        Command::Fail { waiter, error } => format!("fail {waiter}: {error}"),
        Command::Store {
            op: StoreCommand::Write { record, .. },
            ..
        } => match &record.entry {
            Entry::Tokens(t) => format!(
                "persist {} {}",
                t.access_token().secret(),
                t.refresh_token().map_or("no-refresh", |r| r.secret())
            ),
            Entry::LoggedOut(t) => format!("tombstone v{}: {}", record.version, t.as_str()),
        },
        Command::Store { op, .. } => format!("store {op:?}"),
        Command::Event(Event::Adopted { generation }) => format!("event adopted {generation}"),
        Command::Event(Event::RefreshOverdue { id }) => format!("event overdue {id}"),
        Command::Event(Event::Refreshed { generation, .. }) => {
            format!("event refreshed {generation}")
        }
        Command::Event(Event::RefreshFailed {
            attempt, retry_at, ..
        }) => match retry_at {
            Some(at) => format!("event refresh-failed #{attempt} retry at {}ms", ms(*at)),
            None => format!("event refresh-failed #{attempt} exhausted"),
        },
        Command::Event(Event::LoggedOut { reason }) => format!("event logged-out: {reason}"),
        other => format!("{other:?}"),
    }
}
