//! The world the sessions live in: the clock, the store, the server, the processes and
//! the refresh calls on the wire. Every command a session gives is carried out and
//! checked here as it comes out; the actions that feed the sessions are in `actions`,
//! the refresh calls in `calls`, the longer checks in `rules`.

use super::calls::{Call, CallState};
use super::model::Seen;
use super::node::{Node, Parked, Saving};
use super::rng::Rng;
use super::server::Server;
use super::store::SimStore;
use super::Report;
use crate::command::{Command, Event, RefreshOutcome, StoreCommand};
use crate::config::Config;
use crate::credential::Attempt;
use crate::error::{RefreshError, RefreshErrorKind};
use crate::machine::Session;
use crate::origin::Origin;
use crate::record::{Entry, Lineage};
use crate::state::Phase;
use http::Uri;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// A broken rule and what was seen.
pub(crate) type Fault = (&'static str, String);
pub(crate) type Checked<T = ()> = Result<T, Fault>;

pub(super) const MS: Duration = Duration::from_millis(1);

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
    /// The store notifies the other processes of every write, losing this percentage of
    /// the notifications; `None`: no notifications.
    pub(crate) notice_loss: Option<u64>,
}

pub(crate) struct World {
    pub(crate) rng: Rng,
    pub(super) t0: Instant,
    pub(super) now: Instant,
    pub(super) wall0: SystemTime,
    pub(super) config: Config,
    pub(crate) knobs: Knobs,
    pub(super) store: SimStore,
    pub(super) server: Server,
    pub(super) nodes: Vec<Node>,
    pub(super) calls: Vec<Call>,
    /// Each rotated refresh token, and whether a reuse of it is excused (its successor
    /// may be lost: an answer lost or abandoned, a crash, a failed or refused save).
    pub(super) rotations: BTreeMap<String, bool>,
    pub(super) lineage_family: BTreeMap<Lineage, usize>,
    pub(super) seeds: u64,
    pub(super) api: Uri,
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

pub(super) fn bearer(attempt: &Attempt) -> String {
    let value = attempt.header_value().to_str().unwrap_or_default();
    value.strip_prefix("Bearer ").unwrap_or(value).to_owned()
}

pub(super) fn timeout() -> RefreshOutcome {
    RefreshOutcome::Failed(RefreshError::transient(RefreshErrorKind::Timeout))
}

pub(super) fn writes_tokens(op: &StoreCommand) -> Option<String> {
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

    pub(super) fn fresh_session(&mut self) -> Session {
        self.seeds = self
            .seeds
            .wrapping_mul(0x2545_F491_4F6C_DD1D)
            .wrapping_add(1);
        let mut c = self.config.clone();
        c.seed = self.seeds;
        Session::new(c)
    }

    pub(super) fn wall(&self) -> SystemTime {
        self.wall0 + self.now.saturating_duration_since(self.t0)
    }

    pub(crate) fn sessions(&self) -> usize {
        self.nodes.len()
    }

    /// Milliseconds since the start, for traces.
    pub(crate) fn at_ms(&self) -> u128 {
        self.now.saturating_duration_since(self.t0).as_millis()
    }

    pub(super) fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(v) = &mut self.verbose {
            let at = self.now.saturating_duration_since(self.t0).as_millis();
            v.push(format!("{at}ms    {}", line()));
        }
    }

    // ---- what comes out of a session -------------------------------------------------

    /// Drains node `n`'s commands, carrying each out and checking it.
    pub(super) fn drain(&mut self, n: usize) -> Checked<Seen> {
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
                    // Issued outside an episode's phases: the read of a notification.
                    let check = matches!(op, StoreCommand::Read)
                        && matches!(
                            node.session.phase(),
                            Phase::Valid | Phase::Backoff | Phase::Expired | Phase::Empty
                        );
                    if self.rng.chance(self.knobs.immediate_percent) {
                        let more = self.answer_store(n, id, op, false, check)?;
                        seen.merge(more);
                    } else {
                        let due = self.now + MS * self.rng.range(1, 400) as u32;
                        self.nodes[n].parked = Some(Parked {
                            id,
                            op,
                            due,
                            stale: false,
                            check,
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

    /// Node `n`'s calls are no longer awaited and its parked command belongs to an
    /// abandoned episode.
    pub(super) fn abandon(&mut self, n: usize) {
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

    pub(super) fn unfence(&mut self, n: usize) {
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

    pub(super) fn excuse(&mut self, rotated: Option<String>) {
        if let Some(old) = rotated {
            self.rotations.insert(old, true);
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
}
