//! The session: the whole token lifecycle machine and every transition it makes.
//!
//! Methods come in four kinds, as in quinn-proto's `Connection`:
//! - getters (`phase`, `generation`, `is_allowed`, …) read state;
//! - mutators (`login`, `logout`, `invalidate`, `begin_request`, `cancel`) carry the
//!   application's wishes;
//! - `handle_*` carry what the outside world did (a response arrived, a refresh finished, a
//!   store answered or said its record changed, a deadline passed);
//! - `poll_*` hand out the work that follows.

use crate::command::{
    Admission, Command, Event, RefreshOutcome, StoreCommand, StoreOutcome, StoreReply, Verdict,
};
use crate::config::Config;
use crate::credential::{Attempt, Credential};
use crate::error::{Error, LogoutReason, RefreshError, RefreshErrorKind};
use crate::ids::{Generation, RefreshId, StoreOpId, WaiterId};
use crate::jitter::Jitter;
use crate::origin::Target;
use crate::record::{Entry, Expect, Lease, LeaseId, Lineage, Record, Swap, Tombstone};
use crate::state::{Background, Phase, Snapshot, State, Step, Tokens};
use crate::store::StoreError;
use crate::timer::{Timer, TimerTable};
use crate::token::{StoredTokens, TokenSet};
use crate::waiters::{cancel_in, Slot, Waiters};
use http::{HeaderMap, StatusCode};
use plant::{planted, Bug};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Old defects, planted one at a time by the simulator's tests to measure how many seeds
/// it needs to find each. Every hook is one `planted(Bug::…)` test at the spot the defect
/// lived; without the `testing` feature `planted` is a constant `false`.
pub(crate) mod plant {
    /// A defect the machine once had.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    #[non_exhaustive]
    pub enum Bug {
        /// A refresh's save writes with `Expect::Any`: it overwrites a tombstone.
        SaveOverTombstone,
        /// A tombstone read under the lease is taken as our current record: refresh and
        /// write the tokens back.
        TombstoneAsEmpty,
        /// A record of another lineage is adopted as if it were ours.
        AdoptOtherLineage,
        /// An overdue refresh counts as failed at `refresh_timeout`: backoff, then a new
        /// refresh presenting the same refresh token.
        OverdueIsFailed,
        /// An overdue refresh is started again at once, while the first is in flight.
        SlowIsFailed,
        /// A replay that gets 401 fails `Unauthorized` without looking at its generation.
        ReplayFailsFirst,
        /// Refused fresh tokens never hold refreshing back.
        NoHoldBack,
        /// A record read on a change notification is adopted whatever its lineage.
        CheckAdoptsAnyLineage,
    }

    #[cfg(feature = "testing")]
    std::thread_local! {
        // Per thread, so tests running side by side plant independently.
        static PLANTED: std::cell::Cell<Option<Bug>> = const { std::cell::Cell::new(None) };
    }

    /// Plants `bug` (or none) for sessions driven on this thread.
    #[cfg(feature = "testing")]
    pub fn plant(bug: Option<Bug>) {
        PLANTED.with(|p| p.set(bug));
    }

    #[cfg(feature = "testing")]
    pub(crate) fn planted(bug: Bug) -> bool {
        PLANTED.with(|p| p.get() == Some(bug))
    }

    #[cfg(not(feature = "testing"))]
    #[inline(always)]
    pub(crate) const fn planted(_: Bug) -> bool {
        false
    }
}

/// Used when `now + d` does not fit in an `Instant`: far enough to never fire.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Upper bound of the jittered wait before looking at the store again while another
/// holder refreshes.
const LEASE_POLL: Duration = Duration::from_millis(200);

fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Commands waiting to be polled. Resuming or failing a whole queue of waiters is kept as
/// one batch and expanded one command per poll, so a storm costs no extra memory.
#[derive(Debug)]
enum Pending {
    One(Command),
    Resume {
        slots: VecDeque<Slot>,
        credential: Credential,
    },
    Fail {
        slots: VecDeque<Slot>,
        error: Error,
    },
}

/// A deadline that has passed.
enum Due {
    Timer(Timer),
    Waiters,
}

/// What `admit` decided for one request.
enum Admit {
    Send(Attempt),
    Wait(WaiterId),
    Reject(Error),
}

/// A store operation the session wants. Turned into a [`StoreCommand`] only when the
/// store is free, so that a write expects the version the previous write produced.
#[derive(Debug)]
enum Op {
    /// The refresh lease, for the episode.
    Lease,
    /// The record, for the episode: under the lease, or as a poll while another holds it.
    Read { leased: bool },
    /// The episode's refreshed tokens, made current once written.
    Save(Box<Tokens>),
    /// A login's tokens, replacing whatever the store holds.
    Login(Lineage, Box<StoredTokens>),
    /// A logout of `lineage`, which no older writer may undo.
    Tombstone {
        reason: Tombstone,
        lineage: Lineage,
        version: Option<u64>,
    },
    /// Gives a lease back.
    Release(Lineage, LeaseId),
    /// The record, read outside any episode because the store said it changed.
    Check,
}

/// One wanted store operation and the refresh episode it belongs to.
#[derive(Debug)]
struct Wanted {
    op: Op,
    episode: u64,
}

/// The operation the store is carrying out, and the record version a write of it makes.
#[derive(Debug)]
struct Issued {
    id: StoreOpId,
    wanted: Wanted,
    writes: Option<(Lineage, u64)>,
}

/// A token session: the sans-IO state machine that keeps one set of tokens fresh for any
/// number of concurrent requests, and keeps the store's session record in step with
/// other processes. Drive it as [the drive loop](crate#drive-loop) shows, with
/// [the caller's duties](crate#the-callers-duties); [its phases](crate#phases) are drawn in
/// the crate docs.
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: State,
    tokens: Option<Tokens>,
    generation: u64,
    next_waiter: u64,
    next_refresh: u64,
    next_store_op: u64,
    /// Consecutive transient failures in the current refresh episode.
    attempts: u32,
    waiters: Waiters,
    timers: TimerTable,
    pending: VecDeque<Pending>,
    jitter: Jitter,
    /// Lineages and the hold-back jitter, apart from the backoff's so that each schedule
    /// depends on its own inputs only.
    rng: Jitter,
    /// The latest `now` seen. Time that goes backwards is treated as this.
    now: Option<Instant>,
    /// When the last request began: timers refresh only while requests flow.
    last_request: Option<Instant>,
    /// The login the tokens belong to and the store record version they match.
    lineage: Option<Lineage>,
    version: Option<u64>,
    /// Counts refresh episodes; a store answer for an older one only cleans up.
    episode: u64,
    /// The refresh lease this session holds.
    lease: Option<(Lineage, LeaseId)>,
    issued: Option<Issued>,
    wanted: VecDeque<Wanted>,
    /// Fresh tokens refused in a row, the last generation counted, and until when
    /// refreshing is held back because of them.
    refused: u32,
    refused_generation: u64,
    hold_until: Option<Instant>,
    /// A configuration error ended the last episode (the client's credentials refused, a
    /// redirecting endpoint): until then no refresh starts, and a request that needs one
    /// fails with that error. Cleared by a login or a success.
    misconfigured: Option<(Instant, Arc<RefreshError>)>,
}

impl Session {
    /// A session in the [`Phase::Empty`] phase.
    pub fn new(config: Config) -> Self {
        Self {
            jitter: Jitter::new(config.seed),
            rng: Jitter::new(config.seed ^ 0xA5A5_5A5A_C3C3_3C3C),
            config,
            state: State::Empty,
            tokens: None,
            generation: 0,
            next_waiter: 0,
            next_refresh: 0,
            next_store_op: 0,
            attempts: 0,
            waiters: Waiters::default(),
            timers: TimerTable::default(),
            pending: VecDeque::new(),
            now: None,
            last_request: None,
            lineage: None,
            version: None,
            episode: 0,
            lease: None,
            issued: None,
            wanted: VecDeque::new(),
            refused: 0,
            refused_generation: 0,
            hold_until: None,
            misconfigured: None,
        }
    }

    // ---- getters -------------------------------------------------------------------

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// The generation of the current access token (0 before the first login).
    pub fn generation(&self) -> Generation {
        Generation(self.generation)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True if a request to `uri` may carry the token: its origin is on the allow-list.
    pub fn is_allowed<T: Target + ?Sized>(&self, uri: &T) -> bool {
        self.config.allowed_origins.iter().any(|o| o.matches(uri))
    }

    /// The refresh the session is waiting for, if any.
    pub fn refresh_in_flight(&self) -> Option<RefreshId> {
        self.state.refresh_in_flight()
    }

    /// From this instant on the current token is not sent: requests wait for a refresh.
    /// `None` without a token or with an unknown expiry.
    pub fn usable_until(&self) -> Option<Instant> {
        self.tokens.as_ref().and_then(|t| t.hard_at)
    }

    /// Requests queued behind a refresh.
    pub fn waiting(&self) -> usize {
        self.waiters.live()
    }

    /// The token state without any secret.
    pub fn snapshot(&self) -> Snapshot {
        let t = self.tokens.as_ref();
        Snapshot {
            phase: self.phase(),
            generation: self.generation(),
            expires_at: t.and_then(|t| t.expires_at),
            has_refresh_token: t.is_some_and(|t| t.refresh.is_some()),
            scope: t.and_then(|t| t.scope.clone()),
            waiting: self.waiting(),
            failed_attempts: self.attempts,
            lineage: self.lineage,
            version: self.version,
        }
    }

    // ---- mutators: the application's wishes ------------------------------------------

    /// Installs a new token set after a login: a new lineage, which replaces whatever the
    /// store holds. Queued requests resume with it; an in-flight refresh is abandoned (its
    /// outcome will be ignored).
    pub fn login(&mut self, now: Instant, tokens: TokenSet) {
        let now = self.clock(now);
        self.abandon_episode();
        let lineage = self.new_lineage();
        self.lineage = Some(lineage);
        self.version = None;
        let tokens = self.make_tokens(now, tokens, false);
        self.want(Op::Login(lineage, Box::new(tokens.stored())));
        // After the login's write, as after a tombstone: the abandoned refresh may still be
        // answered, and a process of the old lineage that took the lease before the write
        // landed would present the same refresh token (a reuse the server punishes).
        self.release_lease();
        self.install(tokens);
        self.settle_in(now);
    }

    /// Takes up the session the store holds, as read at start-up, without writing it back:
    /// tokens are used (refreshed first if expired), a tombstone means logged out,
    /// nothing means [`Phase::Empty`]. `wall` is the wall-clock time of `now`, to turn the
    /// record's absolute expiry into a lifetime. Call it before anything else.
    pub fn restore(&mut self, now: Instant, wall: SystemTime, record: Option<Record>) {
        let now = self.clock(now);
        if let Some(record) = record {
            self.take_up(now, wall, record);
        }
    }

    /// Takes up `record` whole, as this session's own: at start-up, or when a session
    /// that never had tokens hears of one.
    fn take_up(&mut self, now: Instant, wall: SystemTime, record: Record) {
        self.abandon_episode();
        self.release_lease();
        self.lineage = Some(record.lineage);
        self.version = Some(record.version);
        match record.entry {
            Entry::Tokens(saved) => {
                let tokens = self.make_tokens(now, saved.to_token_set(wall), false);
                self.install(tokens);
                self.settle_in(now);
            }
            Entry::LoggedOut(t) => self.log_out(LogoutReason::Elsewhere(t)),
        }
    }

    /// Logs out: fails every queued request, writes a tombstone to the store (so every
    /// process sharing it is logged out, and no older session can bring the tokens back)
    /// and emits [`Event::LoggedOut`]. Nothing is sent with a token until the next
    /// [`login`](Self::login). Logging out twice does nothing more.
    pub fn logout(&mut self, now: Instant) {
        self.clock(now);
        if !matches!(self.state, State::LoggedOut { .. }) {
            self.log_out(LogoutReason::Requested);
        }
    }

    /// The application learned outside HTTP that the token of `generation` is bad (a
    /// websocket refused it, a 403 the app knows means expiry): treated exactly like a 401
    /// for a request sent with that generation. For the current generation, one refresh
    /// starts (or the one in flight is joined) and requests wait for it; for an older one
    /// (a stale report: the token has been replaced since) nothing happens, so any number
    /// of reports cause at most one refresh. Logged out, empty or held back after refused
    /// refreshes: nothing happens. Take `generation` from
    /// [`Snapshot::generation`](crate::Snapshot::generation) or
    /// [`Attempt::generation`] when the token was handed out.
    pub fn invalidate(&mut self, now: Instant, generation: Generation) {
        let now = self.clock(now);
        if generation.0 != self.generation || self.tokens.is_none() {
            return;
        }
        self.note_refused(now);
        if self.hold_until.is_some_and(|h| now < h) {
            return;
        }
        if matches!(self.state, State::Valid { .. } | State::Expired) {
            self.need_token(now);
        }
    }

    /// Asks to send a request to `uri`. The answer is immediate: send now with a
    /// credential, wait for a refresh as a waiter, send without a credential (origin not
    /// allowed), or do not send.
    ///
    /// The session keeps no record of the [`Attempt`] it returns: a request that gets no
    /// response (a network failure) is not reported, its attempt is simply dropped, and
    /// nothing is left pending. A retry is a new call to `begin_request`, which carries
    /// the credential current by then.
    pub fn begin_request<T: Target + ?Sized>(&mut self, now: Instant, uri: &T) -> Admission {
        let now = self.clock(now);
        if !self.is_allowed(uri) {
            return Admission::Anonymous;
        }
        self.last_request = Some(now);
        match self.admit(now, false) {
            Admit::Send(a) => Admission::Send(a),
            Admit::Wait(w) => Admission::Wait(w),
            Admit::Reject(e) => Admission::Reject(e),
        }
    }

    /// The caller gave up on `waiter` (its future was dropped, its thread stopped
    /// waiting). No command will name it. Unknown or resolved waiters are ignored.
    pub fn cancel(&mut self, waiter: WaiterId) {
        if self.waiters.cancel(waiter.0) {
            return;
        }
        for p in &mut self.pending {
            if let Pending::Resume { slots, .. } | Pending::Fail { slots, .. } = p {
                if cancel_in(slots, waiter.0) {
                    return;
                }
            }
        }
    }

    // ---- handle_*: what the outside world did ----------------------------------------

    /// A request sent with `attempt` got a response (any status; a request that got none
    /// is not reported, see [`begin_request`](Self::begin_request)). Decides whether the
    /// caller gets the response, replays it, waits for a refresh, or fails. A request that cannot be sent
    /// again (`replayable` false, e.g. a streamed body) is never replayed: the session
    /// still learns of the 401 and refreshes for the next call, and the caller gets
    /// [`Verdict::Done`].
    pub fn handle_response(
        &mut self,
        now: Instant,
        attempt: &Attempt,
        status: StatusCode,
        headers: &HeaderMap,
        replayable: bool,
    ) -> Verdict {
        if !self.config.trigger.fires(status, headers) {
            return Verdict::Done;
        }
        let now = self.clock(now);
        if planted(Bug::ReplayFailsFirst) && attempt.is_replay() {
            return Verdict::Fail(Error::Unauthorized);
        }
        if attempt.generation().0 == self.generation && self.tokens.is_some() {
            self.note_refused(now);
            // Rule 3: the current token was refused on a replay, or fresh tokens keep
            // being refused. Refreshing again now would only loop.
            if attempt.is_replay() || self.hold_until.is_some_and(|h| now < h) {
                return Verdict::Fail(Error::Unauthorized);
            }
            if matches!(self.state, State::Valid { .. } | State::Expired) {
                self.need_token(now);
            }
        }
        if !replayable {
            return Verdict::Done;
        }
        // An older token (a stale 401, first try or replay) simply tries again with
        // whatever is current: every such try carries a newer generation, so it ends.
        match self.admit(now, true) {
            Admit::Send(a) => Verdict::Replay(a),
            Admit::Wait(w) => Verdict::Wait(w),
            Admit::Reject(e) => Verdict::Fail(e),
        }
    }

    /// Refresh `id` finished. A late answer for the refresh still in doubt is taken (its
    /// rotated refresh token is the only live one); outcomes for a refresh that is no
    /// longer awaited (the session logged in or out meanwhile) are ignored.
    pub fn handle_refresh(&mut self, now: Instant, id: RefreshId, outcome: RefreshOutcome) {
        let now = self.clock(now);
        if self.state.refresh_in_flight() != Some(id) {
            return;
        }
        self.timers.stop(Timer::RefreshTimeout);
        match outcome {
            RefreshOutcome::Success(set) => {
                let tokens = self.make_tokens(now, set, true);
                self.want(Op::Save(Box::new(tokens)));
                self.set_step(Step::Save);
            }
            RefreshOutcome::Failed(error) => {
                self.refresh_failed(now, error);
                self.release_lease();
            }
        }
    }

    /// Store operation `id` finished with `outcome`. `wall` is the wall-clock time of
    /// `now`, to turn a record's absolute expiry into a lifetime. Unknown ids are ignored.
    pub fn handle_store(
        &mut self,
        now: Instant,
        wall: SystemTime,
        id: StoreOpId,
        outcome: StoreOutcome,
    ) {
        if self.issued.as_ref().is_none_or(|i| i.id != id) {
            return;
        }
        let now = self.clock(now);
        let Some(Issued { wanted, writes, .. }) = self.issued.take() else {
            return;
        };
        let current = wanted.episode == self.episode;
        match (wanted.op, outcome) {
            (op, Err(error)) => self.store_failed(now, op, current, error),
            (Op::Lease, Ok(StoreReply::Lease(lease))) => self.leased(now, lease, current),
            (Op::Read { leased }, Ok(StoreReply::Read(record))) => {
                if current && self.state.step() == Some(Step::Read { leased }) {
                    self.read(now, wall, record, leased);
                }
            }
            (Op::Save(tokens), Ok(StoreReply::Swap(swap))) => {
                self.saved(now, wall, *tokens, swap, writes, current);
            }
            (Op::Login(..), Ok(StoreReply::Swap(swap))) => self.wrote(&swap, writes),
            (
                Op::Tombstone {
                    reason, lineage, ..
                },
                Ok(StoreReply::Swap(swap)),
            ) => {
                self.tombstoned(reason, lineage, swap, writes);
            }
            (Op::Release(..), Ok(StoreReply::Released)) => {}
            (Op::Check, Ok(StoreReply::Read(record))) => {
                if current {
                    self.checked(now, wall, record);
                }
            }
            (op, Ok(_)) => {
                let error = StoreError::new("the store answered a different operation");
                self.store_failed(now, op, current, error);
            }
        }
        self.issue();
    }

    /// The store says its record may have changed (a change notification: Redis
    /// pub/sub, a file watch). A notification may be late, lost or repeated, so nothing is
    /// decided on it: the session re-reads the record and acts on what it finds, as a
    /// refresh episode would. Waiting for another process's lease, the poll read happens
    /// now instead of at the next retry. With tokens and no episode under way, a newer
    /// record of this login is adopted (queued requests resume with it), a tombstone logs
    /// out, and another login's record logs out as superseded. A session that never had
    /// tokens (empty: the start-up read failed or found nothing) takes up the record as
    /// a start-up read would have, with [`Event::Adopted`]. While an episode leases,
    /// reads, calls or saves it does nothing: the episode reads or compares-and-swaps
    /// anyway. Repeated notifications while a read is queued cost no extra read.
    pub fn handle_changed(&mut self, now: Instant) {
        self.clock(now);
        match self.state.step() {
            Some(Step::LeaseBusy) => {
                self.timers.stop(Timer::LeaseRetry);
                self.want(Op::Read { leased: false });
                self.set_step(Step::Read { leased: false });
            }
            Some(_) => {}
            None => {
                let queued = self
                    .wanted
                    .iter()
                    .chain(self.issued.as_ref().map(|i| &i.wanted))
                    .any(|w| matches!(w.op, Op::Check));
                if self.checkable() && !queued {
                    self.want(Op::Check);
                }
            }
        }
    }

    /// Time passed. Fires every deadline at or before `now`; early or repeated calls do
    /// nothing. Afterwards [`poll_timeout`](Self::poll_timeout) is `None` or later than
    /// `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        while let Some(due) = self.due(now) {
            match due {
                Due::Waiters => {
                    let slots = self.waiters.take_expired(now);
                    self.fail_slots(slots, Error::Timeout);
                }
                Due::Timer(timer) => {
                    self.timers.stop(timer);
                    self.fire(now, timer);
                }
            }
        }
    }

    // ---- poll_*: the work that follows ---------------------------------------------

    /// The next command to carry out. After every mutator or `handle_*` call, call this
    /// until it returns `None`, then call [`poll_timeout`](Self::poll_timeout).
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        loop {
            let front = self.pending.front_mut()?;
            let next = match front {
                Pending::One(_) => match self.pending.pop_front() {
                    Some(Pending::One(c)) => return Some(c),
                    _ => unreachable!("front was a single command"),
                },
                Pending::Resume { slots, credential } => {
                    next_live(slots).map(|s| Command::Resume {
                        waiter: WaiterId(s.id),
                        attempt: Attempt::new(credential.clone(), s.replay),
                    })
                }
                Pending::Fail { slots, error } => next_live(slots).map(|s| Command::Fail {
                    waiter: WaiterId(s.id),
                    error: error.clone(),
                }),
            };
            match next {
                Some(c) => return Some(c),
                None => {
                    self.pending.pop_front();
                }
            }
        }
    }

    /// True if [`poll_command`](Self::poll_command) has something to look at. An input
    /// on the fast path (a request admitted with a valid token) leaves nothing, and a
    /// driver may skip polling then.
    #[must_use]
    pub fn has_commands(&self) -> bool {
        !self.pending.is_empty()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, or `None` if no
    /// deadline is set. Ask again after every input: deadlines move.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timers = self.timers.next().map(|(_, at)| at);
        match (timers, self.waiters.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- transitions: requests ----------------------------------------------------------

    /// Time never goes backwards inside the machine.
    fn clock(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |seen| seen.max(now));
        self.now = Some(now);
        now
    }

    fn current(&self) -> &Tokens {
        self.tokens
            .as_ref()
            .expect("a phase that holds tokens has tokens")
    }

    fn can_refresh(&self) -> bool {
        !self.config.requires_refresh_token
            || self.tokens.as_ref().is_some_and(|t| t.refresh.is_some())
    }

    /// True if requests are flowing (or the session keeps its token warm): only then do
    /// timers start refreshes.
    fn flowing(&self, now: Instant) -> bool {
        self.config.keep_warm
            || self
                .last_request
                .is_some_and(|t| now.saturating_duration_since(t) <= self.config.refresh_window)
    }

    /// The common answer for a request that wants a credential now.
    fn admit(&mut self, now: Instant, replay: bool) -> Admit {
        if let State::Valid { background } = self.state {
            let t = self.current();
            if t.hard_at.is_some_and(|at| at <= now) {
                self.need_token(now);
            } else {
                if background == Background::Idle && t.stale_at.is_some_and(|at| at <= now) {
                    self.start_background(now);
                }
                return Admit::Send(Attempt::new(self.current().credential.clone(), replay));
            }
        }
        if matches!(self.state, State::Expired)
            || (matches!(self.state, State::Empty) && !self.config.requires_refresh_token)
        {
            self.need_token(now);
        }
        match &self.state {
            State::Empty => Admit::Reject(Error::NotAuthenticated),
            State::LoggedOut { reason } => Admit::Reject(Error::LoggedOut(reason.clone())),
            State::Refreshing { .. } | State::Backoff => Admit::Wait(self.enqueue(now, replay)),
            State::Valid { .. } | State::Expired => match &self.misconfigured {
                // Held back by a configuration error: fail now, not after a wait.
                Some((_, error)) => Admit::Reject(Error::RefreshFailed(error.clone())),
                None => unreachable!("need_token leaves Valid and Expired unless held"),
            },
        }
    }

    /// A 401 for the current token. Refreshed tokens refused in a row (each within the
    /// backoff cap of its arrival) hold refreshing back on the backoff schedule, from the
    /// second on; any other refusal starts the count again.
    fn note_refused(&mut self, now: Instant) {
        if planted(Bug::NoHoldBack) {
            return;
        }
        if self.refused_generation == self.generation {
            return;
        }
        self.refused_generation = self.generation;
        let b = &self.config.backoff;
        let Some(got_at) = self
            .current()
            .refreshed_at
            .filter(|&at| now.saturating_duration_since(at) < b.cap)
        else {
            self.refused = 0;
            self.hold_until = None;
            return;
        };
        self.refused = self.refused.saturating_add(1);
        // One refused refresh is refreshed again at once (a token not yet known
        // everywhere); from the second in a row on, refreshing waits.
        if self.refused < 2 {
            return;
        }
        let doublings = (self.refused - 2).min(31);
        let bound = b.base.saturating_mul(1 << doublings).min(b.cap);
        let hold = bound / 2 + self.rng.up_to(bound / 2);
        self.hold_until = Some(later(got_at, hold));
    }

    /// The current token may no longer be sent: move to a phase that gets a new one, or
    /// to `Expired` while a configuration error holds refreshing back.
    fn need_token(&mut self, now: Instant) {
        self.timers.stop(Timer::StaleWindow);
        self.timers.stop(Timer::Expiry);
        if self.held(now)
            && matches!(
                self.state,
                State::Valid {
                    background: Background::Idle | Background::GaveUp
                } | State::Expired
            )
        {
            self.state = State::Expired;
            return;
        }
        self.state = match self.state {
            State::Valid {
                background: Background::Running(step),
            } => State::Refreshing { step },
            State::Valid {
                background: Background::Backoff,
            } => State::Backoff,
            State::Valid { .. } | State::Expired | State::Empty => {
                if !self.can_refresh() {
                    self.log_out(LogoutReason::NoRefreshToken);
                    return;
                }
                self.attempts = 0;
                State::Refreshing {
                    step: self.begin_episode(now),
                }
            }
            ref other => other.clone(),
        };
    }

    /// True while a configuration error holds refreshing back; forgets it once over.
    fn held(&mut self, now: Instant) -> bool {
        match &self.misconfigured {
            Some((until, _)) if now < *until => true,
            Some(_) => {
                self.misconfigured = None;
                false
            }
            None => false,
        }
    }

    fn start_background(&mut self, now: Instant) {
        if self.can_refresh() && !self.held(now) {
            self.attempts = 0;
            let step = self.begin_episode(now);
            self.state = State::Valid {
                background: Background::Running(step),
            };
        }
    }

    fn enqueue(&mut self, now: Instant, replay: bool) -> WaiterId {
        self.next_waiter += 1;
        let deadline = later(now, self.config.waiter_timeout);
        self.waiters.push(self.next_waiter, deadline, replay);
        WaiterId(self.next_waiter)
    }

    // ---- transitions: the refresh episode -------------------------------------------

    /// Starts a refresh episode: lease, re-read, call, save. Returns its first step.
    fn begin_episode(&mut self, _now: Instant) -> Step {
        self.episode += 1;
        if self.lineage.is_none() {
            // A grant without a user (client credentials) starts its lineage here; a
            // record already in the store is taken up when read.
            self.lineage = Some(self.new_lineage());
        }
        self.want(Op::Lease);
        Step::Lease
    }

    /// A lineage for a new login, from the session's seeded generator (adapters seed it
    /// randomly, so two processes' logins never share one).
    fn new_lineage(&mut self) -> Lineage {
        Lineage::from_u128(u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64()))
    }

    /// Abandons the episode under way: its store answers only clean up, its refresh
    /// outcome is ignored. The caller gives the lease back after its own writes.
    fn abandon_episode(&mut self) {
        self.episode += 1;
        self.timers.stop_all();
        self.attempts = 0;
    }

    fn set_step(&mut self, step: Step) {
        match &mut self.state {
            State::Refreshing { step: s }
            | State::Valid {
                background: Background::Running(s),
            } => *s = step,
            _ => {}
        }
    }

    fn call(&mut self, now: Instant) -> Step {
        self.next_refresh += 1;
        let id = RefreshId(self.next_refresh);
        self.timers.set(
            Timer::RefreshTimeout,
            later(now, self.config.refresh_timeout),
        );
        let refresh_token = self.tokens.as_ref().and_then(|t| t.refresh.clone());
        self.push(Command::StartRefresh {
            id,
            refresh_token,
            deadline: later(now, self.config.refresh_deadline),
        });
        Step::Call(id)
    }

    fn leased(&mut self, now: Instant, lease: Lease, current: bool) {
        let lineage = self.lineage.expect("an episode has a lineage");
        match lease {
            Lease::Granted(id) if current && self.state.step() == Some(Step::Lease) => {
                self.lease = Some((lineage, id));
                self.want(Op::Read { leased: true });
                self.set_step(Step::Read { leased: true });
            }
            Lease::Granted(id) => self.want(Op::Release(lineage, id)),
            Lease::Busy if current && self.state.step() == Some(Step::Lease) => {
                self.set_step(Step::LeaseBusy);
                let wait = self.rng.up_to(LEASE_POLL).max(LEASE_POLL / 10);
                self.timers.set(Timer::LeaseRetry, later(now, wait));
            }
            Lease::Busy => {}
        }
    }

    /// The record as the episode re-read it: adopt what another process refreshed, stop
    /// at a tombstone or another login, or go on.
    fn read(&mut self, now: Instant, wall: SystemTime, record: Option<Record>, leased: bool) {
        let Some(record) = record else {
            return self.go_on(now, leased);
        };
        if Some(record.lineage) != self.lineage {
            let other = self.config.requires_refresh_token || record.tokens().is_none();
            if other && !planted(Bug::AdoptOtherLineage) {
                self.release_lease();
                return self.log_out(LogoutReason::Superseded);
            }
            // No user behind the grant: whoever acquired first, every process shares it.
            self.lineage = Some(record.lineage);
            self.version = None;
        }
        match record.entry {
            Entry::LoggedOut(t) => {
                self.version = Some(record.version);
                if planted(Bug::TombstoneAsEmpty) {
                    return self.go_on(now, leased);
                }
                self.release_lease();
                self.log_out(LogoutReason::Elsewhere(t));
            }
            Entry::Tokens(_) if Some(record.version) == self.version => self.go_on(now, leased),
            Entry::Tokens(_) => {
                if self.adopt(now, wall, record) {
                    self.go_on(now, leased);
                }
            }
        }
    }

    /// Tokens and no episode under way: what a change notification may act on.
    fn checkable(&self) -> bool {
        self.state.step().is_none()
            && match self.state {
                State::Valid { .. } | State::Backoff | State::Expired => self.tokens.is_some(),
                // Never had tokens (the start-up read failed or found none): what another
                // process wrote since is what that read would have found.
                State::Empty => true,
                State::Refreshing { .. } | State::LoggedOut { .. } => false,
            }
    }

    /// The record as read on a change notification, outside any episode: the same
    /// decisions as an episode's read, without calling the token endpoint.
    fn checked(&mut self, now: Instant, wall: SystemTime, record: Option<Record>) {
        let Some(record) = record else { return };
        if !self.checkable() {
            return;
        }
        if matches!(self.state, State::Empty) {
            let tokens = record.tokens().is_some();
            self.take_up(now, wall, record);
            if tokens {
                self.push(Command::Event(Event::Adopted {
                    generation: self.generation(),
                }));
            }
            return;
        }
        if Some(record.lineage) != self.lineage {
            let other = self.config.requires_refresh_token || record.tokens().is_none();
            if other && !planted(Bug::CheckAdoptsAnyLineage) {
                return self.log_out(LogoutReason::Superseded);
            }
            // No user behind the grant: every process shares what another acquired.
            self.lineage = Some(record.lineage);
            self.version = None;
        }
        let newer = self.version.is_none_or(|v| record.version > v);
        match record.entry {
            Entry::LoggedOut(t) => {
                self.version = Some(record.version);
                self.log_out(LogoutReason::Elsewhere(t));
            }
            Entry::Tokens(_) if !newer => {}
            Entry::Tokens(_) => {
                // Expired too: installed all the same, so the next refresh presents the
                // newest refresh token.
                self.adopt(now, wall, record);
            }
        }
    }

    /// Takes the tokens of a newer record of this lineage. True if they cannot be used
    /// (expired too): the episode goes on, presenting their refresh token.
    fn adopt(&mut self, now: Instant, wall: SystemTime, record: Record) -> bool {
        let Entry::Tokens(saved) = record.entry else {
            return true;
        };
        self.version = Some(record.version);
        let tokens = self.make_tokens(now, saved.to_token_set(wall), false);
        let usable = tokens.hard_at.is_none_or(|at| at > now);
        self.install(tokens);
        if !usable {
            return true;
        }
        self.release_lease();
        self.end_episode();
        self.push(Command::Event(Event::Adopted {
            generation: self.generation(),
        }));
        self.resume_all();
        false
    }

    /// Nothing newer in the store: call the token endpoint under the lease, or ask for
    /// the lease after a poll.
    fn go_on(&mut self, now: Instant, leased: bool) {
        if leased {
            let step = self.call(now);
            self.set_step(step);
        } else {
            self.want(Op::Lease);
            self.set_step(Step::Lease);
        }
    }

    fn saved(
        &mut self,
        now: Instant,
        wall: SystemTime,
        tokens: Tokens,
        swap: Swap,
        writes: Option<(Lineage, u64)>,
        current: bool,
    ) {
        let in_step = current && self.state.step() == Some(Step::Save);
        match swap {
            Swap::Written => {
                self.wrote(&Swap::Written, writes);
                if in_step {
                    self.release_lease();
                    self.refreshed(tokens);
                }
            }
            Swap::Conflict(_) if !in_step => {}
            Swap::Conflict(None) => {
                // The record was deleted meanwhile: write ours afresh.
                self.version = None;
                self.want(Op::Save(Box::new(tokens)));
            }
            Swap::Conflict(Some(record)) => {
                // Never overwrite what another writer made newer: its tokens win.
                self.release_lease();
                if Some(record.lineage) != self.lineage {
                    return self.log_out(LogoutReason::Superseded);
                }
                match record.entry {
                    Entry::LoggedOut(t) => {
                        self.version = Some(record.version);
                        self.log_out(LogoutReason::Elsewhere(t));
                    }
                    Entry::Tokens(_) => {
                        if self.adopt(now, wall, record) {
                            // Theirs expired too: a fresh episode presents their token.
                            let step = self.begin_episode(now);
                            self.set_step(step);
                        }
                    }
                }
            }
        }
    }

    /// A write of this lineage landed (or not): track the version it made.
    fn wrote(&mut self, swap: &Swap, writes: Option<(Lineage, u64)>) {
        if let (Swap::Written, Some((lineage, version))) = (swap, writes) {
            if self.lineage == Some(lineage) {
                self.version = Some(version);
            }
        }
    }

    fn tombstoned(
        &mut self,
        reason: Tombstone,
        lineage: Lineage,
        swap: Swap,
        writes: Option<(Lineage, u64)>,
    ) {
        let retry = |version| Op::Tombstone {
            reason,
            lineage,
            version,
        };
        match swap {
            Swap::Written => self.wrote(&swap, writes),
            Swap::Conflict(None) => self.want(retry(None)),
            Swap::Conflict(Some(record)) if record.lineage == lineage => {
                if self.lineage == Some(lineage) {
                    self.version = Some(record.version);
                }
                // A logout sticks: it is written over anything newer of its lineage.
                if record.tokens().is_some() {
                    self.want(retry(Some(record.version)));
                }
            }
            // Another login owns the store now: leave it alone.
            Swap::Conflict(Some(_)) => {}
        }
    }

    fn store_failed(&mut self, now: Instant, op: Op, current: bool, error: StoreError) {
        self.push(Command::Event(Event::StoreFailed { error }));
        if !current {
            return;
        }
        let step = self.state.step();
        match op {
            // Without the store, single-flight holds within this process only.
            Op::Lease if step == Some(Step::Lease) => {
                let step = self.call(now);
                self.set_step(step);
            }
            Op::Read { leased: true } if step == Some(Step::Read { leased: true }) => {
                let step = self.call(now);
                self.set_step(step);
            }
            Op::Read { leased: false } if step == Some(Step::Read { leased: false }) => {
                self.want(Op::Lease);
                self.set_step(Step::Lease);
            }
            // Nothing is lost: the tokens live on in memory.
            Op::Save(tokens) if step == Some(Step::Save) => {
                self.release_lease();
                self.refreshed(*tokens);
            }
            _ => {}
        }
    }

    fn refreshed(&mut self, tokens: Tokens) {
        self.install(tokens);
        self.end_episode();
        let expires_at = self.current().expires_at;
        self.push(Command::Event(Event::Refreshed {
            generation: self.generation(),
            expires_at,
        }));
        self.resume_all();
    }

    /// The episode ended with good tokens installed.
    fn end_episode(&mut self) {
        self.attempts = 0;
        self.state = State::Valid {
            background: Background::Idle,
        };
        self.timers.stop(Timer::Backoff);
        self.timers.stop(Timer::LeaseRetry);
        self.timers.stop(Timer::RefreshTimeout);
        self.arm_token_timers();
    }

    fn refresh_failed(&mut self, now: Instant, error: RefreshError) {
        if error.is_permanent() {
            self.log_out(LogoutReason::RefreshRejected(Arc::new(error)));
            return;
        }
        self.attempts = self.attempts.saturating_add(1);
        let retry_after = error.retry_after();
        // The application's setup is wrong, not the tokens: retrying on the backoff
        // schedule cannot help and logging out would destroy good tokens. Give up this
        // episode at once, keeping the session (whatever `on_exhausted` says).
        let configuration = error.is_configuration();
        let error = Arc::new(error);
        if configuration {
            // Asking again at once would fail the same way (and may get the client locked
            // out): not before the backoff cap, or a login.
            let until = later(now, self.config.backoff.cap);
            self.misconfigured = Some((until, error.clone()));
        }
        let background = matches!(self.state, State::Valid { .. });
        if configuration || self.attempts >= self.config.backoff.max_attempts.max(1) {
            if background {
                // The token still works: use it until it expires, then try afresh.
                self.state = State::Valid {
                    background: Background::GaveUp,
                };
            } else if !configuration && self.config.on_exhausted == crate::OnExhausted::LogOut {
                self.log_out(LogoutReason::AttemptsExhausted(error));
                return;
            } else {
                self.state = State::Expired;
                let slots = self.waiters.take_all();
                self.fail_slots(slots, Error::RefreshFailed(error.clone()));
            }
            self.push(Command::Event(Event::RefreshFailed {
                error,
                attempt: self.attempts,
                retry_at: None,
            }));
            return;
        }
        let until = later(now, self.backoff_delay(retry_after));
        self.timers.set(Timer::Backoff, until);
        self.state = if background {
            State::Valid {
                background: Background::Backoff,
            }
        } else {
            State::Backoff
        };
        self.push(Command::Event(Event::RefreshFailed {
            error,
            attempt: self.attempts,
            retry_at: Some(until),
        }));
    }

    /// Full jitter over an exponential bound, but never earlier than `Retry-After`.
    fn backoff_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let b = &self.config.backoff;
        let doublings = self.attempts.saturating_sub(1).min(31);
        let bound = b.base.saturating_mul(1 << doublings).min(b.cap);
        let floor = retry_after.map_or(Duration::ZERO, |r| r.min(b.max_retry_after));
        self.jitter.up_to(bound).max(floor)
    }

    fn fire(&mut self, now: Instant, timer: Timer) {
        match (timer, &self.state) {
            (Timer::RefreshTimeout, _) => {
                if planted(Bug::OverdueIsFailed) && self.state.refresh_in_flight().is_some() {
                    let error = RefreshError::transient(RefreshErrorKind::Timeout);
                    self.refresh_failed(now, error);
                    return self.release_lease();
                }
                if planted(Bug::SlowIsFailed) && self.state.refresh_in_flight().is_some() {
                    let step = self.call(now);
                    return self.set_step(step);
                }
                if let Some(id) = self.state.refresh_in_flight() {
                    self.push(Command::Event(Event::RefreshOverdue { id }));
                }
            }
            (Timer::LeaseRetry, _) if self.state.step() == Some(Step::LeaseBusy) => {
                self.want(Op::Read { leased: false });
                self.set_step(Step::Read { leased: false });
            }
            (Timer::Backoff, State::Backoff) => {
                self.state = State::Refreshing {
                    step: self.begin_episode(now),
                };
            }
            (
                Timer::Backoff,
                State::Valid {
                    background: Background::Backoff,
                },
            ) => {
                let step = self.begin_episode(now);
                self.state = State::Valid {
                    background: Background::Running(step),
                };
            }
            (
                Timer::StaleWindow,
                State::Valid {
                    background: Background::Idle,
                },
            ) if self.flowing(now) => self.start_background(now),
            (Timer::Expiry, State::Valid { .. }) if self.flowing(now) => self.need_token(now),
            _ => {}
        }
    }

    /// The earliest deadline at or before `now`.
    fn due(&self, now: Instant) -> Option<Due> {
        let timer = self.timers.next().filter(|&(_, at)| at <= now);
        let waiter = self.waiters.next_deadline().filter(|&at| at <= now);
        match (timer, waiter) {
            (Some((t, at)), Some(w)) if at <= w => Some(Due::Timer(t)),
            (_, Some(_)) => Some(Due::Waiters),
            (Some((t, _)), None) => Some(Due::Timer(t)),
            (None, None) => None,
        }
    }

    fn log_out(&mut self, reason: LogoutReason) {
        self.abandon_episode();
        self.tokens = None;
        self.state = State::LoggedOut {
            reason: reason.clone(),
        };
        if let (Some(t), Some(lineage)) = (reason.tombstone(), self.lineage) {
            self.want(Op::Tombstone {
                reason: t,
                lineage,
                version: self.version,
            });
        }
        // After the tombstone: it is written while the lease still holds.
        self.release_lease();
        let slots = self.waiters.take_all();
        self.fail_slots(slots, Error::LoggedOut(reason.clone()));
        self.push(Command::Event(Event::LoggedOut { reason }));
    }

    // ---- tokens -------------------------------------------------------------------------

    /// The instants of a token set received at `now`. A refreshed set without a refresh
    /// token or scope keeps the current one (rule 9). Its credential is made by `install`.
    fn make_tokens(&self, now: Instant, tokens: TokenSet, from_refresh: bool) -> Tokens {
        let (access, refresh, expires_in, scope) = tokens.into_parts();
        let old = self.tokens.as_ref().filter(|_| from_refresh);
        let refresh = refresh.or_else(|| old.and_then(|t| t.refresh.clone()));
        let scope = scope.or_else(|| old.and_then(|t| t.scope.clone()));
        let (mut stale_at, mut hard_at) = (None, None);
        let expires_at = expires_in.map(|life| {
            // Never refresh before half the lifetime has passed, or a short-lived token
            // would be refreshed again the moment it arrives.
            let half = life / 2;
            let usable = life.saturating_sub(self.config.leeway).max(half);
            let fresh = usable.saturating_sub(self.config.refresh_window).max(half);
            hard_at = Some(later(now, usable));
            stale_at = Some(later(now, fresh));
            later(now, life)
        });
        if from_refresh && hard_at.is_some_and(|at| at <= now) {
            // The server issued a token that is already expired. Use it reactively: arming
            // the expiry would start the next refresh at once, and the next, forever.
            (stale_at, hard_at) = (None, None);
        }
        Tokens {
            credential: Credential::new(&access, Generation(0)),
            access,
            refresh,
            scope,
            expires_at,
            stale_at,
            hard_at,
            refreshed_at: from_refresh.then_some(now),
        }
    }

    /// Makes `tokens` current under a new generation.
    fn install(&mut self, mut tokens: Tokens) {
        // New tokens (a login, a refresh, another process's): whatever held refreshing
        // back is over.
        self.misconfigured = None;
        self.generation += 1;
        tokens.credential = Credential::new(&tokens.access, Generation(self.generation));
        self.tokens = Some(tokens);
    }

    /// After a login or restore: valid, refreshing first if already expired (e.g. loaded
    /// from a store after a long pause), queued requests resumed otherwise.
    fn settle_in(&mut self, now: Instant) {
        self.state = State::Valid {
            background: Background::Idle,
        };
        self.arm_token_timers();
        if self.current().hard_at.is_some_and(|at| at <= now) {
            self.need_token(now);
        } else {
            self.resume_all();
        }
    }

    fn arm_token_timers(&mut self) {
        let (stale_at, hard_at) = {
            let t = self.current();
            (t.stale_at, t.hard_at)
        };
        match stale_at {
            Some(at) if stale_at != hard_at => self.timers.set(Timer::StaleWindow, at),
            _ => self.timers.stop(Timer::StaleWindow),
        }
        match hard_at {
            Some(at) => self.timers.set(Timer::Expiry, at),
            None => self.timers.stop(Timer::Expiry),
        }
    }

    fn resume_all(&mut self) {
        let slots = self.waiters.take_all();
        if !slots.is_empty() {
            let credential = self.current().credential.clone();
            self.pending
                .push_back(Pending::Resume { slots, credential });
        }
    }

    fn fail_slots(&mut self, slots: VecDeque<Slot>, error: Error) {
        if !slots.is_empty() {
            self.pending.push_back(Pending::Fail { slots, error });
        }
    }

    fn push(&mut self, command: Command) {
        self.pending.push_back(Pending::One(command));
    }

    // ---- the store queue ------------------------------------------------------------------

    fn release_lease(&mut self) {
        if let Some((lineage, id)) = self.lease.take() {
            self.want(Op::Release(lineage, id));
        }
    }

    fn want(&mut self, op: Op) {
        self.wanted.push_back(Wanted {
            op,
            episode: self.episode,
        });
        self.issue();
    }

    /// Hands the next wanted operation to the store, if it is free.
    fn issue(&mut self) {
        while self.issued.is_none() {
            let Some(wanted) = self.wanted.pop_front() else {
                return;
            };
            let episodic = matches!(
                wanted.op,
                Op::Lease | Op::Read { .. } | Op::Save(_) | Op::Check
            );
            if episodic && wanted.episode != self.episode {
                continue;
            }
            let Some((op, writes)) = self.command_for(&wanted.op) else {
                continue;
            };
            self.next_store_op += 1;
            let id = StoreOpId(self.next_store_op);
            self.issued = Some(Issued { id, wanted, writes });
            self.push(Command::Store { id, op });
        }
    }

    /// The command for a wanted operation, with what the store knows now; `None` if there
    /// is nothing to do any more.
    fn command_for(&self, op: &Op) -> Option<(StoreCommand, Option<(Lineage, u64)>)> {
        let expect = |lineage: Lineage, version: Option<u64>| match version {
            Some(v) => Expect::Version(lineage, v),
            None => Expect::Absent,
        };
        let next = |version: Option<u64>| version.map_or(1, |v| v.saturating_add(1));
        let write = |expect, lineage, version, entry| {
            let record = Box::new(Record {
                lineage,
                version,
                entry,
            });
            Some((
                StoreCommand::Write { expect, record },
                Some((lineage, version)),
            ))
        };
        match op {
            Op::Lease => Some((
                StoreCommand::Lease {
                    lineage: self.lineage?,
                    ttl: self
                        .config
                        .refresh_deadline
                        .saturating_add(self.config.lease_margin),
                },
                None,
            )),
            Op::Read { .. } | Op::Check => Some((StoreCommand::Read, None)),
            Op::Save(tokens) => {
                let lineage = self.lineage?;
                let expect = if planted(Bug::SaveOverTombstone) {
                    Expect::Any
                } else {
                    expect(lineage, self.version)
                };
                write(
                    expect,
                    lineage,
                    next(self.version),
                    Entry::Tokens(tokens.stored()),
                )
            }
            Op::Login(lineage, tokens) => {
                write(Expect::Any, *lineage, 1, Entry::Tokens((**tokens).clone()))
            }
            Op::Tombstone {
                reason,
                lineage,
                version,
            } => {
                // The latest version known for the lineage: a write queued before this
                // one may have moved it.
                let version = if self.lineage == Some(*lineage) {
                    self.version
                } else {
                    *version
                };
                write(
                    expect(*lineage, version),
                    *lineage,
                    next(version),
                    Entry::LoggedOut(*reason),
                )
            }
            Op::Release(lineage, lease) => Some((
                StoreCommand::Release {
                    lineage: *lineage,
                    lease: *lease,
                },
                None,
            )),
        }
    }
}

fn next_live(slots: &mut VecDeque<Slot>) -> Option<Slot> {
    while let Some(s) = slots.pop_front() {
        if s.live {
            return Some(s);
        }
    }
    None
}
