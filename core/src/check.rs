//! The invariant checker: a simulated adapter that drives a [`Session`] with a schedule of
//! [`Op`]s and checks the core's guarantees after every step.
//!
//! The property tests and the cargo-fuzz targets share it, and so can users who embed the
//! core in their own runtime: feed it schedules that look like your traffic.
//!
//! ```
//! use reauth_core::check::{Harness, Op};
//!
//! let mut h = Harness::new(Harness::default_config());
//! h.apply(&Op::Login { lifetime_secs: Some(3600), refresh_token: true }).unwrap();
//! h.apply(&Op::Begin { count: 100 }).unwrap();
//! h.apply(&Op::RespondAll { unauthorized: true }).unwrap(); // 100 401s...
//! assert_eq!(h.refreshes_started(), 1); // ...one refresh
//! h.apply(&Op::RefreshOk { stale: 0, lifetime_secs: Some(3600), rotate: true }).unwrap();
//! h.apply(&Op::RespondAll { unauthorized: false }).unwrap();
//! assert_eq!(h.completed(), 100);
//! h.finish().unwrap(); // nothing left waiting
//! ```

use crate::command::{
    Admission, Command, Event, RefreshOutcome, StoreCommand, StoreOutcome, StoreReply, Verdict,
};
use crate::config::Config;
use crate::credential::Attempt;
use crate::error::{Error, RefreshError, RefreshErrorKind};
use crate::ids::{Generation, RefreshId, WaiterId};
use crate::machine::Session;
use crate::origin::Origin;
use crate::record::Entry;
use crate::state::Phase;
use crate::store::{MemoryStore, TokenStore};
use crate::token::{AccessToken, RefreshToken, TokenSet};
use http::{HeaderMap, StatusCode, Uri};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// One step of a schedule. Numbers that pick among outstanding items are taken modulo
/// the number of items, so every value is meaningful.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// Begin `count` requests (at most [`Harness::MAX_BEGIN`]) to the API origin.
    Begin {
        /// How many.
        count: u16,
    },
    /// Begin one request to an origin that is not allowed.
    BeginForeign,
    /// Answer one in-flight request: 200, 401 (with an `invalid_token` challenge) or 403.
    Respond {
        /// Which in-flight request.
        pick: u16,
        /// 0: 200, 1: 401, 2: 403 (other values: 200).
        status: u8,
    },
    /// Answer every in-flight request, all 401 or all 200.
    RespondAll {
        /// 401 if true, else 200.
        unauthorized: bool,
    },
    /// A refresh succeeded. `stale` 0 answers the outstanding refresh; other values answer
    /// an older (late or duplicate) one.
    RefreshOk {
        /// Which refresh: 0 the newest, n the n-th older.
        stale: u8,
        /// Lifetime of the new token, if known.
        lifetime_secs: Option<u16>,
        /// True if the response rotates the refresh token.
        rotate: bool,
    },
    /// A refresh failed transiently.
    RefreshTransient {
        /// Which refresh, as in [`Op::RefreshOk`].
        stale: u8,
        /// The server's `Retry-After`, if any.
        retry_after_ms: Option<u16>,
    },
    /// A refresh failed permanently (`invalid_grant`).
    RefreshPermanent {
        /// Which refresh, as in [`Op::RefreshOk`].
        stale: u8,
    },
    /// The caller drops one waiting request.
    Cancel {
        /// Which waiter.
        pick: u16,
    },
    /// Time passes by this much; then `handle_timeout`.
    Advance {
        /// Milliseconds.
        millis: u32,
    },
    /// Time jumps to the next deadline; then `handle_timeout`.
    AdvanceToDeadline,
    /// The application logs out.
    Logout,
    /// The application logs in with new tokens.
    Login {
        /// Lifetime of the access token, if known.
        lifetime_secs: Option<u16>,
        /// True if the set carries a refresh token.
        refresh_token: bool,
    },
    /// The application reports the token bad, learned outside HTTP
    /// ([`Session::invalidate`]).
    Invalidate {
        /// Report an older generation than the current one (a stale report).
        stale: bool,
    },
}

/// A broken guarantee: which rule, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule, e.g. `"single-flight"`.
    pub rule: &'static str,
    /// What was observed.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant `{}` violated: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Violation {}

fn violation(rule: &'static str, detail: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        rule,
        detail: detail.into(),
    })
}

macro_rules! ensure {
    ($cond:expr, $rule:literal, $($fmt:tt)+) => {
        if !$cond {
            return violation($rule, format!($($fmt)+));
        }
    };
}

/// A simulated adapter around a [`Session`], checking every guarantee as it goes.
#[derive(Debug)]
pub struct Harness {
    session: Session,
    /// The session's store, answered at once.
    store: MemoryStore,
    now: Instant,
    /// The wall-clock time of `now`.
    wall: SystemTime,
    api: Uri,
    foreign: Uri,
    /// Requests on the wire, awaiting a response.
    in_flight: Vec<Attempt>,
    /// Waiters not yet resolved or cancelled, with the instant they started waiting. Ids
    /// grow with time, so the first entry waited longest.
    open: BTreeMap<WaiterId, Instant>,
    /// Every refresh id ever started, oldest first.
    refreshes: Vec<RefreshId>,
    /// The refresh token the store must hold after the next persist.
    expected_refresh: Option<String>,
    /// Between a logout (of any cause) and the next login.
    logged_out: bool,
    tokens_minted: u64,
    completed: u64,
    failed: u64,
}

impl Harness {
    /// Largest `count` a single [`Op::Begin`] honours.
    pub const MAX_BEGIN: u16 = 1000;

    /// A configuration with short, distinct durations so schedules reach every phase.
    pub fn default_config() -> Config {
        let mut c = Config::new(Origin::parse("https://api.test").expect("valid origin"));
        c.leeway = Duration::from_secs(10);
        c.refresh_window = Duration::from_secs(60);
        c.refresh_timeout = Duration::from_secs(30);
        c.waiter_timeout = Duration::from_secs(45);
        c
    }

    /// A harness over a fresh session with `config`. Its API origin must allow
    /// `https://api.test`.
    pub fn new(config: Config) -> Self {
        Self {
            session: Session::new(config),
            store: MemoryStore::new(),
            now: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            api: Uri::from_static("https://api.test/items/1"),
            foreign: Uri::from_static("https://elsewhere.test/"),
            in_flight: Vec::new(),
            open: BTreeMap::new(),
            refreshes: Vec::new(),
            expected_refresh: None,
            logged_out: false,
            tokens_minted: 0,
            completed: 0,
            failed: 0,
        }
    }

    /// The session under test.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Refreshes started so far.
    pub fn refreshes_started(&self) -> usize {
        self.refreshes.len()
    }

    /// Requests that got a final, non-401 response.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Requests that failed (rejected, failed waiters, failed verdicts).
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Requests on the wire.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waiters not yet resolved.
    pub fn open_waiters(&self) -> usize {
        self.open.len()
    }

    /// Applies one step and checks every invariant.
    pub fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        match *op {
            Op::Begin { count } => {
                for _ in 0..count.min(Self::MAX_BEGIN) {
                    self.begin()?;
                }
                Ok(())
            }
            Op::BeginForeign => {
                let a = self.session.begin_request(self.now, &self.foreign.clone());
                ensure!(
                    matches!(a, Admission::Anonymous),
                    "origin-allow-list",
                    "a foreign origin was admitted: {a:?}"
                );
                self.drain()
            }
            Op::Respond { pick, status } => {
                if self.in_flight.is_empty() {
                    return Ok(());
                }
                let attempt = self
                    .in_flight
                    .swap_remove(usize::from(pick) % self.in_flight.len());
                let status = match status {
                    1 => StatusCode::UNAUTHORIZED,
                    2 => StatusCode::FORBIDDEN,
                    _ => StatusCode::OK,
                };
                self.respond(attempt, status)
            }
            Op::RespondAll { unauthorized } => {
                let status = if unauthorized {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                for attempt in std::mem::take(&mut self.in_flight) {
                    self.respond(attempt, status)?;
                }
                Ok(())
            }
            Op::RefreshOk {
                stale,
                lifetime_secs,
                rotate,
            } => {
                self.tokens_minted += 1;
                let n = self.tokens_minted;
                let mut set = TokenSet::new(token(&format!("access-r{n}")));
                if let Some(s) = lifetime_secs {
                    set = set.with_expires_in(Duration::from_secs(u64::from(s)));
                }
                if rotate {
                    set = set.with_refresh_token(refresh(&format!("refresh-r{n}")));
                }
                self.refresh_outcome(stale, RefreshOutcome::Success(set))
            }
            Op::RefreshTransient {
                stale,
                retry_after_ms,
            } => {
                let mut e = RefreshError::transient(RefreshErrorKind::Status { status: 503 });
                if let Some(ms) = retry_after_ms {
                    e = e.with_retry_after(Duration::from_millis(u64::from(ms)));
                }
                self.refresh_outcome(stale, RefreshOutcome::Failed(e))
            }
            Op::RefreshPermanent { stale } => {
                let e = RefreshError::permanent(RefreshErrorKind::OAuth {
                    code: "invalid_grant".into(),
                });
                self.refresh_outcome(stale, RefreshOutcome::Failed(e))
            }
            Op::Cancel { pick } => {
                if self.open.is_empty() {
                    return Ok(());
                }
                let nth = usize::from(pick) % self.open.len();
                let Some(&w) = self.open.keys().nth(nth) else {
                    return Ok(());
                };
                self.open.remove(&w);
                self.session.cancel(w);
                self.drain()?;
                self.check_waiting()
            }
            Op::Advance { millis } => {
                self.advance(Duration::from_millis(u64::from(millis)));
                self.timeout()
            }
            Op::AdvanceToDeadline => {
                if let Some(at) = self.session.poll_timeout() {
                    self.advance(at.saturating_duration_since(self.now));
                }
                self.timeout()
            }
            Op::Logout => {
                self.session.logout(self.now);
                self.drain()?;
                ensure!(
                    self.session.phase() == Phase::LoggedOut && self.logged_out,
                    "logout",
                    "logout left phase {:?}",
                    self.session.phase()
                );
                Ok(())
            }
            Op::Invalidate { stale } => self.invalidate(stale),
            Op::Login {
                lifetime_secs,
                refresh_token,
            } => {
                self.tokens_minted += 1;
                let n = self.tokens_minted;
                let mut set = TokenSet::new(token(&format!("access-l{n}")));
                if let Some(s) = lifetime_secs {
                    set = set.with_expires_in(Duration::from_secs(u64::from(s)));
                }
                self.expected_refresh = None;
                if refresh_token {
                    let rt = format!("refresh-l{n}");
                    set = set.with_refresh_token(refresh(&rt));
                    self.expected_refresh = Some(rt);
                }
                self.logged_out = false;
                let before = self.session.generation();
                self.session.login(self.now, set);
                ensure!(
                    self.session.generation() > before,
                    "generation",
                    "login did not advance the generation"
                );
                self.drain()
            }
        }
    }

    /// Checks the end state: after all deadlines pass, no waiter is left unresolved.
    pub fn finish(&mut self) -> Result<(), Violation> {
        // Every open waiter has a deadline, so jumping past them all must resolve them.
        for _ in 0..64 {
            if self.open.is_empty() {
                return Ok(());
            }
            self.apply(&Op::AdvanceToDeadline)?;
        }
        violation(
            "waiter-resolved",
            format!("{} waiters never resolved", self.open.len()),
        )
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
    }

    fn begin(&mut self) -> Result<(), Violation> {
        let idle = self.refresh_idle();
        let before = self.refreshes.len();
        let a = self.session.begin_request(self.now, &self.api.clone());
        match a {
            Admission::Send(attempt) => {
                self.check_issued(&attempt, "admission")?;
                ensure!(
                    !attempt.is_replay(),
                    "replay-once",
                    "a new request was marked as a replay"
                );
                self.in_flight.push(attempt);
            }
            Admission::Wait(w) => self.open_waiter(w)?,
            Admission::Reject(_) => self.failed += 1,
            Admission::Anonymous => return violation("origin-allow-list", "API origin refused"),
        }
        self.drain()?;
        self.check_single_flight(idle, before, "begin_request")
    }

    /// A current report is a 401 heard outside HTTP: at most one refresh, as ever. A
    /// stale one (an older generation) must change nothing at all.
    fn invalidate(&mut self, stale: bool) -> Result<(), Violation> {
        let current = self.session.generation();
        let idle = self.refresh_idle();
        let before = self.refreshes.len();
        if stale {
            let Some(older) = current.0.checked_sub(1) else {
                return Ok(());
            };
            let seen = (self.session.phase(), self.session.poll_timeout());
            self.session.invalidate(self.now, Generation(older));
            let commands = self.drain_commands();
            ensure!(
                commands.is_empty() && seen == (self.session.phase(), self.session.poll_timeout()),
                "stale-401",
                "a report about an older generation changed the session: {commands:?}"
            );
            return Ok(());
        }
        self.session.invalidate(self.now, current);
        self.drain()?;
        ensure!(
            self.session.generation() == current,
            "generation",
            "invalidate changed the generation by itself"
        );
        self.check_single_flight(idle, before, "invalidate")
    }

    fn respond(&mut self, attempt: Attempt, status: StatusCode) -> Result<(), Violation> {
        let idle = self.refresh_idle();
        let before = self.refreshes.len();
        let stale = attempt.generation() < self.session.generation();
        let replay_current = attempt.is_replay() && !stale && !self.logged_out;
        // A refresh that a stale 401 may start anyway: the session needed one for its own
        // reasons (attempts exhausted, the token past its leeway, the stale window).
        let refresh_due = self.session.phase() == Phase::Expired
            || self.session.usable_until().is_some_and(|at| at <= self.now);
        let mut headers = HeaderMap::new();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        let verdict = self
            .session
            .handle_response(self.now, &attempt, status, &headers, true);
        if status != StatusCode::UNAUTHORIZED {
            ensure!(
                matches!(verdict, Verdict::Done),
                "verdict",
                "status {status} gave {verdict:?}"
            );
        }
        if attempt.is_replay() && status == StatusCode::UNAUTHORIZED {
            // Rule 3: a replay refused with the current token fails; one refused with an
            // older token is tried again with the newer one, never failed Unauthorized.
            let unauthorized = matches!(verdict, Verdict::Fail(Error::Unauthorized));
            ensure!(
                unauthorized == replay_current,
                "replay-once",
                "a replay ({:?}, session at {:?}) that got 401 was given {verdict:?}",
                attempt.generation(),
                self.session.generation()
            );
        }
        match verdict {
            Verdict::Done => self.completed += 1,
            Verdict::Replay(a) => {
                self.check_issued(&a, "replay")?;
                ensure!(
                    attempt.generation() < a.generation(),
                    "stale-401",
                    "replayed with the same generation {:?}",
                    a.generation()
                );
                self.in_flight.push(a);
            }
            Verdict::Wait(w) => self.open_waiter(w)?,
            Verdict::Fail(_) => self.failed += 1,
        }
        self.drain()?;
        if stale && !attempt.is_replay() && status == StatusCode::UNAUTHORIZED {
            let started = self.refreshes.len() > before;
            let background = self.session.phase() == Phase::ValidRefreshing;
            ensure!(
                !started || refresh_due || background,
                "stale-401",
                "a 401 for an older token ({:?}, session at {:?}) started a refresh",
                attempt.generation(),
                self.session.generation()
            );
        }
        self.check_single_flight(idle, before, "handle_response")
    }

    fn refresh_outcome(&mut self, stale: u8, outcome: RefreshOutcome) -> Result<(), Violation> {
        if self.refreshes.is_empty() {
            return Ok(());
        }
        let back = usize::from(stale) % self.refreshes.len();
        let id = self.refreshes[self.refreshes.len() - 1 - back];
        let live = self.session.refresh_in_flight() == Some(id);
        let before = (self.session.phase(), self.session.generation());
        let success = matches!(outcome, RefreshOutcome::Success(_));
        let rotated = match &outcome {
            RefreshOutcome::Success(set) => set.refresh_token().map(|r| r.secret().to_owned()),
            RefreshOutcome::Failed(_) => None,
        };
        self.session.handle_refresh(self.now, id, outcome);
        let commands = self.drain_commands();
        if !live {
            ensure!(
                commands.is_empty() && before == (self.session.phase(), self.session.generation()),
                "late-outcome-ignored",
                "an outcome for {id:?}, not in flight, changed the session: {commands:?}"
            );
            return Ok(());
        }
        if success {
            if rotated.is_some() {
                self.expected_refresh = rotated;
            }
            let persists: Vec<usize> = positions(&commands, |c| written_tokens(c).is_some());
            let first_resume = commands
                .iter()
                .position(|c| matches!(c, Command::Resume { .. }));
            ensure!(
                persists.len() == 1 && first_resume.is_none_or(|r| persists[0] < r),
                "persist-before-resume",
                "a successful refresh must persist once before resuming: {commands:?}"
            );
            if let Some(kept) = commands.get(persists[0]).and_then(written_tokens) {
                ensure!(
                    kept == self.expected_refresh,
                    "rotation",
                    "persisted refresh token {kept:?}, expected {:?}",
                    self.expected_refresh
                );
            }
        }
        self.observe(commands)
    }

    /// `handle_timeout`, then the commands it produced. Store answers are inputs too and
    /// may set a deadline that is already due (a zero refresh timeout): a driver fires
    /// again, as here, and the loop must settle within a few rounds.
    fn timeout(&mut self) -> Result<(), Violation> {
        for _ in 0..16 {
            self.session.handle_timeout(self.now);
            let next = self.session.poll_timeout();
            ensure!(
                next.is_none_or(|at| at > self.now),
                "timeout-progress",
                "after handle_timeout(t), poll_timeout() is {:?} (not after t)",
                next.map(|at| at.saturating_duration_since(self.now))
            );
            self.drain()?;
            if self.session.poll_timeout().is_none_or(|at| at > self.now) {
                return Ok(());
            }
        }
        violation(
            "timeout-progress",
            "store answers kept a deadline due after 16 rounds of handle_timeout",
        )
    }

    /// No refresh in flight and none scheduled: a new one may start.
    fn refresh_idle(&self) -> bool {
        self.session.refresh_in_flight().is_none() && self.session.phase() != Phase::Backoff
    }

    fn check_single_flight(&self, idle: bool, before: usize, input: &str) -> Result<(), Violation> {
        let started = self.refreshes.len() - before;
        ensure!(
            started == 0 || (started == 1 && idle),
            "single-flight",
            "{input} started {started} refresh(es) while another was in flight or scheduled"
        );
        Ok(())
    }

    fn check_issued(&self, attempt: &Attempt, what: &str) -> Result<(), Violation> {
        ensure!(
            !self.logged_out,
            "nothing-after-logout",
            "{what} issued a credential while logged out"
        );
        ensure!(
            attempt.generation() == self.session.generation(),
            "current-generation",
            "{what} issued {:?} but the session is at {:?}",
            attempt.generation(),
            self.session.generation()
        );
        Ok(())
    }

    fn open_waiter(&mut self, w: WaiterId) -> Result<(), Violation> {
        ensure!(
            self.open.insert(w, self.now).is_none(),
            "waiter-resolved",
            "waiter {w:?} issued twice"
        );
        Ok(())
    }

    /// Every command the session has, answering store operations at once (so the
    /// commands their answers produce follow in order).
    fn drain_commands(&mut self) -> Vec<Command> {
        let mut all = Vec::new();
        while let Some(c) = self.session.poll_command() {
            if let Command::Store { id, op } = &c {
                let outcome = answer(&self.store, op, self.now, self.wall);
                self.session.handle_store(self.now, self.wall, *id, outcome);
            }
            all.push(c);
        }
        all
    }

    fn drain(&mut self) -> Result<(), Violation> {
        let commands = self.drain_commands();
        self.observe(commands)
    }

    fn observe(&mut self, commands: Vec<Command>) -> Result<(), Violation> {
        for c in commands {
            match c {
                Command::StartRefresh { id, .. } => {
                    ensure!(
                        !self.logged_out,
                        "nothing-after-logout",
                        "refresh {id:?} started while logged out"
                    );
                    ensure!(
                        self.refreshes.last().is_none_or(|&last| last < id),
                        "refresh-ids-grow",
                        "refresh id {id:?} reused"
                    );
                    self.refreshes.push(id);
                }
                Command::Resume { waiter, attempt } => {
                    ensure!(
                        self.open.remove(&waiter).is_some(),
                        "waiter-resolved",
                        "{waiter:?} resumed but it is not open (resolved twice or cancelled)"
                    );
                    self.check_issued(&attempt, "resume")?;
                    self.in_flight.push(attempt);
                }
                Command::Fail { waiter, .. } => {
                    ensure!(
                        self.open.remove(&waiter).is_some(),
                        "waiter-resolved",
                        "{waiter:?} failed but it is not open (resolved twice or cancelled)"
                    );
                    self.failed += 1;
                }
                Command::Event(Event::LoggedOut { .. }) => {
                    self.logged_out = true;
                    self.expected_refresh = None;
                }
                _ => {}
            }
        }
        ensure!(
            self.session.refresh_in_flight() == self.refreshes.last().copied()
                || self.session.refresh_in_flight().is_none(),
            "single-flight",
            "the session awaits {:?} but the last refresh started was {:?}",
            self.session.refresh_in_flight(),
            self.refreshes.last()
        );
        self.check_waiting()
    }

    /// Every open waiter is known to the session and has a deadline no later than its
    /// own: nothing waits forever.
    fn check_waiting(&self) -> Result<(), Violation> {
        ensure!(
            self.session.waiting() == self.open.len(),
            "waiter-resolved",
            "the session holds {} waiters, the caller {}",
            self.session.waiting(),
            self.open.len()
        );
        if let Some(&oldest) = self.open.values().next() {
            let limit = oldest + self.session.config().waiter_timeout;
            ensure!(
                self.session.poll_timeout().is_some_and(|at| at <= limit),
                "no-waiting-forever",
                "waiters are open but the next deadline is {:?}",
                self.session.poll_timeout()
            );
        }
        Ok(())
    }
}

/// Carries out a store command on `store` at once, as a driver does (`now` and `wall` are
/// the same moment on both clocks).
pub fn answer(
    store: &dyn TokenStore,
    op: &StoreCommand,
    now: Instant,
    wall: SystemTime,
) -> StoreOutcome {
    match op {
        StoreCommand::Lease { lineage, ttl } => store.lease(*lineage, *ttl).map(StoreReply::Lease),
        StoreCommand::Read => store.read().map(StoreReply::Read),
        StoreCommand::Write { expect, record } => store
            .compare_and_swap(*expect, &(**record).clone().saved(now, wall))
            .map(StoreReply::Swap),
        StoreCommand::Release { lineage, lease } => store
            .release(*lineage, *lease)
            .map(|()| StoreReply::Released),
    }
}

/// The refresh token a command writes to the store, if it writes tokens.
fn written_tokens(c: &Command) -> Option<Option<String>> {
    match c {
        Command::Store {
            op: StoreCommand::Write { record, .. },
            ..
        } => match &record.entry {
            Entry::Tokens(t) => Some(t.refresh_token().map(|r| r.secret().to_owned())),
            Entry::LoggedOut(_) => None,
        },
        _ => None,
    }
}

fn positions(commands: &[Command], f: impl Fn(&Command) -> bool) -> Vec<usize> {
    commands
        .iter()
        .enumerate()
        .filter(|(_, c)| f(c))
        .map(|(i, _)| i)
        .collect()
}

fn token(text: &str) -> AccessToken {
    AccessToken::new(text).expect("harness tokens are visible ASCII")
}

fn refresh(text: &str) -> RefreshToken {
    RefreshToken::new(text).expect("harness tokens are visible ASCII")
}
