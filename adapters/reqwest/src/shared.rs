//! The drive loop: the core behind a short mutex, its effects carried out outside it, the
//! request loop, the refresh task and the timer task.

use crate::error::Error;
use crate::source::Source;
use reauth_core::driver::{Effects, Hub, Next};
use reauth_core::{Attempt, Event, Session, TokenStore, WaiterId};
use reqwest::{Request, Response};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, oneshot, Notify};
use tracing::{debug, info, trace, warn, Instrument};

type Wake = oneshot::Sender<Result<Attempt, reauth_core::Error>>;

/// Extra time a parked request waits beyond the session's own waiter deadline. The session
/// fails the waiter first; this only guards against a bug leaving it parked forever.
const WAIT_SLACK: Duration = Duration::from_secs(5);

/// How a request reaches the network: the plain client, or the rest of a middleware chain.
pub(crate) trait Transport {
    fn send(&mut self, request: Request) -> impl Future<Output = Result<Response, Error>> + Send;
}

pub(crate) struct Shared {
    hub: Mutex<Hub<Wake>>,
    /// Serialises carrying out effects, so store writes land in the order the session
    /// emitted them. Taken before the hub lock is released; never the other way round.
    effects: Mutex<()>,
    pub(crate) store: Arc<dyn TokenStore>,
    events: broadcast::Sender<Event>,
    pub(crate) source: Source,
    pub(crate) token_http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// Wakes the timer task when an input may have moved the next deadline.
    timer: Arc<Notify>,
    pub(crate) refresh_timeout: Duration,
    waiter_timeout: Duration,
    /// The session's refresh trigger, fixed at build time: a response it does not fire
    /// for is delivered without taking the lock, as the session would answer anyway.
    trigger: reauth_core::RefreshTrigger,
    pub(crate) allow_insecure_http: bool,
}

pub(crate) struct Parts {
    pub(crate) session: Session,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) source: Source,
    pub(crate) token_http: reqwest::Client,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) allow_insecure_http: bool,
}

impl Shared {
    pub(crate) fn start(parts: Parts) -> Arc<Self> {
        let config = parts.session.config();
        let (refresh_timeout, waiter_timeout) = (config.refresh_timeout, config.waiter_timeout);
        let trigger = config.trigger.clone();
        let shared = Arc::new(Self {
            hub: Mutex::new(Hub::new(parts.session)),
            effects: Mutex::new(()),
            store: parts.store,
            events: broadcast::channel(64).0,
            source: parts.source,
            token_http: parts.token_http,
            runtime: parts.runtime,
            timer: Arc::new(Notify::new()),
            refresh_timeout,
            waiter_timeout,
            trigger,
            allow_insecure_http: parts.allow_insecure_http,
        });
        let (weak, timer) = (Arc::downgrade(&shared), shared.timer.clone());
        shared.runtime.spawn(drive_timers(weak, timer));
        shared
    }

    fn lock_hub(&self) -> MutexGuard<'_, Hub<Wake>> {
        // Every critical section leaves the hub consistent, so a panic elsewhere (which
        // poisons the lock) must not take the whole client down with it.
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the hub under the lock, then carries out what it produced outside the
    /// lock. Returns what `f` returned.
    pub(crate) fn with_hub<R>(self: &Arc<Self>, f: impl FnOnce(&mut Hub<Wake>, Instant) -> R) -> R {
        let now = Instant::now();
        let mut hub = self.lock_hub();
        let before = hub.session().phase();
        let result = f(&mut hub, now);
        let after = hub.session().phase();
        if before != after {
            debug!(from = ?before, to = ?after, generation = hub.session().generation().get(), "reauth phase change");
        }
        let fx = hub.drain(now, SystemTime::now);
        if fx.is_empty() {
            return result;
        }
        let order = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        drop(hub);
        self.carry_out(fx);
        drop(order);
        self.timer.notify_one();
        result
    }

    fn carry_out(self: &Arc<Self>, fx: Effects<Wake>) {
        for op in fx.store {
            if let Err(e) = op.apply(&*self.store) {
                warn!(error = %e, "reauth token store failed");
            }
        }
        for (wake, outcome) in fx.wake {
            // A receiver that is gone belongs to a request that was just dropped.
            let _ = wake.send(outcome);
        }
        for event in fx.events {
            if event.is_problem() {
                warn!("reauth {event}");
            } else {
                info!("reauth {event}");
            }
            // No subscriber is fine: events are informational.
            let _ = self.events.send(event);
        }
        for (id, refresh_token) in fx.refreshes {
            let span = tracing::info_span!("reauth.refresh", id = %id);
            self.runtime
                .spawn(crate::refresh::run(self.clone(), id, refresh_token).instrument(span));
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn snapshot(&self) -> reauth_core::Snapshot {
        self.lock_hub().session().snapshot()
    }

    /// Sends `request` through the session: attach the credential, replay after a refresh,
    /// hand back the final response.
    pub(crate) async fn run(
        self: &Arc<Self>,
        request: Request,
        transport: &mut impl Transport,
    ) -> Result<Response, Error> {
        // A streaming body cannot be cloned, so such a request is sent once at most.
        let template = request.try_clone();
        let replayable = template.is_some();
        let mut next = self.with_hub(|hub, now| {
            let next = hub.begin(now, &UrlTarget(request.url()));
            park(hub, next)
        });
        let mut first = Some(request);
        loop {
            next = match next {
                Step::Go(Next::Send(attempt)) => {
                    let Some(mut req) = first
                        .take()
                        .or_else(|| template.as_ref().and_then(Request::try_clone))
                    else {
                        // Unreachable: a non-replayable request is never told to send twice.
                        return Err(Error::Disconnected);
                    };
                    req.headers_mut()
                        .insert(http::header::AUTHORIZATION, attempt.header_value().clone());
                    trace!(
                        generation = attempt.generation().get(),
                        replay = attempt.is_replay(),
                        "reauth sending"
                    );
                    let response = transport.send(req).await?;
                    if !self.trigger.fires(response.status(), response.headers()) {
                        // The common case, and what the session would answer: no lock.
                        return Ok(response);
                    }
                    let step = self.with_hub(|hub, now| {
                        let next = hub.respond(
                            now,
                            &attempt,
                            response.status(),
                            response.headers(),
                            replayable,
                        );
                        park(hub, next)
                    });
                    if matches!(step, Step::Go(Next::Deliver)) {
                        return Ok(response);
                    }
                    trace!(
                        status = response.status().as_u16(),
                        "reauth response needs a refresh or replay"
                    );
                    Box::pin(discard(response)).await;
                    step
                }
                Step::Go(Next::SendAnonymous) => {
                    let req = first.take().ok_or(Error::Disconnected)?;
                    trace!("reauth sending without credential: origin not allowed");
                    return transport.send(req).await;
                }
                Step::Go(Next::Fail(e)) => return Err(e.into()),
                // Boxed: the slow path must not make every request's future bigger.
                Step::Parked(w, rx) => Step::Go(Box::pin(self.wait(w, rx)).await?),
                Step::Go(_) => return Err(Error::Disconnected),
            };
        }
    }

    async fn wait(
        self: &Arc<Self>,
        waiter: WaiterId,
        rx: oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    ) -> Result<Next, Error> {
        trace!(%waiter, "reauth waiting for refresh");
        let mut guard = CancelOnDrop {
            shared: self,
            waiter: Some(waiter),
        };
        let outcome = tokio::time::timeout(self.waiter_timeout + WAIT_SLACK, rx).await;
        match outcome {
            Ok(Ok(result)) => {
                guard.waiter = None;
                Ok(match result {
                    Ok(attempt) => Next::Send(attempt),
                    Err(e) => Next::Fail(e),
                })
            }
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => Ok(Next::Fail(reauth_core::Error::Timeout)),
        }
    }
}

/// A reqwest URL seen as a core `Target`, so the allow-list check parses nothing.
struct UrlTarget<'a>(&'a reqwest::Url);

impl reauth_core::Target for UrlTarget<'_> {
    fn scheme(&self) -> Option<&str> {
        Some(self.0.scheme())
    }

    fn host(&self) -> Option<&str> {
        self.0.host_str()
    }

    fn port(&self) -> Option<u16> {
        self.0.port()
    }

    fn authority(&self) -> Option<&str> {
        Some(self.0.authority())
    }
}

/// Reads and drops the body of a response that will not reach the caller (a 401 about to
/// be replayed), bounded in size and time. Dropping it unread would reset its HTTP/2
/// stream, and a storm of such resets makes the client's own h2 layer give up the whole
/// connection (`ENHANCE_YOUR_CALM`, "too_many_internal_resets"); over HTTP/1.1 it would
/// close the connection instead of reusing it.
async fn discard(mut response: Response) {
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

fn park(hub: &mut Hub<Wake>, next: Next) -> Step {
    match next {
        Next::Wait(w) => {
            let (tx, rx) = oneshot::channel();
            hub.register(w, tx);
            Step::Parked(w, rx)
        }
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
            self.shared.with_hub(|hub, _| hub.cancel(w));
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
            Some(s) => s.lock_hub().session().poll_timeout(),
            None => return,
        };
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {
                        match shared.upgrade() {
                            Some(s) => s.with_hub(|hub, now| hub.timeout(now)),
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

impl Drop for Shared {
    fn drop(&mut self) {
        // Let the timer task notice that the client is gone.
        self.timer.notify_one();
    }
}
