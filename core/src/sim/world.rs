//! The world the sessions live in: the clock, the store, the server, the processes and
//! the refresh calls on the wire. Every input to a session goes through here, and every
//! command it answers is checked as it comes out.

use super::model::{self, Seen};
use super::node::{Node, Parked, Saving};
use super::rng::Rng;
use super::server::Server;
use super::store::{describe, Broken, SimStore};
use super::Report;
use crate::command::{
    Admission, Command, Event, RefreshOutcome, StoreCommand, StoreReply, Verdict,
};
use crate::config::Config;
use crate::credential::Attempt;
use crate::error::{Error, LogoutReason, RefreshError, RefreshErrorKind};
use crate::ids::{Generation, RefreshId, StoreOpId};
use crate::machine::Session;
use crate::origin::Origin;
use crate::record::{Entry, Lease, Lineage, Record, Swap};
use crate::state::Phase;
use crate::token::{RefreshToken, TokenSet};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// A broken rule and what was seen.
pub(crate) type Fault = (&'static str, String);
pub(crate) type Checked<T = ()> = Result<T, Fault>;

macro_rules! ensure {
    ($cond:expr, $rule:literal, $($fmt:tt)+) => {
        if !$cond {
            return Err(($rule, format!($($fmt)+)));
        }
    };
}

const MS: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub(crate) enum CallState {
    /// Sent; the server has not seen it yet.
    Pending,
    /// The server answered (and rotated, if it did); the answer is on its way.
    Answered(Result<TokenSet, RefreshError>, Option<String>),
    /// The server answered, the answer was lost: the driver reports a timeout at the
    /// deadline.
    Lost,
    Done,
}

#[derive(Debug)]
pub(crate) struct Call {
    node: usize,
    incarnation: u32,
    id: RefreshId,
    token: String,
    started: Instant,
    deadline: Instant,
    /// Started without a valid lease (the store failed): single-flight is per process.
    unfenced: bool,
    /// Its session logged in, out, or crashed since: its outcome is not awaited.
    abandoned: bool,
    state: CallState,
}

/// Schedule knobs drawn from the seed.
#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    pub(crate) sessions: usize,
    pub(crate) store_failures: bool,
    pub(crate) fail_percent: u64,
    pub(crate) immediate_percent: u64,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) revoke_on_rotation: bool,
    pub(crate) keep_warm: bool,
    /// The server takes every refresh call the moment it starts: every late answer comes
    /// after the server rotated.
    pub(crate) rotate_at_once: bool,
}

pub(crate) struct World {
    pub(crate) rng: Rng,
    t0: Instant,
    now: Instant,
    wall0: SystemTime,
    config: Config,
    pub(crate) knobs: Knobs,
    store: SimStore,
    server: Server,
    nodes: Vec<Node>,
    calls: Vec<Call>,
    /// Each rotated refresh token, and whether a reuse of it is excused (its successor
    /// may be lost: an answer lost or abandoned, a crash, a failed or refused save).
    rotations: BTreeMap<String, bool>,
    lineage_family: BTreeMap<Lineage, usize>,
    seeds: u64,
    api: Uri,
    pub(crate) report: Report,
    /// Every command and answer, for replaying one failing seed.
    pub(crate) verbose: Option<Vec<String>>,
}

/// The session configuration of every process, with short durations so that a schedule
/// reaches every phase; the lease (deadline plus margin) outlives any delayed write.
fn session_config(keep_warm: bool) -> Config {
    let mut c = Config::new(Origin::parse("https://api.test").expect("valid origin"));
    c.leeway = Duration::from_secs(5);
    c.refresh_window = Duration::from_secs(20);
    c.refresh_timeout = Duration::from_secs(10);
    c.refresh_deadline = Duration::from_secs(40);
    c.waiter_timeout = Duration::from_secs(30);
    c.backoff.base = Duration::from_millis(100);
    c.backoff.cap = Duration::from_secs(2);
    c.backoff.max_attempts = 4;
    c.keep_warm = keep_warm;
    c
}

fn bearer(attempt: &Attempt) -> String {
    let value = attempt.header_value().to_str().unwrap_or_default();
    value.strip_prefix("Bearer ").unwrap_or(value).to_owned()
}

fn timeout() -> RefreshOutcome {
    RefreshOutcome::Failed(RefreshError::transient(RefreshErrorKind::Timeout))
}

fn writes_tokens(op: &StoreCommand) -> Option<String> {
    match op {
        StoreCommand::Write { record, .. } => match &record.entry {
            Entry::Tokens(t) => Some(t.access_token().secret().to_owned()),
            Entry::LoggedOut(_) => None,
        },
        _ => None,
    }
}

impl World {
    pub(crate) fn new(seed: u64, knobs: Knobs, origin: Instant) -> Self {
        let config = session_config(knobs.keep_warm);
        let server = Server::new(knobs.lifetime, knobs.grace, knobs.revoke_on_rotation);
        let mut w = Self {
            rng: Rng::new(seed ^ 0x5157_0000_0000_0001),
            t0: origin,
            now: origin,
            wall0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            config,
            knobs,
            store: SimStore::default(),
            server,
            nodes: Vec::new(),
            calls: Vec::new(),
            rotations: BTreeMap::new(),
            lineage_family: BTreeMap::new(),
            seeds: seed,
            api: Uri::from_static("https://api.test/items/1"),
            report: Report::default(),
            verbose: None,
        };
        for _ in 0..w.knobs.sessions {
            let session = w.fresh_session();
            w.nodes.push(Node::new(session, 0));
        }
        w.report.sessions = w.knobs.sessions;
        w
    }

    fn fresh_session(&mut self) -> Session {
        self.seeds = self
            .seeds
            .wrapping_mul(0x2545_F491_4F6C_DD1D)
            .wrapping_add(1);
        let mut c = self.config.clone();
        c.seed = self.seeds;
        Session::new(c)
    }

    fn wall(&self) -> SystemTime {
        self.wall0 + self.now.saturating_duration_since(self.t0)
    }

    pub(crate) fn sessions(&self) -> usize {
        self.nodes.len()
    }

    /// Milliseconds since the start, for traces.
    pub(crate) fn at_ms(&self) -> u128 {
        self.now.saturating_duration_since(self.t0).as_millis()
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(v) = &mut self.verbose {
            let at = self.now.saturating_duration_since(self.t0).as_millis();
            v.push(format!("{at}ms    {}", line()));
        }
    }

    // ---- what comes out of a session -------------------------------------------------

    /// Drains node `n`'s commands, carrying each out and checking it.
    fn drain(&mut self, n: usize) -> Checked<Seen> {
        let mut seen = Seen::default();
        while let Some(c) = self.nodes[n].session.poll_command() {
            self.note(|| format!("node {n} -> {c:?}"));
            match c {
                Command::StartRefresh {
                    id,
                    refresh_token,
                    deadline,
                } => {
                    self.started(n, id, refresh_token, deadline)?;
                    seen.started = true;
                }
                Command::Resume { waiter, attempt } => {
                    ensure!(
                        self.nodes[n].open.remove(&waiter),
                        "waiter-resolved",
                        "node {n}: {waiter:?} resumed but it is not open"
                    );
                    self.check_sent(n, &attempt, "a resumed waiter")?;
                    self.nodes[n].wire.push(attempt);
                }
                Command::Fail { waiter, .. } => {
                    ensure!(
                        self.nodes[n].open.remove(&waiter),
                        "waiter-resolved",
                        "node {n}: {waiter:?} failed but it is not open"
                    );
                    self.report.requests_failed += 1;
                }
                Command::Store { id, op } => {
                    let node = &mut self.nodes[n];
                    if let StoreCommand::Release { lease, .. } = &op {
                        if node.lease == Some(*lease) {
                            node.lease = None;
                        }
                    }
                    ensure!(
                        node.parked.is_none(),
                        "store-one-outstanding",
                        "node {n} issued {op:?} while another store command was outstanding"
                    );
                    if self.rng.chance(self.knobs.immediate_percent) {
                        let more = self.answer_store(n, id, op, false)?;
                        seen.merge(more);
                    } else {
                        let due = self.now + MS * self.rng.range(1, 400) as u32;
                        self.nodes[n].parked = Some(Parked {
                            id,
                            op,
                            due,
                            stale: false,
                        });
                    }
                }
                Command::Event(e) => match e {
                    Event::Refreshed { generation, .. } => {
                        let node = &mut self.nodes[n];
                        let got_at = node.saving.as_ref().map_or(self.now, |s| s.delivered);
                        node.fresh = Some((generation, got_at));
                        seen.refreshed = true;
                        self.report.installed += 1;
                    }
                    Event::Adopted { .. } => {
                        self.nodes[n].fresh = None;
                        seen.adopted = true;
                        self.report.adoptions += 1;
                    }
                    Event::LoggedOut { reason } => {
                        self.logged_out(n, &reason)?;
                        seen.logged_out = Some(reason);
                    }
                    Event::RefreshOverdue { .. } => self.report.overdue += 1,
                    _ => {}
                },
            }
        }
        let node = &self.nodes[n];
        ensure!(
            node.session.waiting() == node.open.len(),
            "waiter-resolved",
            "node {n}: the session holds {} waiters, the caller {}",
            node.session.waiting(),
            node.open.len()
        );
        Ok(seen)
    }

    fn started(
        &mut self,
        n: usize,
        id: RefreshId,
        refresh_token: Option<RefreshToken>,
        deadline: Instant,
    ) -> Checked {
        let now = self.now;
        let node = &self.nodes[n];
        ensure!(
            !node.logged_out,
            "nothing-after-logout",
            "node {n} started refresh {id:?} while logged out"
        );
        let Some(token) = refresh_token.map(|t| t.secret().to_owned()) else {
            return Err((
                "foreign-credential",
                format!("node {n}: a refresh without a token"),
            ));
        };
        let family = self.server.family_of_refresh(&token);
        let own = node
            .lineage
            .and_then(|l| self.lineage_family.get(&l).copied());
        ensure!(
            family.is_some() && family == own,
            "foreign-credential",
            "node {n} of family {own:?} presented a refresh token of family {family:?}"
        );
        let held = self
            .store
            .lease(now)
            .is_some_and(|h| h.node == n && Some(h.id) == node.lease);
        let fenced = held && !node.unfenced;
        ensure!(
            fenced || node.unfenced,
            "single-flight",
            "node {n} started refresh {id:?} without holding the lease, with the store up"
        );
        if fenced {
            if let Some(other) = self.calls.iter().find(|c| {
                c.token == token
                    && matches!(c.state, CallState::Pending)
                    && !c.unfenced
                    && !c.abandoned
            }) {
                return Err((
                    "single-flight",
                    format!(
                        "node {n} started refresh {id:?} presenting the refresh token that \
                         node {}'s {:?} presented, still in flight",
                        other.node, other.id
                    ),
                ));
            }
        }
        if let Some(f) = family.filter(|&f| self.server.refusing(f, now)) {
            let since = self.server.families[f].refusing_since;
            let node = &mut self.nodes[n];
            node.refused_calls.retain(|&at| at >= since);
            node.refused_calls.push(now);
            let calls = node.refused_calls.len() as u64;
            let allowed = self.hold_back_budget(now.saturating_duration_since(since));
            self.report.refused_burst = self.report.refused_burst.max(calls as usize);
            ensure!(
                calls <= allowed,
                "hold-back",
                "node {n} started {calls} refreshes in the {:?} since the API began refusing \
                 every token of family {f} (allowed: {allowed})",
                now.saturating_duration_since(since)
            );
        }
        self.report.refreshes += 1;
        self.calls.push(Call {
            node: n,
            incarnation: self.nodes[n].incarnation,
            id,
            token,
            started: now,
            deadline,
            unfenced: !fenced,
            abandoned: false,
            state: CallState::Pending,
        });
        if self.knobs.rotate_at_once {
            self.process(self.calls.len() - 1)?;
        }
        Ok(())
    }

    /// Refreshes one process may start within `t` of the API starting to refuse every
    /// token: two at once, then waits that double from half the backoff base up to half
    /// the cap, with slack for a token adopted or logged in meanwhile.
    fn hold_back_budget(&self, t: Duration) -> u64 {
        let b = &self.config.backoff;
        let ramp = (1.0 + 2.0 * t.as_secs_f64() / b.base.as_secs_f64())
            .log2()
            .ceil();
        let capped = (2.0 * t.as_secs_f64() / b.cap.as_secs_f64()).ceil();
        4 + ramp as u64 + capped as u64
    }

    /// Rules 4 and 8: only credentials of the process's own login, never after a logout.
    fn check_sent(&self, n: usize, attempt: &Attempt, what: &str) -> Checked {
        let node = &self.nodes[n];
        ensure!(
            !node.logged_out,
            "nothing-after-logout",
            "node {n}: {what} carried a credential after the session logged out"
        );
        let family = self.server.family_of_access(&bearer(attempt));
        let own = node
            .lineage
            .and_then(|l| self.lineage_family.get(&l).copied());
        ensure!(
            family.is_some() && family == own,
            "foreign-credential",
            "node {n} of family {own:?}: {what} carried an access token of family {family:?}"
        );
        Ok(())
    }

    /// A logout of any cause: it must have one (a store that is away logs nobody out).
    fn logged_out(&mut self, n: usize, reason: &LogoutReason) -> Checked {
        self.report.logouts += 1;
        self.abandon(n);
        let node = &mut self.nodes[n];
        node.logged_out = true;
        let seen = node.last_seen.as_ref();
        let explained = match reason {
            LogoutReason::Requested => node.logging_out,
            LogoutReason::Elsewhere(_) => seen.is_some_and(|r| {
                Some(r.lineage) == node.lineage && matches!(r.entry, Entry::LoggedOut(_))
            }),
            LogoutReason::Superseded => seen.is_some_and(|r| Some(r.lineage) != node.lineage),
            LogoutReason::RefreshRejected(_) => node.refused,
            _ => false,
        };
        ensure!(
            explained,
            "logout-cause",
            "node {n} logged out ({reason}) without a cause; it last saw {:?}",
            seen.map(describe)
        );
        Ok(())
    }

    /// Node `n`'s calls are no longer awaited and its parked command belongs to an
    /// abandoned episode.
    fn abandon(&mut self, n: usize) {
        let incarnation = self.nodes[n].incarnation;
        for c in &mut self.calls {
            if c.node == n && c.incarnation == incarnation && !matches!(c.state, CallState::Done) {
                c.abandoned = true;
                if let CallState::Answered(_, Some(old)) = &c.state {
                    self.rotations.insert(old.clone(), true);
                }
            }
        }
        let node = &mut self.nodes[n];
        if let Some(p) = &mut node.parked {
            p.stale = true;
        }
        if let Some(Saving {
            rotated: Some(old), ..
        }) = node.saving.take()
        {
            self.rotations.insert(old, true);
        }
    }

    fn unfence(&mut self, n: usize) {
        let incarnation = self.nodes[n].incarnation;
        self.nodes[n].unfenced = true;
        for c in &mut self.calls {
            if c.node == n && c.incarnation == incarnation && !matches!(c.state, CallState::Done) {
                c.unfenced = true;
                if let CallState::Answered(_, Some(old)) = &c.state {
                    self.rotations.insert(old.clone(), true);
                }
            }
        }
    }

    fn excuse(&mut self, rotated: Option<String>) {
        if let Some(old) = rotated {
            self.rotations.insert(old, true);
        }
    }

    // ---- the store ---------------------------------------------------------------------

    fn answer_store(
        &mut self,
        n: usize,
        id: StoreOpId,
        op: StoreCommand,
        stale: bool,
    ) -> Checked<Seen> {
        let (now, wall) = (self.now, self.wall());
        let node = &self.nodes[n];
        let snap = node.session.snapshot();
        let episode = matches!(snap.phase, Phase::Refreshing | Phase::ValidRefreshing);
        let read = matches!(op, StoreCommand::Read) && !stale && episode;
        let leased = self
            .store
            .lease(now)
            .is_some_and(|h| h.node == n && Some(h.id) == node.lease);
        let saving =
            writes_tokens(&op).is_some_and(|a| node.saving.as_ref().is_some_and(|s| s.access == a));
        let outcome = if self.knobs.store_failures && self.rng.chance(self.knobs.fail_percent) {
            self.report.store_failures += 1;
            Err(SimStore::failure())
        } else {
            let (outcome, broken) = self.store.apply(n, &op, now, wall);
            if let Some(Broken(rule, detail)) = broken {
                return Err((rule, detail));
            }
            outcome
        };
        self.note(|| format!("node {n} <- {outcome:?}"));
        let mut record = None;
        if outcome.is_err() {
            // Single-flight holds within this process only until the store answers again:
            // its calls may race with other processes' calls.
            self.unfence(n);
        }
        let node = &mut self.nodes[n];
        match &outcome {
            Err(_) => {}
            Ok(StoreReply::Lease(Lease::Granted(lease))) => {
                node.lease = Some(*lease);
                node.unfenced = false;
            }
            Ok(StoreReply::Read(r)) => {
                node.last_seen = r.clone();
                record = Some(r.clone());
            }
            Ok(StoreReply::Swap(Swap::Conflict(Some(r)))) => node.last_seen = Some(r.clone()),
            _ => {}
        }
        let written = matches!(outcome, Err(_) | Ok(StoreReply::Swap(Swap::Written)));
        if saving && !written {
            // Another writer won: this rotation's tokens are not the store's.
            let rotated = node.saving.take().and_then(|s| s.rotated);
            self.excuse(rotated);
        } else if saving && outcome.is_err() {
            // The tokens live on in this process only.
            let rotated = node.saving.as_ref().and_then(|s| s.rotated.clone());
            self.excuse(rotated);
        }
        let prediction = record
            .as_ref()
            .filter(|_| read && leased)
            .map(|r| model::predict(r.as_ref(), snap.lineage, snap.version, wall));
        self.nodes[n].session.handle_store(now, wall, id, outcome);
        let seen = self.drain(n)?;
        if let Some(Some(r)) = record.as_ref().filter(|_| read) {
            if Some(r.lineage) == snap.lineage && matches!(r.entry, Entry::LoggedOut(_)) {
                ensure!(
                    self.nodes[n].session.phase() == Phase::LoggedOut,
                    "tombstone-seen",
                    "node {n} read {} and is {:?}",
                    describe(r),
                    self.nodes[n].session.phase()
                );
            }
        }
        if let Some(next) = prediction {
            self.report.predictions += 1;
            ensure!(
                seen.matches(next),
                "model-episode",
                "node {n} (at v{:?}) read {:?} under the lease: the model says {next:?}, the \
                 session did {seen:?}",
                snap.version,
                record.flatten().as_ref().map(describe)
            );
        }
        if saving && written {
            self.nodes[n].saving = None;
            ensure!(
                seen.refreshed,
                "late-success",
                "node {n}: the write of its refreshed tokens landed, but they were not installed"
            );
        }
        Ok(seen)
    }

    fn deliver_parked(&mut self, n: usize) -> Checked {
        if let Some(p) = self.nodes[n].parked.take() {
            self.answer_store(n, p.id, p.op, p.stale)?;
        }
        Ok(())
    }

    // ---- the server ----------------------------------------------------------------------

    fn process(&mut self, c: usize) -> Checked {
        let now = self.now;
        let answer = self.server.refresh(&self.calls[c].token, now);
        let call = &self.calls[c];
        if answer.reuse {
            self.report.reuse_detections += 1;
            let excused = call.unfenced || self.rotations.get(&call.token).copied() == Some(true);
            ensure!(
                excused,
                "reuse-detection",
                "node {}'s {:?} presented a refresh token rotated by a call whose answer was \
                 not lost: the server revoked the login",
                call.node,
                call.id
            );
        }
        let excused = call.abandoned || call.unfenced;
        self.note(|| format!("server took call #{c}: {answer:?}"));
        let rotated = answer.rotated.map(|(_, old)| old);
        if let Some(old) = &rotated {
            self.report.rotations += 1;
            self.rotations.insert(old.clone(), excused);
        }
        self.calls[c].state = CallState::Answered(answer.outcome, rotated);
        Ok(())
    }

    fn deliver(&mut self, c: usize) -> Checked {
        let CallState::Answered(outcome, rotated) =
            std::mem::replace(&mut self.calls[c].state, CallState::Done)
        else {
            return Ok(());
        };
        let call = &self.calls[c];
        let (n, id) = (call.node, call.id);
        if call.incarnation != self.nodes[n].incarnation {
            return Ok(());
        }
        let in_flight = self.nodes[n].session.refresh_in_flight() == Some(id);
        let late = self.now >= call.started + self.config.refresh_timeout;
        match &outcome {
            Ok(set) => {
                ensure!(
                    in_flight || call.abandoned,
                    "late-success",
                    "node {n}: the success of its refresh {id:?} (late: {late}) came while the \
                     session no longer awaited it"
                );
                if in_flight {
                    self.report.late_installed += u64::from(late);
                    self.nodes[n].saving = Some(Saving {
                        access: set.access_token().secret().to_owned(),
                        rotated,
                        delivered: self.now,
                    });
                } else {
                    self.excuse(rotated);
                }
            }
            Err(e) => {
                if in_flight && e.is_permanent() {
                    self.nodes[n].refused = true;
                }
            }
        }
        let outcome = match outcome {
            Ok(set) => RefreshOutcome::Success(set),
            Err(e) => RefreshOutcome::Failed(e),
        };
        self.nodes[n].session.handle_refresh(self.now, id, outcome);
        self.drain(n)?;
        Ok(())
    }

    /// The driver's deadline for call `c`: it aborts and reports a timeout.
    fn expire_call(&mut self, c: usize) -> Checked {
        let state = std::mem::replace(&mut self.calls[c].state, CallState::Done);
        if let CallState::Answered(_, rotated) = state {
            self.excuse(rotated);
        }
        let (n, id) = (self.calls[c].node, self.calls[c].id);
        if self.calls[c].incarnation == self.nodes[n].incarnation {
            self.nodes[n]
                .session
                .handle_refresh(self.now, id, timeout());
            self.drain(n)?;
        }
        Ok(())
    }

    // ---- actions ---------------------------------------------------------------------------

    pub(crate) fn login(&mut self, n: usize) -> Checked {
        let (family, set) = self.server.login(self.now);
        self.abandon(n);
        let node = &mut self.nodes[n];
        node.logged_out = false;
        node.refused = false;
        node.refused_calls.clear();
        node.fresh = None;
        node.session.login(self.now, set);
        let Some(lineage) = node.session.snapshot().lineage else {
            return Err(("lineage", format!("node {n}: a login made no lineage")));
        };
        node.lineage = Some(lineage);
        self.lineage_family.insert(lineage, family);
        self.report.logins += 1;
        self.drain(n).map(drop)
    }

    pub(crate) fn logout(&mut self, n: usize) -> Checked {
        self.nodes[n].logging_out = true;
        self.nodes[n].session.logout(self.now);
        let r = self.drain(n);
        self.nodes[n].logging_out = false;
        r.map(drop)
    }

    pub(crate) fn begin(&mut self, n: usize, count: u64) -> Checked {
        for _ in 0..count {
            let api = self.api.clone();
            match self.nodes[n].session.begin_request(self.now, &api) {
                Admission::Send(a) => {
                    self.check_sent(n, &a, "a new request")?;
                    self.nodes[n].wire.push(a);
                }
                Admission::Wait(w) => {
                    ensure!(
                        self.nodes[n].open.insert(w),
                        "waiter-resolved",
                        "node {n}: {w:?} issued twice"
                    );
                }
                Admission::Reject(_) => self.report.requests_failed += 1,
                Admission::Anonymous => {
                    return Err(("origin-allow-list", format!("node {n}: the API refused")))
                }
            }
            self.drain(n)?;
        }
        Ok(())
    }

    /// Answers request `k` on node `n`'s wire with what the API says about its token.
    pub(crate) fn respond(&mut self, n: usize, k: usize) -> Checked {
        let attempt = self.nodes[n].wire.swap_remove(k);
        let accepted = self.server.accepts(&bearer(&attempt), self.now);
        let mut headers = HeaderMap::new();
        let status = if accepted {
            StatusCode::OK
        } else {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            StatusCode::UNAUTHORIZED
        };
        let session = &mut self.nodes[n].session;
        let before = session.generation();
        let phase = session.phase();
        let verdict = session.handle_response(self.now, &attempt, status, &headers, true);
        if !accepted && attempt.generation() == before {
            self.refused(n, before, phase)?;
        }
        match verdict {
            Verdict::Done => self.report.requests_ok += u64::from(accepted),
            Verdict::Replay(a) => {
                ensure!(
                    a.generation() > attempt.generation(),
                    "stale-401",
                    "node {n} replayed with the same generation {:?}",
                    a.generation()
                );
                self.check_sent(n, &a, "a replay")?;
                self.nodes[n].wire.push(a);
            }
            Verdict::Wait(w) => {
                ensure!(
                    self.nodes[n].open.insert(w),
                    "waiter-resolved",
                    "node {n}: {w:?} issued twice"
                );
            }
            Verdict::Fail(e) => {
                ensure!(
                    e != Error::Unauthorized || attempt.generation() >= before,
                    "replay-generation",
                    "node {n}: a request sent with {:?} got 401 and failed Unauthorized while \
                     the session holds the newer {before:?}",
                    attempt.generation()
                );
                self.report.requests_failed += 1;
            }
        }
        self.drain(n).map(drop)
    }

    /// The reference for the hold-back: the current token of node `n` (at `generation`)
    /// was refused. Once two or more of its own fresh tokens in a row were refused within
    /// the backoff cap of their arrival, such a 401 starts no refresh until half of
    /// `min(cap, base * 2^(n-2))` has passed since the last one arrived.
    fn refused(&mut self, n: usize, generation: Generation, phase: Phase) -> Checked {
        let (now, b) = (self.now, self.config.backoff.clone());
        let node = &mut self.nodes[n];
        if node.refused_generation != Some(generation) {
            node.refused_generation = Some(generation);
            match node.fresh {
                Some((g, at)) if g == generation && now.saturating_duration_since(at) < b.cap => {
                    node.refused_run += 1;
                }
                _ => node.refused_run = 0,
            }
        }
        let Some((_, got_at)) = node.fresh.filter(|&(g, _)| g == generation) else {
            return Ok(());
        };
        if node.refused_run < 2 {
            return Ok(());
        }
        let bound = b
            .base
            .saturating_mul(1 << (node.refused_run - 2).min(31))
            .min(b.cap);
        let waited = now.saturating_duration_since(got_at);
        let started = matches!(phase, Phase::Valid | Phase::Expired)
            && node.session.phase() == Phase::Refreshing;
        ensure!(
            !started || waited >= bound / 2,
            "hold-back",
            "node {n}: the {} fresh token in a row was refused {waited:?} after it arrived, and \
             a refresh started at once (hold-back: at least {:?})",
            node.refused_run,
            bound / 2
        );
        Ok(())
    }

    /// The process dies: its memory goes, its lease stays until it expires, a store
    /// command or refresh call it had sent may or may not have arrived. Then it starts
    /// again from what the store holds.
    pub(crate) fn crash(&mut self, n: usize) -> Checked {
        self.report.crashes += 1;
        self.restart(n)
    }

    /// A logged-out process starts a new client on what the store holds (another
    /// process's login, say).
    pub(crate) fn reopen(&mut self, n: usize) -> Checked {
        self.report.reopened += 1;
        self.restart(n)
    }

    /// Process `n` starts afresh from what the store holds, whatever it had before.
    pub(crate) fn restart(&mut self, n: usize) -> Checked {
        let (now, wall) = (self.now, self.wall());
        if let Some(p) = self.nodes[n].parked.take() {
            if self.rng.chance(50) {
                if let (_, Some(Broken(rule, detail))) = self.store.apply(n, &p.op, now, wall) {
                    return Err((rule, detail));
                }
            }
        }
        let incarnation = self.nodes[n].incarnation;
        for c in 0..self.calls.len() {
            let call = &self.calls[c];
            if call.node != n || call.incarnation != incarnation {
                continue;
            }
            self.calls[c].abandoned = true;
            if matches!(self.calls[c].state, CallState::Pending) && self.rng.chance(50) {
                self.process(c)?;
            }
            if let CallState::Answered(_, rotated) =
                std::mem::replace(&mut self.calls[c].state, CallState::Done)
            {
                self.excuse(rotated);
            }
            self.calls[c].state = CallState::Done;
        }
        if let Some(s) = self.nodes[n].saving.take() {
            self.excuse(s.rotated);
        }
        let session = self.fresh_session();
        let mut node = Node::new(session, incarnation + 1);
        let record: Option<Record> = self.store.record.clone();
        node.lineage = record.as_ref().map(|r| r.lineage);
        node.last_seen = record.clone();
        node.session.restore(now, wall, record);
        self.nodes[n] = node;
        self.drain(n).map(drop)
    }

    pub(crate) fn revoke_access(&mut self, f: usize) {
        self.server.revoke_access(f);
    }

    pub(crate) fn revoke_family(&mut self, f: usize) {
        self.server.revoke_family(f);
    }

    pub(crate) fn refuse(&mut self, f: usize, for_ms: u64) {
        self.server.refuse(f, self.now, MS * for_ms as u32);
    }

    pub(crate) fn families(&self) -> usize {
        self.server.families.len()
    }

    pub(crate) fn refusing(&self) -> bool {
        (0..self.families()).any(|f| self.server.refusing(f, self.now))
    }

    pub(crate) fn wire(&self, n: usize) -> usize {
        self.nodes[n].wire.len()
    }

    pub(crate) fn is_logged_out(&self, n: usize) -> bool {
        self.nodes[n].logged_out
    }

    pub(crate) fn has_parked(&self, n: usize) -> bool {
        self.nodes[n].parked.is_some()
    }

    pub(crate) fn store_step(&mut self, n: usize) -> Checked {
        self.deliver_parked(n)
    }

    /// Calls the server has not seen, and answers not yet delivered.
    pub(crate) fn pending_calls(&self) -> Vec<usize> {
        self.calls_where(|s| matches!(s, CallState::Pending))
    }

    pub(crate) fn answered_calls(&self) -> Vec<usize> {
        self.calls_where(|s| matches!(s, CallState::Answered(..)))
    }

    fn calls_where(&self, f: impl Fn(&CallState) -> bool) -> Vec<usize> {
        (0..self.calls.len())
            .filter(|&c| f(&self.calls[c].state))
            .collect()
    }

    /// The server takes call `c`; its answer comes back at once or later.
    pub(crate) fn server_step(&mut self, c: usize, deliver_now: bool) -> Checked {
        self.process(c)?;
        if deliver_now {
            self.deliver(c)?;
        }
        Ok(())
    }

    pub(crate) fn deliver_step(&mut self, c: usize) -> Checked {
        self.deliver(c)
    }

    /// The answer to call `c` is lost after the server rotated.
    pub(crate) fn lose(&mut self, c: usize) {
        if let CallState::Answered(_, rotated) =
            std::mem::replace(&mut self.calls[c].state, CallState::Lost)
        {
            self.report.lost_answers += 1;
            self.excuse(rotated);
        }
    }

    // ---- time ------------------------------------------------------------------------------

    /// The earliest instant anything is due: a session deadline, a call's deadline, a
    /// parked store command.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let sessions = self.nodes.iter().filter_map(|n| n.session.poll_timeout());
        let calls = self
            .calls
            .iter()
            .filter(|c| !matches!(c.state, CallState::Done))
            .map(|c| c.deadline);
        let parked = self
            .nodes
            .iter()
            .filter_map(|n| n.parked.as_ref().map(|p| p.due));
        sessions.chain(calls).chain(parked).min()
    }

    /// Moves the clock to `target`, firing everything due on the way in time order.
    pub(crate) fn advance_to(&mut self, target: Instant) -> Checked {
        for _ in 0..100_000 {
            let Some(next) = self.next_deadline().filter(|&at| at <= target) else {
                break;
            };
            self.now = self.now.max(next);
            self.fire_due()?;
        }
        self.now = self.now.max(target);
        self.fire_due()
    }

    fn fire_due(&mut self) -> Checked {
        let now = self.now;
        for n in 0..self.nodes.len() {
            if self.nodes[n].parked.as_ref().is_some_and(|p| p.due <= now) {
                self.deliver_parked(n)?;
            }
        }
        for c in 0..self.calls.len() {
            if !matches!(self.calls[c].state, CallState::Done) && self.calls[c].deadline <= now {
                self.expire_call(c)?;
            }
        }
        for n in 0..self.nodes.len() {
            if self.nodes[n]
                .session
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.nodes[n].session.handle_timeout(now);
                self.drain(n)?;
                let next = self.nodes[n].session.poll_timeout();
                ensure!(
                    next.is_none_or(|at| at > now),
                    "timeout-progress",
                    "node {n}: after handle_timeout the next deadline is not later"
                );
            }
        }
        Ok(())
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    // ---- the end ---------------------------------------------------------------------------

    /// Lets every outstanding thing finish, then checks that no waiter is left and that the
    /// store agrees with the server.
    pub(crate) fn finish(&mut self) -> Checked {
        for _ in 0..5_000 {
            for n in 0..self.nodes.len() {
                self.deliver_parked(n)?;
            }
            for c in self.pending_calls() {
                self.server_step(c, true)?;
            }
            for c in self.answered_calls() {
                self.deliver(c)?;
            }
            for n in 0..self.nodes.len() {
                while !self.nodes[n].wire.is_empty() {
                    self.respond(n, 0)?;
                }
            }
            let quiet = self
                .nodes
                .iter()
                .all(|n| n.open.is_empty() && n.parked.is_none())
                && self.pending_calls().is_empty()
                && self.answered_calls().is_empty();
            if quiet {
                break;
            }
            let target = self
                .next_deadline()
                .unwrap_or(self.now + Duration::from_secs(1))
                .max(self.now + MS);
            self.advance_to(target)?;
        }
        for (n, node) in self.nodes.iter().enumerate() {
            ensure!(
                node.open.is_empty(),
                "waiter-resolved",
                "node {n}: {} waiters never resolved after every deadline passed",
                node.open.len()
            );
        }
        self.check_record()
    }

    /// The model's end state: with the store up and nothing lost, the store holds the
    /// refresh token the server considers live for that login.
    fn check_record(&self) -> Checked {
        if self.knobs.store_failures {
            return Ok(());
        }
        let Some(Record {
            lineage,
            entry: Entry::Tokens(t),
            version,
        }) = &self.store.record
        else {
            return Ok(());
        };
        let Some(&f) = self.lineage_family.get(lineage) else {
            return Ok(());
        };
        let family = &self.server.families[f];
        let lost = self
            .rotations
            .iter()
            .any(|(old, &excused)| excused && self.server.family_of_refresh(old) == Some(f));
        if family.revoked || lost {
            return Ok(());
        }
        let held = t.refresh_token.as_ref().map(|r| r.secret().to_owned());
        ensure!(
            held.as_deref() == Some(family.current.as_str()),
            "model-record",
            "the store holds v{version} of family {f} with refresh token {held:?}, the server's \
             live one is {}",
            family.current
        );
        Ok(())
    }
}
