//! The drive loop over tokio: the request loop, the refresh and store tasks, the timer
//! task. Everything that is not I/O comes from `reauth_drive`.

use crate::error::Error;
use crate::redirect::came_from;
use crate::runtime::Runtimes;
use crate::source::Source;
use crate::template::{Built, Template};
use reauth_core::{
    Attempt, Event, Origin, RefreshError, RefreshErrorKind, RefreshOutcome, Session, StoreCommand,
    StoreError, StoreOpId, TokenStore, WaiterId,
};
use reauth_drive::{carry_out, is_redirect, Drive, Hub, Io, Next, Refresh, UrlTarget};
use reqwest::{Request, Response};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, oneshot, Notify};
use tracing::{debug, trace, Instrument};

type Wake = oneshot::Sender<Result<Attempt, reauth_core::Error>>;

/// Extra time a parked request waits beyond the session's own waiter deadline. The session
/// fails the waiter first; this only guards against a bug leaving it parked forever.
const WAIT_SLACK: Duration = Duration::from_secs(5);

/// How a request reaches the network: the plain client, or the rest of a middleware chain.
pub(crate) trait Transport {
    fn send(&mut self, request: Request) -> impl Future<Output = Result<Response, Error>> + Send;
}

pub(crate) struct Shared {
    hub: Hub<Wake>,
    store: Arc<dyn TokenStore>,
    events: broadcast::Sender<Event>,
    source: Source,
    token_http: reqwest::Client,
    /// Where the timer task runs, and where the session's tasks go.
    runtimes: Runtimes,
    /// Wakes the timer task when an input moved the next deadline earlier.
    timer: Arc<Notify>,
    waiter_timeout: Duration,
    /// The session's refresh trigger, fixed at build time: a response it does not fire
    /// for is delivered without taking the lock, as the session would answer anyway.
    trigger: reauth_core::RefreshTrigger,
    allow_insecure_http: bool,
    /// Where the credential may go, for redirect hops. Fixed at build time, as in the
    /// session's config.
    pub(crate) allowed: Box<[Origin]>,
    /// How many redirects a request follows; 0 for none (the 3xx is the answer).
    pub(crate) max_redirects: usize,
}

pub(crate) struct Parts {
    pub(crate) session: Session,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) source: Source,
    pub(crate) token_http: reqwest::Client,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) allow_insecure_http: bool,
    pub(crate) max_redirects: usize,
}

impl Shared {
    pub(crate) fn start(parts: Parts) -> Arc<Self> {
        let config = parts.session.config();
        let waiter_timeout = config.waiter_timeout;
        let trigger = config.trigger.clone();
        let allowed = config.allowed_origins.clone().into_boxed_slice();
        let shared = Arc::new(Self {
            hub: Hub::new(parts.session),
            store: parts.store,
            events: broadcast::channel(64).0,
            source: parts.source,
            token_http: parts.token_http,
            runtimes: Runtimes::new(),
            timer: Arc::new(Notify::new()),
            waiter_timeout,
            trigger,
            allow_insecure_http: parts.allow_insecure_http,
            allowed,
            max_redirects: parts.max_redirects,
        });
        shared.start_timer(&parts.runtime);
        // Taking the session up from the store may have left work (an expired token).
        shared.with_hub(|_, _| ());
        shared
    }

    /// Starts the timer task on `runtime`, unless one is alive.
    fn start_timer(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        if let Some(run) = self.runtimes.claim(runtime) {
            // Moved into the task's future, so it reports the end of the run even if the
            // future is dropped unpolled (a runtime that is shutting down).
            let ended = TimerRun {
                shared: Arc::downgrade(self),
                run,
            };
            let (weak, timer) = (Arc::downgrade(self), self.timer.clone());
            runtime.spawn(async move {
                let _ended = ended;
                drive_timers(weak, timer).await;
            });
        }
    }

    /// Makes sure a timer task runs, starting it on the caller's runtime if the one it ran
    /// on is gone. Fails without any runtime to start it on.
    fn ensure_timer(self: &Arc<Self>) -> Result<(), Error> {
        if self.runtimes.timer_alive() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        self.start_timer(&runtime);
        Ok(())
    }

    /// Feeds the session an input under the lock, then carries out what it produced
    /// outside the lock. Returns what `f` returned.
    pub(crate) fn with_hub<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Drive<Wake>, Instant) -> R,
    ) -> R {
        self.with_hub_io(false, f)
    }

    /// As [`with_hub`](Self::with_hub), for the application's own calls (login, logout):
    /// their store write is done before the call returns, so a program that exits right
    /// after a logout leaves the tombstone behind.
    pub(crate) fn with_hub_now<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Drive<Wake>, Instant) -> R,
    ) -> R {
        self.with_hub_io(true, f)
    }

    fn with_hub_io<R>(
        self: &Arc<Self>,
        inline: bool,
        f: impl FnOnce(&mut Drive<Wake>, Instant) -> R,
    ) -> R {
        let (result, work) = self.hub.with(f);
        if let Some(work) = work {
            let earlier = work.deadline_earlier;
            work.carry_out(&Tasks {
                shared: self,
                inline,
            });
            if earlier {
                self.timer.notify_one();
            }
        }
        result
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn snapshot(&self) -> reauth_core::Snapshot {
        self.hub.peek(|d| d.session.snapshot())
    }

    /// Sends `request` through the session: attach the credential, follow redirects,
    /// replay after a refresh, hand back the final response.
    ///
    /// Only the common case lives here (a credential at hand, a response that is neither
    /// a redirect nor one the refresh trigger fires for); every other path is boxed, so
    /// this future, which callers move around, stays small.
    // Not an `async fn`: rustc then keeps a second copy of the request in the future,
    // and every request's future is built and moved.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run(
        self: Arc<Self>,
        request: Request,
        built: Built,
        mut transport: impl Transport,
    ) -> impl Future<Output = Result<Response, Error>> {
        // Nothing happens until the first poll, as with any future.
        async move {
            // The runtime the client was built on may be gone: then this request's is the
            // one to fire the session's deadlines.
            self.ensure_timer()?;
            let template = Template::of(built, &request);
            let step = self.with_hub(|d, now| {
                let admission = d.begin_request(now, &UrlTarget(request.url()));
                step(d, admission.into())
            });
            let Step::Go(Next::Send(attempt)) = step else {
                let rest = self.resolve(step, Some(request), template, &mut transport);
                return Box::pin(rest).await;
            };
            let response = send(&attempt, request, &mut transport).await?;
            came_from(template.url(), &response)?;
            let status = response.status();
            if !is_redirect(status) && !self.trigger.fires(status, response.headers()) {
                return Ok(response);
            }
            Box::pin(async move {
                match self
                    .settle(&attempt, response, &template, &mut transport)
                    .await?
                {
                    Ok(response) => Ok(response),
                    Err(step) => self.resolve(step, None, template, &mut transport).await,
                }
            })
            .await
        }
    }

    /// Carries a request on from `step` (a wait, a replay, a failure) to its end. Boxed by
    /// its callers; what it waits on in turn (a refresh, a body to drain) is boxed here,
    /// so that every waiter of a storm holds no more than it needs.
    // Not an `async fn`, for the reason given at `run`: its arguments would be stored
    // twice.
    #[allow(clippy::manual_async_fn)]
    fn resolve<'a>(
        self: &'a Arc<Self>,
        mut step: Step,
        mut first: Option<Request>,
        template: Template,
        transport: &'a mut impl Transport,
    ) -> impl Future<Output = Result<Response, Error>> + 'a {
        async move {
            loop {
                step = match step {
                    Step::Go(Next::Send(attempt)) => {
                        let Some(request) = first.take().or_else(|| template.replay()) else {
                            // Unreachable: a non-replayable request is never told to send
                            // twice.
                            return Err(Error::Disconnected);
                        };
                        let response = send(&attempt, request, transport).await?;
                        came_from(template.url(), &response)?;
                        let settled = self.settle(&attempt, response, &template, transport);
                        match Box::pin(settled).await? {
                            Ok(response) => return Ok(response),
                            Err(step) => step,
                        }
                    }
                    Step::Go(Next::SendAnonymous) => {
                        let request = first.take().ok_or(Error::Disconnected)?;
                        trace!("reauth sending without credential: origin not allowed");
                        let response = transport.send(request).await?;
                        came_from(template.url(), &response)?;
                        if !is_redirect(response.status()) {
                            return Ok(response);
                        }
                        let followed = self.follow(None, response, &template, transport);
                        return Ok(Box::pin(followed).await?.0);
                    }
                    Step::Go(Next::Fail(e)) => return Err(e.into()),
                    Step::Parked(w, rx) => Step::Go(Box::pin(self.wait(w, rx)).await?),
                    Step::Go(Next::Deliver | Next::Wait(_)) => return Err(Error::Disconnected),
                };
            }
        }
    }

    /// After `response` to a request sent with `attempt`'s credential: follows its
    /// redirects, then asks the session about the last response if its hop carried the
    /// credential. `Ok` to hand it to the caller, else the step to take instead (the
    /// response is then set aside).
    async fn settle(
        self: &Arc<Self>,
        attempt: &Attempt,
        response: Response,
        template: &Template,
        transport: &mut impl Transport,
    ) -> Result<Result<Response, Step>, Error> {
        let (response, authorized) = if is_redirect(response.status()) {
            self.follow(Some(attempt), response, template, transport)
                .await?
        } else {
            (response, true)
        };
        if !authorized {
            // A hop that never carried the token: its status says nothing about it.
            return Ok(Ok(response));
        }
        match self.answer(attempt, &response, template.is_whole()) {
            None => Ok(Ok(response)),
            Some(step) => {
                set_aside(response).await;
                Ok(Err(step))
            }
        }
    }

    /// What to do after `response` to a request that carried `attempt`'s credential:
    /// `None` to hand it to the caller, else the step to take instead.
    fn answer(
        self: &Arc<Self>,
        attempt: &Attempt,
        response: &Response,
        replayable: bool,
    ) -> Option<Step> {
        if !self.trigger.fires(response.status(), response.headers()) {
            // The common case, and what the session would answer: no lock.
            return None;
        }
        let step = self.with_hub(|d, now| {
            let verdict = d.session.handle_response(
                now,
                attempt,
                response.status(),
                response.headers(),
                replayable,
            );
            step(d, verdict.into())
        });
        (!matches!(step, Step::Go(Next::Deliver))).then_some(step)
    }

    async fn wait(
        self: &Arc<Self>,
        waiter: WaiterId,
        mut rx: oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    ) -> Result<Next, Error> {
        trace!(%waiter, "reauth waiting for refresh");
        let mut guard = CancelOnDrop {
            shared: self,
            waiter: Some(waiter),
        };
        let patience = self.waiter_timeout.saturating_add(WAIT_SLACK);
        let give_up = tokio::time::sleep(patience);
        tokio::pin!(give_up);
        loop {
            // The deadlines this wait depends on are fired by the timer task: if its
            // runtime goes away meanwhile, this request's runtime takes it over.
            let gone = self.runtimes.gone();
            tokio::pin!(gone);
            gone.as_mut().enable();
            self.ensure_timer()?;
            tokio::select! {
                outcome = &mut rx => {
                    let Ok(result) = outcome else {
                        return Err(Error::Disconnected);
                    };
                    guard.waiter = None;
                    return Ok(match result {
                        Ok(attempt) => Next::Send(attempt),
                        Err(e) => Next::Fail(e),
                    });
                }
                () = &mut give_up => return Ok(Next::Fail(reauth_core::Error::Timeout)),
                () = &mut gone => {}
            }
        }
    }
}

/// Sends `request` with the attempt's credential. Not an `async fn`: that would keep a
/// second copy of the request in every caller's future.
pub(crate) fn send<'t>(
    attempt: &Attempt,
    mut request: Request,
    transport: &'t mut impl Transport,
) -> impl Future<Output = Result<Response, Error>> + Send + 't {
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, attempt.header_value().clone());
    trace!(
        generation = attempt.generation().get(),
        replay = attempt.is_replay(),
        "reauth sending"
    );
    transport.send(request)
}

/// Drops a response that a refresh or a replay supersedes, after reading its body.
async fn set_aside(response: Response) {
    trace!(
        status = response.status().as_u16(),
        "reauth response needs a refresh or replay"
    );
    discard(response).await;
}

/// Reads and drops the body of a response that will not reach the caller (a 401 about to
/// be replayed), bounded in size and time. Dropping it unread would reset its HTTP/2
/// stream, and a storm of such resets makes the client's own h2 layer give up the whole
/// connection (`ENHANCE_YOUR_CALM`, "too_many_internal_resets"); over HTTP/1.1 it would
/// close the connection instead of reusing it.
pub(crate) async fn discard(mut response: Response) {
    const LIMIT: usize = 64 * 1024;
    const PATIENCE: Duration = Duration::from_secs(1);
    let drain = async {
        let mut read = 0;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, drain).await;
}

/// A `Next`, with the receiver registered under the same lock when it says wait.
enum Step {
    Go(Next),
    Parked(
        WaiterId,
        oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    ),
}

fn park(d: &mut Drive<Wake>, waiter: WaiterId) -> Step {
    let (tx, rx) = oneshot::channel();
    d.park(waiter, tx);
    Step::Parked(waiter, rx)
}

/// A `Next`, with the receiver registered under the same lock when it says wait.
fn step(d: &mut Drive<Wake>, next: Next) -> Step {
    match next {
        Next::Wait(w) => park(d, w),
        other => Step::Go(other),
    }
}

/// Tells the session a parked request went away (its future was dropped or it gave up).
struct CancelOnDrop<'a> {
    shared: &'a Arc<Shared>,
    waiter: Option<WaiterId>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.shared.with_hub(|d, _| d.cancel(w));
        }
    }
}

/// Reports the end of a run of the timer task, however it ends.
struct TimerRun {
    shared: Weak<Shared>,
    run: u64,
}

impl Drop for TimerRun {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.runtimes.ended(self.run);
        }
    }
}

/// Fires the session's deadlines (waiter timeouts, refresh timeouts, backoff, proactive
/// refresh). Holds only a weak reference, so it ends when the client is dropped.
async fn drive_timers(shared: Weak<Shared>, timer: Arc<Notify>) {
    loop {
        // Register interest before reading the deadline, or a wake-up could be lost.
        let notified = timer.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let deadline = match shared.upgrade() {
            Some(s) => s.hub.peek(|d| d.session.poll_timeout()),
            None => return,
        };
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {
                        match shared.upgrade() {
                            Some(s) => s.with_hub(|d, now| d.session.handle_timeout(now)),
                            None => return,
                        }
                    }
                    _ = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// The session's store operations and refreshes, each a spawned task: no caller's
/// cancellation can abort them or strand the waiters. `inline` runs a store operation
/// on the calling thread instead (the application's own calls).
struct Tasks<'a> {
    shared: &'a Arc<Shared>,
    inline: bool,
}

impl Io for Tasks<'_> {
    type Notifier = Wake;

    fn wake(&self, wake: Wake, outcome: Result<Attempt, reauth_core::Error>) {
        // A receiver that is gone belongs to a request that was just dropped.
        let _ = wake.send(outcome);
    }

    fn publish(&self, event: Event) {
        // No subscriber is fine: events are informational.
        let _ = self.shared.events.send(event);
    }

    fn store(&self, id: StoreOpId, op: StoreCommand) {
        let shared = self.shared.clone();
        if self.inline {
            let outcome = carry_out(&*shared.store, &op);
            shared.with_hub(|d, now| d.session.handle_store(now, SystemTime::now(), id, outcome));
            return;
        }
        let Some(runtime) = self.shared.runtimes.spawner() else {
            // No runtime anywhere (an application call on a plain thread, after the
            // client's runtimes are gone): this thread may block, so the store runs here.
            let outcome = carry_out(&*shared.store, &op);
            shared.with_hub(|d, now| d.session.handle_store(now, SystemTime::now(), id, outcome));
            return;
        };
        runtime.spawn(async move {
            let store = shared.store.clone();
            // A store may block (a file lock, fsync): off the runtime's workers.
            let outcome = tokio::task::spawn_blocking(move || carry_out(&*store, &op))
                .await
                .unwrap_or_else(|_| Err(StoreError::new("the token store panicked")));
            shared.with_hub(|d, now| d.session.handle_store(now, SystemTime::now(), id, outcome));
        });
    }

    fn refresh(&self, refresh: Refresh) {
        // From here on the refresh is always answered: run, or reported abandoned if the
        // task ends first (the refresh closure panics, the runtime shuts down).
        let pending = PendingRefresh {
            shared: self.shared.clone(),
            id: refresh.id,
            answered: false,
        };
        let span = tracing::info_span!("reauth.refresh", id = %refresh.id);
        let task = async move {
            debug!("refresh started");
            let shared = &pending.shared;
            let call = shared.source.refresh(
                &shared.token_http,
                refresh.refresh_token,
                shared.allow_insecure_http,
            );
            // The session waits for this answer however late (a rotation may be in it),
            // up to the deadline it set.
            let outcome = match tokio::time::timeout_at(refresh.deadline.into(), call).await {
                Ok(outcome) => outcome,
                Err(_) => RefreshOutcome::Failed(
                    RefreshError::transient(RefreshErrorKind::Timeout)
                        .with_detail("no answer by the refresh deadline"),
                ),
            };
            debug!(
                success = matches!(outcome, RefreshOutcome::Success(_)),
                "refresh finished"
            );
            pending.answer(outcome);
        };
        match self.shared.runtimes.spawner() {
            Some(runtime) => drop(runtime.spawn(task.instrument(span))),
            // No runtime to run it on: dropped unrun, the refresh reports itself abandoned
            // (a transient failure), and a later request on a runtime retries it.
            None => drop(task),
        }
    }
}

/// A refresh the session asked for, in its task. Dropped without an answer (a panic in
/// the refresh source unwinds the task, the runtime drops it at shutdown), it reports the
/// refresh abandoned, a transient failure: otherwise the session would hold it in doubt
/// until its deadline, however far off, and every waiter with it.
struct PendingRefresh {
    shared: Arc<Shared>,
    id: reauth_core::RefreshId,
    answered: bool,
}

impl PendingRefresh {
    fn answer(mut self, outcome: RefreshOutcome) {
        self.answered = true;
        let id = self.id;
        self.shared
            .with_hub(|d, now| d.session.handle_refresh(now, id, outcome));
    }
}

impl Drop for PendingRefresh {
    fn drop(&mut self) {
        if !self.answered {
            tracing::warn!(id = %self.id, "reauth refresh abandoned: its task ended unanswered");
            let outcome = RefreshOutcome::Failed(
                RefreshError::transient(RefreshErrorKind::Abandoned)
                    .with_detail("the refresh task ended before answering"),
            );
            let id = self.id;
            self.shared
                .with_hub(|d, now| d.session.handle_refresh(now, id, outcome));
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Let the timer task notice that the client is gone.
        self.timer.notify_one();
    }
}
