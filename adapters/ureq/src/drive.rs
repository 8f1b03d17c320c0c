//! The drive loop on the calling threads: the request loop, refreshes and store operations
//! on the thread that was asked for them, and timers without a timer thread. Everything
//! that is not I/O comes from `reauth_drive`.
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
use reauth_core::{
    Attempt, Event, Origin, RefreshError, RefreshErrorKind, RefreshId, RefreshOutcome,
    RefreshTrigger, Session, StoreCommand, StoreOpId, TokenStore, WaiterId,
};
use reauth_drive::{carry_out, Changes, Drive, Hub, Io, Next, Refresh};
use std::io::Read;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, trace, warn};
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

pub(crate) struct Shared {
    hub: Hub<Wake>,
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
        let waiter_timeout = config.waiter_timeout;
        let allowed = config.allowed_origins.clone().into_boxed_slice();
        let trigger = config.trigger.clone();
        Self {
            hub: Hub::new(parts.session),
            store: parts.store,
            events: parts.events,
            source: parts.source,
            token_agent: parts.token_agent,
            by_hand: ByHand::new(&parts.http),
            http: parts.http,
            allowed,
            trigger,
            waiter_timeout,
            allow_insecure_http: parts.allow_insecure_http,
        }
    }

    /// Feeds the session an input under the lock, then carries out what it produced
    /// outside it: wake-ups and events, then any store operation and refresh the session
    /// asked for, performed on this thread. Returns what `f` returned.
    pub(crate) fn with_hub<R>(&self, f: impl FnOnce(&mut Drive<Wake>, Instant) -> R) -> R {
        let (result, work) = self.hub.with(f);
        if let Some(work) = work {
            if work.deadline_earlier {
                // A parked thread may be asleep past the new deadline: make them all
                // read it again.
                self.hub.peek(|d| d.notifiers().for_each(|w| w.nudge()));
            }
            work.carry_out(&Inline(self));
        }
        result
    }

    /// Hands other writers' changes to the session. The handler holds the state weakly
    /// (the store lives inside it); the work it causes (a re-read, an adoption, waking
    /// parked threads) runs on the store's own thread, as a mutator's runs on its
    /// caller's.
    pub(crate) fn watch_store(self: &Arc<Self>, changes: &Changes) {
        let weak = Arc::downgrade(self);
        changes.attach(Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.with_hub(|d, now| d.session.handle_changed(now));
            }
        }));
    }

    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn snapshot(&self) -> reauth_core::Snapshot {
        self.hub.peek(|d| d.session.snapshot())
    }

    /// Sends a request through the session: attach the credential, replay after a refresh,
    /// hand back the final response.
    pub(crate) fn run(&self, transport: &mut impl Transport) -> Result<Response<Body>, Error> {
        let replayable = transport.replayable();
        let uri = transport.uri();
        let mut step = self.with_hub(|d, now| {
            // No timer thread: fire what is due (a backoff retry, the stale window, the
            // expiry) before admitting. Cheap when nothing is due: the session keeps its
            // earliest timer at hand.
            d.session.handle_timeout(now);
            let next = d.begin_request(now, uri).into();
            self.step(d, next, now)
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
                Step::Go(Next::Deliver | Next::Wait(_)) => return Err(Error::Disconnected),
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
        let step = self.with_hub(|d, now| {
            let verdict = d.session.handle_response(
                now,
                attempt,
                response.status(),
                response.headers(),
                replayable,
            );
            self.step(d, verdict.into(), now)
        });
        if matches!(step, Step::Go(Next::Deliver)) {
            return Ok(response);
        }
        trace!(
            status = response.status().as_u16(),
            "reauth response needs a refresh or replay"
        );
        discard(response);
        Err(step)
    }

    /// A `Next`, with the notifier registered under the same lock when it says wait.
    fn step<'s>(&'s self, d: &mut Drive<Wake>, next: Next, now: Instant) -> Step<'s> {
        match next {
            Next::Wait(w) => Step::Parked(self.parked(d, w, now)),
            other => Step::Go(other),
        }
    }

    /// Registers the notifier of a request told to wait, under the same lock as the input
    /// that said so.
    fn parked<'s>(&'s self, d: &mut Drive<Wake>, waiter: WaiterId, now: Instant) -> Parked<'s> {
        let notifier = Arc::new(Waiter::default());
        d.park(waiter, notifier.clone());
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
            let next_deadline = self.hub.peek(|d| d.session.poll_timeout());
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
                Woke::Due => self.with_hub(|d, now| d.session.handle_timeout(now)),
            }
        }
    }

    fn refresh(&self, refresh: &mut Refresh) -> RefreshOutcome {
        let span = tracing::info_span!("reauth.refresh", id = %refresh.id);
        let _entered = span.enter();
        debug!("refresh started");
        // The session waits for this answer however late (a rotation may be in it), up
        // to the deadline it set; ureq's own timeout enforces that for the HTTP call.
        let budget = refresh.deadline.saturating_duration_since(Instant::now());
        let outcome = self.source.refresh(
            &self.token_agent,
            refresh.refresh_token.take(),
            self.allow_insecure_http,
            budget,
        );
        debug!(
            success = matches!(outcome, RefreshOutcome::Success(_)),
            "refresh finished"
        );
        outcome
    }
}

/// The session's work, done on the calling thread.
struct Inline<'s>(&'s Shared);

impl Io for Inline<'_> {
    type Notifier = Wake;

    fn wake(&self, waiter: Wake, outcome: Outcome) {
        waiter.answer(outcome);
    }

    fn publish(&self, event: Event) {
        self.0.events.send(&event);
        self.0.events.call(&event);
    }

    fn store(&self, id: StoreOpId, op: StoreCommand) {
        let outcome = carry_out(&*self.0.store, &op);
        self.0
            .with_hub(|d, now| d.session.handle_store(now, SystemTime::now(), id, outcome));
    }

    fn refresh(&self, refresh: Refresh) {
        // From here on the refresh is always answered: run, or reported abandoned if this
        // thread unwinds first (the refresh closure panicking).
        PendingRefresh {
            shared: self.0,
            refresh,
            answered: false,
        }
        .run();
    }
}

/// Reads and drops the body of a response that will not reach the caller (a 401 about to
/// be replayed), so its connection goes back to the pool for the replay: dropped unread,
/// ureq closes it, and a storm opens a second connection for every replay. Only a body
/// whose `Content-Length` says it is small is read, so this takes no longer than the
/// one or two packets it came with (and never longer than the agent's own receive
/// timeouts); any other is dropped, closing its connection, rather than waiting for a
/// body that may never end.
fn discard(response: Response<Body>) {
    const LIMIT: u64 = 64 * 1024;
    let small = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len <= LIMIT);
    if small {
        let mut body = response.into_body();
        let _ = std::io::copy(&mut body.as_reader().take(LIMIT), &mut std::io::sink());
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
            let waiter = self.waiter;
            if std::thread::panicking() {
                let _ = self.shared.hub.try_with(|d| d.cancel(waiter));
            } else {
                self.shared.with_hub(|d, _| d.cancel(waiter));
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
    refresh: Refresh,
    answered: bool,
}

impl PendingRefresh<'_> {
    fn run(mut self) {
        let (shared, id) = (self.shared, self.refresh.id);
        let outcome = shared.refresh(&mut self.refresh);
        self.answered = true;
        shared.with_hub(|d, now| d.session.handle_refresh(now, id, outcome));
    }
}

impl Drop for PendingRefresh<'_> {
    fn drop(&mut self) {
        if !self.answered {
            warn!(id = %self.refresh.id, "reauth refresh abandoned: the refreshing thread unwound");
            let outcome = RefreshOutcome::Failed(
                RefreshError::transient(RefreshErrorKind::Abandoned)
                    .with_detail("the thread performing the refresh unwound"),
            );
            let id: RefreshId = self.refresh.id;
            self.shared
                .with_hub(|d, now| d.session.handle_refresh(now, id, outcome));
        }
    }
}
