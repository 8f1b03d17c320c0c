//! The session: the whole token lifecycle machine and every transition it makes.
//!
//! Methods come in four kinds, as in quinn-proto's `Connection`:
//! - getters (`phase`, `generation`, `is_allowed`, …) read state;
//! - mutators (`login`, `logout`, `begin_request`, `cancel`) carry the application's
//!   wishes;
//! - `handle_*` carry what the outside world did (a response arrived, a refresh finished, a
//!   deadline passed);
//! - `poll_*` hand out the work that follows.

use crate::command::{Admission, Command, Event, RefreshOutcome, Verdict};
use crate::config::Config;
use crate::credential::{Attempt, Credential};
use crate::error::{Error, LogoutReason, RefreshError, RefreshErrorKind};
use crate::ids::{Generation, RefreshId, WaiterId};
use crate::jitter::Jitter;
use crate::origin::Target;
use crate::state::{Background, Phase, Snapshot, State, Tokens};
use crate::timer::{Timer, TimerTable};
use crate::token::TokenSet;
use crate::waiters::{cancel_in, Slot, Waiters};
use http::{HeaderMap, StatusCode};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Used when `now + d` does not fit in an `Instant`: far enough to never fire.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

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

/// A token session: the sans-IO state machine that keeps one set of tokens fresh for any
/// number of concurrent requests. See the [crate docs](crate) for the drive loop.
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: State,
    tokens: Option<Tokens>,
    generation: u64,
    next_waiter: u64,
    next_refresh: u64,
    /// Consecutive transient failures in the current refresh episode.
    attempts: u32,
    waiters: Waiters,
    timers: TimerTable,
    pending: VecDeque<Pending>,
    jitter: Jitter,
    /// The latest `now` seen. Time that goes backwards is treated as this.
    now: Option<Instant>,
}

impl Session {
    /// A session in the [`Phase::Empty`] phase.
    pub fn new(config: Config) -> Self {
        Self {
            jitter: Jitter::new(config.seed),
            config,
            state: State::Empty,
            tokens: None,
            generation: 0,
            next_waiter: 0,
            next_refresh: 0,
            attempts: 0,
            waiters: Waiters::default(),
            timers: TimerTable::default(),
            pending: VecDeque::new(),
            now: None,
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
        }
    }

    // ---- mutators: the application's wishes ------------------------------------------

    /// Installs a new token set (after a login, or loaded from a store) and resumes any
    /// queued requests with it. An in-flight refresh is abandoned: its outcome will be
    /// ignored. Emits [`Command::Persist`].
    pub fn login(&mut self, now: Instant, tokens: TokenSet) {
        let now = self.clock(now);
        self.timers.stop_all();
        self.attempts = 0;
        self.install(now, tokens, false);
        self.state = State::Valid {
            background: Background::Idle,
        };
        self.arm_token_timers();
        self.push(Command::Persist(Box::new(self.current().stored())));
        if self.current().hard_at.is_some_and(|at| at <= now) {
            // Already expired (e.g. loaded from a store after a long pause): refresh
            // first, and let the queued requests wait for it.
            self.need_token(now);
        } else {
            self.resume_all();
        }
    }

    /// Logs out: fails every queued request, forgets the tokens (emits
    /// [`Command::Forget`]) and emits [`Event::LoggedOut`]. Nothing is sent with a token
    /// until the next [`login`](Self::login). Logging out twice does nothing more.
    pub fn logout(&mut self, now: Instant) {
        self.clock(now);
        if !matches!(self.state, State::LoggedOut { .. }) {
            self.log_out(LogoutReason::Requested);
        }
    }

    /// Asks to send a request to `uri`. The answer is immediate: send now with a
    /// credential, wait for a refresh as a waiter, send without a credential (origin not
    /// allowed), or do not send.
    pub fn begin_request<T: Target + ?Sized>(&mut self, now: Instant, uri: &T) -> Admission {
        let now = self.clock(now);
        if !self.is_allowed(uri) {
            return Admission::Anonymous;
        }
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

    /// A request sent with `attempt` got a response. Decides whether the caller gets the
    /// response, replays it, waits for a refresh, or fails.
    pub fn handle_response(
        &mut self,
        now: Instant,
        attempt: &Attempt,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Verdict {
        if !self.config.trigger.fires(status, headers) {
            return Verdict::Done;
        }
        let now = self.clock(now);
        if attempt.is_replay() {
            // Rule 3: one replay per request. A fresh token that is refused again would
            // only loop.
            return Verdict::Fail(Error::Unauthorized);
        }
        if attempt.generation().0 == self.generation {
            // The current token is bad: start (or join) a refresh.
            if matches!(self.state, State::Valid { .. } | State::Expired) {
                self.need_token(now);
            }
        }
        // A stale 401 (an older token) simply tries again with whatever is current.
        match self.admit(now, true) {
            Admit::Send(a) => Verdict::Replay(a),
            Admit::Wait(w) => Verdict::Wait(w),
            Admit::Reject(e) => Verdict::Fail(e),
        }
    }

    /// Refresh `id` finished. Outcomes for a refresh that is no longer awaited (it timed
    /// out, another one replaced it, the session logged in or out meanwhile) are ignored.
    pub fn handle_refresh(&mut self, now: Instant, id: RefreshId, outcome: RefreshOutcome) {
        let now = self.clock(now);
        if self.state.refresh_in_flight() != Some(id) {
            return;
        }
        self.timers.stop(Timer::RefreshTimeout);
        match outcome {
            RefreshOutcome::Success(tokens) => self.refreshed(now, tokens),
            RefreshOutcome::Failed(error) => self.refresh_failed(now, error),
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

    // ---- transitions ----------------------------------------------------------------

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
            State::Valid { .. } | State::Expired => {
                unreachable!("need_token leaves Valid and Expired")
            }
        }
    }

    /// The current token may no longer be sent: move to a phase that gets a new one.
    fn need_token(&mut self, now: Instant) {
        self.timers.stop(Timer::StaleWindow);
        self.timers.stop(Timer::Expiry);
        self.state = match self.state {
            State::Valid {
                background: Background::InFlight(id),
            } => State::Refreshing { id },
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
                    id: self.start_refresh(now),
                }
            }
            ref other => other.clone(),
        };
    }

    fn start_background(&mut self, now: Instant) {
        if self.can_refresh() {
            self.attempts = 0;
            let id = self.start_refresh(now);
            self.state = State::Valid {
                background: Background::InFlight(id),
            };
        }
    }

    fn start_refresh(&mut self, now: Instant) -> RefreshId {
        self.next_refresh += 1;
        let id = RefreshId(self.next_refresh);
        self.timers.set(
            Timer::RefreshTimeout,
            later(now, self.config.refresh_timeout),
        );
        let refresh_token = self.tokens.as_ref().and_then(|t| t.refresh.clone());
        self.push(Command::StartRefresh { id, refresh_token });
        id
    }

    fn enqueue(&mut self, now: Instant, replay: bool) -> WaiterId {
        self.next_waiter += 1;
        let deadline = later(now, self.config.waiter_timeout);
        self.waiters.push(self.next_waiter, deadline, replay);
        WaiterId(self.next_waiter)
    }

    fn refreshed(&mut self, now: Instant, tokens: TokenSet) {
        self.attempts = 0;
        self.install(now, tokens, true);
        self.state = State::Valid {
            background: Background::Idle,
        };
        self.timers.stop(Timer::Backoff);
        self.arm_token_timers();
        let t = self.current();
        let (persist, expires_at) = (t.stored(), t.expires_at);
        // Rule 9: persist before anyone uses the new tokens.
        self.push(Command::Persist(Box::new(persist)));
        self.push(Command::Event(Event::Refreshed {
            generation: self.generation(),
            expires_at,
        }));
        self.resume_all();
    }

    fn refresh_failed(&mut self, now: Instant, error: RefreshError) {
        if error.is_permanent() {
            self.log_out(LogoutReason::RefreshRejected(Arc::new(error)));
            return;
        }
        self.attempts = self.attempts.saturating_add(1);
        let retry_after = error.retry_after();
        let error = Arc::new(error);
        let background = matches!(self.state, State::Valid { .. });
        if self.attempts >= self.config.backoff.max_attempts.max(1) {
            if background {
                // The token still works: use it until it expires, then try afresh.
                self.state = State::Valid {
                    background: Background::GaveUp,
                };
            } else if self.config.on_exhausted == crate::OnExhausted::LogOut {
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
            (Timer::RefreshTimeout, _) => self.refresh_failed(
                now,
                RefreshError::transient(RefreshErrorKind::Timeout)
                    .with_detail("no answer within the refresh timeout"),
            ),
            (Timer::Backoff, State::Backoff) => {
                self.state = State::Refreshing {
                    id: self.start_refresh(now),
                };
            }
            (
                Timer::Backoff,
                State::Valid {
                    background: Background::Backoff,
                },
            ) => {
                let id = self.start_refresh(now);
                self.state = State::Valid {
                    background: Background::InFlight(id),
                };
            }
            (
                Timer::StaleWindow,
                State::Valid {
                    background: Background::Idle,
                },
            ) => self.start_background(now),
            (Timer::Expiry, State::Valid { .. }) => self.need_token(now),
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
        self.tokens = None;
        self.timers.stop_all();
        self.attempts = 0;
        self.state = State::LoggedOut {
            reason: reason.clone(),
        };
        self.push(Command::Forget);
        let slots = self.waiters.take_all();
        self.fail_slots(slots, Error::LoggedOut(reason.clone()));
        self.push(Command::Event(Event::LoggedOut { reason }));
    }

    /// Makes `tokens` current under a new generation. A set without a refresh token keeps
    /// the old one (rule 9).
    fn install(&mut self, now: Instant, tokens: TokenSet, from_refresh: bool) {
        let (access, refresh, expires_in, scope) = tokens.into_parts();
        let old = self.tokens.take();
        let refresh = if from_refresh {
            refresh.or_else(|| old.as_ref().and_then(|t| t.refresh.clone()))
        } else {
            refresh
        };
        let scope = scope.or_else(|| old.and_then(|t| t.scope).filter(|_| from_refresh));
        self.generation += 1;
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
        self.tokens = Some(Tokens {
            credential: Credential::new(&access, Generation(self.generation)),
            access,
            refresh,
            scope,
            expires_at,
            stale_at,
            hard_at,
        });
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
}

fn next_live(slots: &mut VecDeque<Slot>) -> Option<Slot> {
    while let Some(s) = slots.pop_front() {
        if s.live {
            return Some(s);
        }
    }
    None
}
