//! The drive loop: the core behind a short mutex, its effects carried out outside it, the
//! request loop, refreshes on the calling thread, and timers without a timer thread.
//!
//! Timers: there is no background thread. Every admission first fires the session's due
//! deadlines (`Hub::timeout`, a no-op when nothing is due), and a parked request does not
//! sleep past the session's next deadline: whichever parked thread wakes first fires it,
//! and if that starts a refresh (a backoff retry), it performs the refresh itself. When an
//! input moves the next deadline earlier than the one the parked threads went to sleep
//! with (a refresh failed and a backoff retry is due soon), they are nudged to re-read it.

use crate::body::ByHand;
use crate::error::Error;
use crate::events::Events;
use crate::source::Source;
use crate::wait::{Outcome, Waiter, Woke};
use http::{HeaderValue, Uri};
use reauth_core::driver::{run_refresh, Effects, Hub, Next, StoreOp};
use reauth_core::{
    Attempt, Event, Origin, RefreshError, RefreshErrorKind, RefreshId, RefreshOutcome,
    RefreshToken, RefreshTrigger, Session, TokenStore, WaiterId,
};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, trace, warn};
use ureq::http::Response;
use ureq::Body;

type Wake = Arc<Waiter>;

/// Extra time a parked request waits beyond the session's own waiter deadline. The session
/// fails the waiter first; this only guards against a bug leaving it parked forever.
const WAIT_SLACK: Duration = Duration::from_secs(5);

/// Used when `now + d` does not fit in an `Instant`.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A response, and whether its final hop carried the session's credential (only then does
/// its status say anything about the token).
pub(crate) struct Sent {
    pub(crate) response: Response<Body>,
    pub(crate) authorized: bool,
}

/// How one request reaches the network: the wrapper (which can send a request again), or
/// the rest of a ureq middleware chain (which can send it once).
pub(crate) trait Transport {
    /// Where the request goes.
    fn uri(&self) -> &Uri;
    /// True if the request may be sent more than once.
    fn replayable(&self) -> bool;
    /// Sends the request once with the session's credential.
    fn send_authorized(&mut self, credential: &HeaderValue) -> Result<Sent, Error>;
    /// Sends the request once, exactly as the caller built it.
    fn send_anonymous(&mut self) -> Result<Response<Body>, Error>;
    /// Hands an authorized response to the caller (applying `http_status_as_error`).
    fn deliver(&mut self, response: Response<Body>) -> Result<Response<Body>, Error>;
}

/// The hub, and the deadline parked threads were last told about.
struct Core {
    hub: Hub<Wake>,
    /// The session's next deadline after the last input. Parked threads sleep until it at
    /// the latest; if an input moves it earlier, they must hear of it.
    deadline: Option<Instant>,
}

impl Core {
    /// Call after every input. If the next deadline moved earlier, a parked thread may be
    /// asleep past it: nudge them all to re-read it. (The first input that brings the
    /// deadline below what a sleeper read is a move earlier, so no sleeper is missed.)
    fn settle(&mut self) {
        let next = self.hub.session().poll_timeout();
        let earlier = match (next, self.deadline) {
            (Some(next), Some(before)) => next < before,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier && self.hub.parked() > 0 {
            trace!(
                parked = self.hub.parked(),
                "reauth deadline moved earlier: nudging"
            );
            for waiter in self.hub.notifiers() {
                waiter.nudge();
            }
        }
        self.deadline = next;
    }
}

pub(crate) struct Shared {
    core: Mutex<Core>,
    /// Serialises carrying out effects, so store writes land in the order the session
    /// emitted them. Taken before the hub lock is released; never the other way round.
    effects: Mutex<()>,
    store: Arc<dyn TokenStore>,
    events: Events,
    source: Source,
    token_agent: ureq::Agent,
    /// The application's agent, for the wrapper (a middleware sends through its chain).
    pub(crate) http: ureq::Agent,
    /// Where the credential may go, for redirect hops. Fixed at build time, as in the
    /// session's config.
    pub(crate) allowed: Box<[Origin]>,
    /// How the wrapper's sends turn ureq's redirects and status errors off, for `http`.
    pub(crate) by_hand: ByHand,
    /// The session's refresh trigger, fixed at build time: a response it does not fire
    /// for is handed out without taking the lock (the session would answer `Done`).
    trigger: RefreshTrigger,
    refresh_timeout: Duration,
    waiter_timeout: Duration,
    allow_insecure_http: bool,
}

pub(crate) struct Parts {
    pub(crate) session: Session,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) events: Events,
    pub(crate) source: Source,
    pub(crate) token_agent: ureq::Agent,
    pub(crate) http: ureq::Agent,
    pub(crate) allow_insecure_http: bool,
}

impl Shared {
    pub(crate) fn new(parts: Parts) -> Self {
        let config = parts.session.config();
        let (refresh_timeout, waiter_timeout) = (config.refresh_timeout, config.waiter_timeout);
        let allowed = config.allowed_origins.clone().into_boxed_slice();
        let trigger = config.trigger.clone();
        Self {
            core: Mutex::new(Core {
                hub: Hub::new(parts.session),
                deadline: None,
            }),
            effects: Mutex::new(()),
            store: parts.store,
            events: parts.events,
            source: parts.source,
            token_agent: parts.token_agent,
            by_hand: ByHand::new(&parts.http),
            http: parts.http,
            allowed,
            trigger,
            refresh_timeout,
            waiter_timeout,
            allow_insecure_http: parts.allow_insecure_http,
        }
    }

    fn lock_core(&self) -> MutexGuard<'_, Core> {
        // Every critical section leaves the hub consistent, so a panic elsewhere (which
        // poisons the lock) must not take the whole agent down with it.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the hub under the lock, then carries out what it produced outside the
    /// lock: store, wake-ups and events in order, then callbacks, then any refresh the
    /// session asked for, performed on this thread. Returns what `f` returned.
    pub(crate) fn with_hub<R>(&self, f: impl FnOnce(&mut Hub<Wake>, Instant) -> R) -> R {
        let now = Instant::now();
        let mut core = self.lock_core();
        // The phase is only for the log line below: not read unless it can be written.
        let before = tracing::enabled!(tracing::Level::DEBUG).then(|| core.hub.session().phase());
        let result = f(&mut core.hub, now);
        let hub = &mut core.hub;
        if let Some(before) = before {
            let after = hub.session().phase();
            if before != after {
                debug!(from = ?before, to = ?after, generation = hub.session().generation().get(), "reauth phase change");
            }
        }
        if !hub.needs_drain() {
            // The fast path: nothing to carry out.
            core.settle();
            return result;
        }
        let Effects {
            store,
            wake,
            events,
            refreshes,
            ..
        } = hub.drain(now, SystemTime::now);
        core.settle();
        if store.is_empty() && wake.is_empty() && events.is_empty() && refreshes.is_empty() {
            return result;
        }
        let order = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        drop(core);
        // Should a store panic here, the refreshes below are dropped unstarted: the
        // session's refresh timeout then counts them as failed, so nothing hangs.
        self.carry_out(store, wake, &events);
        drop(order);
        // From here on a refresh the session is waiting for is always answered: run, or
        // reported abandoned if this thread unwinds first (a callback or the refresh
        // itself panicking).
        let pending: Vec<PendingRefresh<'_>> = refreshes
            .into_iter()
            .map(|(id, refresh_token)| PendingRefresh {
                shared: self,
                id,
                refresh_token,
                answered: false,
            })
            .collect();
        for event in &events {
            self.events.call(event);
        }
        for refresh in pending {
            refresh.run();
        }
        result
    }

    fn carry_out(&self, store: Vec<StoreOp>, wake: Vec<(Wake, Outcome)>, events: &[Event]) {
        for op in store {
            if let Err(e) = op.apply(self.store.as_ref()) {
                warn!(error = %e, "reauth token store failed");
            }
        }
        for (waiter, outcome) in wake {
            waiter.answer(outcome);
        }
        for event in events {
            if event.is_problem() {
                warn!("reauth {event}");
            } else {
                info!("reauth {event}");
            }
            self.events.send(event);
        }
    }

    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn snapshot(&self) -> reauth_core::Snapshot {
        self.lock_core().hub.session().snapshot()
    }

    /// Sends a request through the session: attach the credential, replay after a refresh,
    /// hand back the final response.
    pub(crate) fn run(&self, transport: &mut impl Transport) -> Result<Response<Body>, Error> {
        let replayable = transport.replayable();
        let uri = transport.uri();
        let mut step = self.with_hub(|hub, now| {
            // No timer thread: fire what is due (a backoff retry, the stale window, the
            // expiry) before admitting. Cheap when nothing is due: the session keeps its
            // earliest timer at hand.
            hub.timeout(now);
            let next = hub.begin(now, uri);
            self.park(hub, next, now)
        });
        loop {
            step = match step {
                Step::Go(Next::Send(attempt)) => {
                    trace!(
                        generation = attempt.generation().get(),
                        replay = attempt.is_replay(),
                        "reauth sending"
                    );
                    let sent = transport.send_authorized(attempt.header_value())?;
                    // Redirected to an origin that got no credential: its status says
                    // nothing about the token. Or the common case, a status the trigger
                    // ignores: what the session would answer, without the lock.
                    if !sent.authorized
                        || !self
                            .trigger
                            .fires(sent.response.status(), sent.response.headers())
                    {
                        return transport.deliver(sent.response);
                    }
                    match self.respond(&attempt, sent.response, replayable) {
                        Ok(response) => return transport.deliver(response),
                        Err(step) => step,
                    }
                }
                Step::Go(Next::SendAnonymous) => {
                    trace!("reauth sending without credential: origin not allowed");
                    return transport.send_anonymous();
                }
                Step::Go(Next::Fail(e)) => return Err(e.into()),
                Step::Parked(parked) => Step::Go(self.wait(parked)?),
                Step::Go(_) => return Err(Error::Disconnected),
            };
        }
    }

    /// Tells the session about a response the trigger fires for. Returns the response if
    /// the caller gets it, else what to do instead. Why a function of its own: it is the
    /// rare path, and kept out of `run` it leaves the common one smaller.
    #[inline(never)]
    fn respond(
        &self,
        attempt: &Attempt,
        response: Response<Body>,
        replayable: bool,
    ) -> Result<Response<Body>, Step<'_>> {
        let step = self.with_hub(|hub, now| {
            let next = hub.respond(
                now,
                attempt,
                response.status(),
                response.headers(),
                replayable,
            );
            self.park(hub, next, now)
        });
        if matches!(step, Step::Go(Next::Deliver)) {
            return Ok(response);
        }
        trace!(
            status = response.status().as_u16(),
            "reauth response needs a refresh or replay"
        );
        // Not handed out: dropping it closes its connection rather than reading a body
        // that might never come.
        drop(response);
        Err(step)
    }

    /// Registers the notifier of a request told to wait, under the same lock as the input
    /// that said so. Always inlined: every other answer then passes through without a
    /// call (and a copy of the answer).
    #[inline(always)]
    fn park<'s>(&'s self, hub: &mut Hub<Wake>, next: Next, now: Instant) -> Step<'s> {
        match next {
            Next::Wait(waiter) => Step::Parked(self.parked(hub, waiter, now)),
            other => Step::Go(other),
        }
    }

    fn parked<'s>(&'s self, hub: &mut Hub<Wake>, waiter: WaiterId, now: Instant) -> Parked<'s> {
        let notifier = Arc::new(Waiter::default());
        hub.register(waiter, notifier.clone());
        let deadline = now
            .checked_add(self.waiter_timeout)
            .or_else(|| now.checked_add(FAR))
            .unwrap_or(now);
        Parked {
            shared: self,
            waiter,
            notifier,
            give_up: deadline.checked_add(WAIT_SLACK).unwrap_or(deadline),
            open: true,
        }
    }

    /// Blocks until the session resumes or fails the parked request. Never sleeps past the
    /// session's next deadline: on waking for one, fires it (which may resolve this very
    /// request, or start a refresh that this thread then performs). A nudge (the deadline
    /// moved earlier) just makes it read the deadline again.
    fn wait(&self, mut parked: Parked<'_>) -> Result<Next, Error> {
        trace!(waiter = %parked.waiter, "reauth waiting for refresh");
        loop {
            let next_deadline = self.lock_core().hub.session().poll_timeout();
            let wake_at = next_deadline.map_or(parked.give_up, |at| at.min(parked.give_up));
            match parked.notifier.wait_until(wake_at) {
                Woke::Answered(outcome) => {
                    parked.open = false;
                    return Ok(resolved(outcome));
                }
                Woke::Recheck => {}
                Woke::Due if Instant::now() >= parked.give_up => {
                    parked.cancel();
                    // The answer may have raced the cancellation.
                    return Ok(parked
                        .notifier
                        .try_take()
                        .map_or(Next::Fail(reauth_core::Error::Timeout), resolved));
                }
                Woke::Due => self.with_hub(|hub, now| hub.timeout(now)),
            }
        }
    }

    fn refresh(&self, id: RefreshId, refresh_token: Option<RefreshToken>) -> RefreshOutcome {
        let span = tracing::info_span!("reauth.refresh", id = %id);
        let _entered = span.enter();
        debug!("refresh started");
        let outcome = self.source.refresh(
            &self.token_agent,
            refresh_token,
            self.allow_insecure_http,
            self.refresh_timeout,
        );
        debug!(
            success = matches!(outcome, RefreshOutcome::Success(_)),
            "refresh finished"
        );
        outcome
    }
}

fn resolved(result: Outcome) -> Next {
    match result {
        Ok(attempt) => Next::Send(attempt),
        Err(e) => Next::Fail(e),
    }
}

/// A `Next`, or a parked request with its receiver.
enum Step<'s> {
    Go(Next),
    Parked(Parked<'s>),
}

/// A request parked on the session. If it goes away unresolved (its thread unwinds), the
/// session forgets it.
struct Parked<'s> {
    shared: &'s Shared,
    waiter: WaiterId,
    notifier: Arc<Waiter>,
    /// The session's own deadline for this waiter, plus slack.
    give_up: Instant,
    open: bool,
}

impl Parked<'_> {
    fn cancel(&mut self) {
        if std::mem::take(&mut self.open) {
            // Cancelling emits no command, so no effects to carry out. While unwinding the
            // hub lock may be held further up this very thread: never block on it then.
            let core = if std::thread::panicking() {
                self.shared.core.try_lock().ok()
            } else {
                Some(self.shared.lock_core())
            };
            if let Some(mut core) = core {
                core.hub.cancel(self.waiter);
                core.settle();
            }
        }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A refresh the session asked this thread to perform. Dropped without an answer (the
/// thread unwinds, e.g. a refresh closure panics), it reports the refresh abandoned, a
/// transient failure: the waiters are not stranded and the next try comes after a backoff.
struct PendingRefresh<'s> {
    shared: &'s Shared,
    id: RefreshId,
    refresh_token: Option<RefreshToken>,
    answered: bool,
}

impl PendingRefresh<'_> {
    fn run(mut self) {
        let (shared, id) = (self.shared, self.id);
        // Under the store's refresh lock (a no-op for stores not shared between
        // processes): adopt another process's rotation, or refresh and save before
        // unlocking. A panic in the refresh unwinds through the lock guard, releasing it.
        let done = run_refresh(
            &*shared.store,
            self.refresh_token.take(),
            shared.refresh_timeout,
            SystemTime::now,
            |rt| shared.refresh(id, rt),
        );
        self.answered = true;
        shared.with_hub(|hub, now| hub.refresh_finished(now, id, done));
    }
}

impl Drop for PendingRefresh<'_> {
    fn drop(&mut self) {
        if !self.answered {
            warn!(id = %self.id, "reauth refresh abandoned: the refreshing thread unwound");
            let outcome = RefreshOutcome::Failed(
                RefreshError::transient(RefreshErrorKind::Abandoned)
                    .with_detail("the thread performing the refresh unwound"),
            );
            let id = self.id;
            self.shared
                .with_hub(|hub, now| hub.refresh_done(now, id, outcome));
        }
    }
}
