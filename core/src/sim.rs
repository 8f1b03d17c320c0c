//! A deterministic multi-session simulator: up to eight processes, each with its own
//! [`Session`](crate::Session), sharing one simulated store and one simulated
//! authorization server, driven by a schedule drawn from a seed and checked after every
//! step.
//!
//! ```
//! use reauth_core::sim::{run, SimConfig};
//!
//! let report = run(42, SimConfig::default()).unwrap_or_else(|f| panic!("{f}"));
//! assert!(report.steps > 0);
//! ```
//!
//! ## The world
//!
//! - **The store** holds one record and one refresh lease whose time to live runs on the
//!   simulation clock; only its holder releases it. A store command is answered at once
//!   or parked and answered later (never after a few hundred milliseconds of simulated
//!   time, so a delayed write never outlives a lease); in one schedule in four the store
//!   is away now and then and an operation fails. In half the schedules the store
//!   notifies the other processes of every write, as a Redis store's pub/sub would: up
//!   to four in ten notifications are lost, the rest arrive whenever the schedule says,
//!   and the process calls [`Session::handle_changed`](crate::Session::handle_changed).
//! - **The authorization server** rotates refresh tokens per login family and detects
//!   reuse: presenting a rotated refresh token revokes the whole family. A grace window
//!   (the previous token honoured for a while) is on in some schedules, and in some a
//!   rotation revokes the family's older access tokens. It may revoke access tokens or a
//!   whole family, and refuse every token of a family for a few seconds.
//! - **The API** answers 200 if the access token is live at the server, else 401 with
//!   `WWW-Authenticate: Bearer error="invalid_token"`.
//! - **Refresh calls** are taken by the server when the schedule says (in one schedule in
//!   four, the moment they start); the answer comes at once, later, out of order, after
//!   the refresh timeout, never (the driver reports a transient timeout at the call's
//!   deadline), or is lost after the server rotated.
//! - **Processes** begin requests, log out, log in (a new lineage), and crash: a crash
//!   drops everything (a lease it held stays until it expires; a store command or refresh
//!   call it had sent may still arrive) and the process restarts with
//!   [`Session::restore`](crate::Session::restore) from what the store holds.
//!
//! All time is arithmetic on one `Instant` origin and one `SystemTime` origin: a seed
//! names one run exactly, and a failure prints the seed, the step and the last steps.
//!
//! ## Rules checked after every step
//!
//! | rule | what |
//! |---|---|
//! | `reuse-detection` | the server detects reuse only if an answer was really lost after it rotated (lost, abandoned, its process crashed, its write failed or lost) or the call ran without the lease because the store was away |
//! | `single-flight` | a refresh starts only under a valid lease while the store works, and never presents a refresh token another call still in flight presented |
//! | `tombstone-sticks` | the store never goes from a tombstone of a lineage back to its tokens |
//! | `tombstone-seen` | a session that reads a tombstone of its lineage is logged out, whether an episode or a change notification made it read |
//! | `foreign-credential` | a process sends only access and refresh tokens of the login it was given |
//! | `waiter-resolved` | every waiter is resolved exactly once, none is left when every deadline has passed |
//! | `late-success` | a success for the refresh in doubt is taken and installed |
//! | `replay-generation` | a 401 never fails `Unauthorized` while the session holds a newer generation |
//! | `nothing-after-logout` | no credential and no refresh after a logout, until the next login |
//! | `logout-cause` | every logout has a cause (asked for, a tombstone or another login seen in the store, a refused refresh): a store that is away logs nobody out |
//! | `hold-back` | once two or more of a process's own fresh tokens in a row were refused, a 401 starts no refresh before half of `min(cap, base * 2^(n-2))` since the last one arrived; and while the API refuses every token, a process starts no more refreshes than that schedule allows |
//! | `model-episode` | after each read under the lease, the session calls, adopts or logs out as the reference model predicts from the record and the version it knew |
//! | `model-record` | at the end, with the store up and nothing lost, the store holds the refresh token the server considers live |
//!
//! ## Planted bugs
//!
//! Each old defect is planted with [`plant`] (per thread; no such hook exists without the
//! `testing` feature) and hunted from seed 0 upwards with the default configuration
//! (bug 8 with [`SimConfig::notifications`]; bug 4 with [`SimConfig::rotate_at_once`], so
//! that the overdue refresh is one the server already rotated on; with a call the server
//! has not taken yet, `single-flight` catches it first; on other seeds `reuse-detection`
//! does). Reproduce with
//! `cargo test -p reauth-core --test sim -- --nocapture planted`.
//!
//! | bug | caught by | seeds needed |
//! |---|---|---|
//! | 1 [`Bug::SaveOverTombstone`] | `tombstone-sticks` | 56 |
//! | 2 [`Bug::TombstoneAsEmpty`] | `tombstone-seen` | 1 |
//! | 3 [`Bug::AdoptOtherLineage`] | `foreign-credential` | 3 |
//! | 4 [`Bug::OverdueIsFailed`] | `reuse-detection` | 1 |
//! | 5 [`Bug::SlowIsFailed`] | `single-flight` | 1 |
//! | 6 [`Bug::ReplayFailsFirst`] | `replay-generation` | 1 |
//! | 7 [`Bug::NoHoldBack`] | `hold-back` | 5 |
//! | 8 [`Bug::CheckAdoptsAnyLineage`] | `foreign-credential` | 5 |

/// Fails the check with `rule` unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $rule:literal, $($fmt:tt)+) => {
        if !$cond {
            return Err(($rule, format!($($fmt)+)));
        }
    };
}

mod actions;
mod calls;
mod model;
mod node;
mod rng;
mod rules;
mod schedule;
mod server;
mod store;
mod store_answers;
mod world;

pub use crate::machine::plant::{plant, Bug};

use rng::Rng;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};
use world::{Knobs, World};

/// What a run looks like. `None` fields are drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimConfig {
    /// Processes sharing the store, 1 to 8.
    pub sessions: Option<usize>,
    /// Steps of the schedule before the run winds down.
    pub steps: usize,
    /// True if store operations fail now and then.
    pub store_failures: Option<bool>,
    /// True if the server honours the previous refresh token for a while.
    pub grace: Option<bool>,
    /// True if the server takes every refresh call the moment it starts, so that every
    /// late answer comes after it rotated.
    pub rotate_at_once: Option<bool>,
    /// True if the store notifies the other processes of every write (losing some of
    /// the notifications, delivering the rest late), as a Redis store's pub/sub does.
    pub notifications: Option<bool>,
    /// Keep every command and answer in the failure's trace (slow; for one seed).
    pub verbose: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            sessions: None,
            steps: 400,
            store_failures: None,
            grace: None,
            rotate_at_once: None,
            notifications: None,
            verbose: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Steps taken.
    pub steps: usize,
    /// Processes.
    pub sessions: usize,
    /// Refresh calls started.
    pub refreshes: u64,
    /// Refresh calls the server rotated on.
    pub rotations: u64,
    /// Reuse detections at the server (each one excused by a lost answer).
    pub reuse_detections: u64,
    /// Answers lost after the server rotated.
    pub lost_answers: u64,
    /// Refreshed tokens installed.
    pub installed: u64,
    /// Successes that came after the refresh timeout and were installed.
    pub late_installed: u64,
    /// Refreshes reported overdue.
    pub overdue: u64,
    /// Tokens adopted from the store.
    pub adoptions: u64,
    /// Logouts of any cause.
    pub logouts: u64,
    /// Logins.
    pub logins: u64,
    /// Crashes.
    pub crashes: u64,
    /// Logged-out processes that started a new client on the store's login.
    pub reopened: u64,
    /// Store operations that failed.
    pub store_failures: u64,
    /// Episodes compared with the reference model.
    pub predictions: u64,
    /// Requests that got a 200.
    pub requests_ok: u64,
    /// Requests that failed (rejected, failed waiters, failed verdicts).
    pub requests_failed: u64,
    /// Most refreshes one process started during one refusal of every token.
    pub refused_burst: usize,
    /// Change notifications delivered.
    pub notices: u64,
    /// Change notifications lost.
    pub notices_lost: u64,
}

impl Report {
    /// Adds `other`'s counters to these (the largest burst is kept).
    pub fn add(&mut self, other: &Report) {
        self.steps += other.steps;
        self.sessions += other.sessions;
        self.refreshes += other.refreshes;
        self.rotations += other.rotations;
        self.reuse_detections += other.reuse_detections;
        self.lost_answers += other.lost_answers;
        self.installed += other.installed;
        self.late_installed += other.late_installed;
        self.overdue += other.overdue;
        self.adoptions += other.adoptions;
        self.logouts += other.logouts;
        self.logins += other.logins;
        self.crashes += other.crashes;
        self.reopened += other.reopened;
        self.store_failures += other.store_failures;
        self.predictions += other.predictions;
        self.requests_ok += other.requests_ok;
        self.requests_failed += other.requests_failed;
        self.refused_burst = self.refused_burst.max(other.refused_burst);
        self.notices += other.notices;
        self.notices_lost += other.notices_lost;
    }
}

/// A broken rule: the seed and step that reproduce it, and the steps that led there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The step that broke the rule (steps past the schedule are the wind-down).
    pub step: usize,
    /// The rule, as named in the [module docs](self#rules-checked-after-every-step).
    pub rule: &'static str,
    /// What was seen.
    pub detail: String,
    /// The last steps, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} step {}: rule `{}` broken: {}",
            self.seed, self.step, self.rule, self.detail
        )?;
        writeln!(
            f,
            "reproduce: SIM_SEED={} cargo test -p reauth-core --test sim -- --nocapture one_seed",
            self.seed
        )?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Steps kept for a failure's trace.
const TRACE: usize = 60;

/// Runs the schedule of `seed` and checks every rule after every step.
pub fn run(seed: u64, config: SimConfig) -> Result<Report, Failure> {
    let mut rng = Rng::new(seed);
    let lifetimes = [None, Some(30), Some(300), Some(3600)];
    let knobs = Knobs {
        sessions: config
            .sessions
            .unwrap_or(1 + rng.below(8) as usize)
            .clamp(1, 8),
        store_failures: config.store_failures.unwrap_or(rng.chance(25)),
        fail_percent: 10,
        immediate_percent: rng.range(30, 90),
        lifetime: lifetimes[rng.index(lifetimes.len())].map(Duration::from_secs),
        grace: config
            .grace
            .unwrap_or(rng.chance(20))
            .then_some(Duration::from_secs(2)),
        revoke_on_rotation: rng.chance(50),
        keep_warm: rng.chance(30),
        rotate_at_once: config.rotate_at_once.unwrap_or(rng.chance(25)),
        notice_loss: config
            .notifications
            .unwrap_or(rng.chance(50))
            .then(|| rng.range(0, 40)),
    };
    // The one clock read: an origin for the arithmetic. Nothing depends on its value.
    let mut world = World::new(seed, knobs, Instant::now());
    world.verbose = config.verbose.then(Vec::new);
    let mut trace = VecDeque::with_capacity(TRACE);
    let record = |line: String, world: &mut World, trace: &mut VecDeque<String>| {
        let mut lines = world
            .verbose
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        lines.push(line);
        for line in lines {
            if trace.len() == TRACE {
                trace.pop_front();
            }
            trace.push_back(line);
        }
    };
    let fail = |step, (rule, detail), world: &mut World, trace: &mut VecDeque<String>| {
        record(String::from("(broken here)"), world, trace);
        Failure {
            seed,
            step,
            rule,
            detail,
            trace: trace.iter().cloned().collect(),
        }
    };
    // Process 0 logs in; the others start up from the store it wrote.
    let start = world
        .login(0)
        .and_then(|()| world.store_step(0))
        .and_then(|()| (1..world.sessions()).try_for_each(|n| world.restart(n)));
    start.map_err(|e| fail(0, e, &mut world, &mut trace))?;
    let started = format!(
        "node 0 logs in, {} start from the store",
        world.sessions() - 1
    );
    record(started, &mut world, &mut trace);
    for step in 1..=config.steps {
        match schedule::step(&mut world) {
            Ok(line) => record(line, &mut world, &mut trace),
            Err(e) => return Err(fail(step, e, &mut world, &mut trace)),
        }
    }
    if let Err(e) = world.finish() {
        return Err(fail(config.steps + 1, e, &mut world, &mut trace));
    }
    let mut report = world.report;
    report.steps = config.steps;
    Ok(report)
}
