//! Shared helpers for the core's integration tests: a session with a clock that moves by
//! arithmetic, and a compact rendering of commands for transcript assertions.
#![allow(dead_code)]

use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use reauth_core::{
    AccessToken, Admission, Attempt, Command, Config, Event, Origin, RefreshError,
    RefreshErrorKind, RefreshId, RefreshOutcome, RefreshToken, Session, TokenSet, Verdict,
    WaiterId,
};
use std::time::{Duration, Instant};

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
}

impl Sim {
    pub fn new(config: Config) -> Self {
        let t0 = Instant::now();
        Self {
            s: Session::new(config),
            t0,
            now: t0,
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

    /// Moves the clock to `t0 + at` and fires due timers.
    pub fn at(&mut self, at: Duration) -> Vec<String> {
        self.now = self.t0 + at;
        self.s.handle_timeout(self.now);
        self.drain()
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
            .handle_response(self.now, a, StatusCode::from_u16(status).unwrap(), &h)
    }

    pub fn refresh(&mut self, id: RefreshId, outcome: RefreshOutcome) -> Vec<String> {
        self.s.handle_refresh(self.now, id, outcome);
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(c) = self.s.poll_command() {
            out.push(render(&c, self.t0));
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
        while let Some(c) = self.s.poll_command() {
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
        Command::StartRefresh { id, refresh_token } => format!(
            "start {id} with {}",
            refresh_token.as_ref().map_or("none", |r| r.secret())
        ),
        Command::Resume { waiter, attempt } => format!(
            "resume {waiter} {}{}",
            attempt.generation(),
            if attempt.is_replay() { " replay" } else { "" }
        ),
        Command::Fail { waiter, error } => format!("fail {waiter}: {error}"),
        Command::Persist(t) => format!(
            "persist {} {}",
            t.access_token().secret(),
            t.refresh_token().map_or("no-refresh", |r| r.secret())
        ),
        Command::Forget => "forget".into(),
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
