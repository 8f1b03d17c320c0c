//! The drive loop over tokio: the refresh and store tasks, the timer task, parked
//! requests. Everything that is not I/O comes from `reauth_drive`.
//!
//! Marked for reauth-drive: `Wake`, `Step`/`step`/`park`, `CancelOnDrop`, `drive_timers`,
//! `Tasks` (the `Io` impl) and `PendingRefresh` are the same as in reauth-reqwest's
//! `drive.rs` but for the token transport's type; only the request loop (`request.rs`)
//! is this adapter's own. A tokio-flavoured module of reauth-drive (feature `tokio`)
//! generic over the refresh call would serve both.

use crate::source::{Source, TokenService};
use reauth_core::{
    Attempt, Event, RefreshError, RefreshErrorKind, RefreshOutcome, Session, StoreCommand,
    StoreError, StoreOpId, TokenStore, WaiterId,
};
use reauth_drive::{carry_out, Drive, Hub, Io, Next, Refresh};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, oneshot, Notify};
use tracing::{debug, trace, Instrument};

pub(crate) type Wake = oneshot::Sender<Result<Attempt, reauth_core::Error>>;

/// Extra time a parked request waits beyond the session's own waiter deadline. The session
/// fails the waiter first; this only guards against a bug leaving it parked forever.
const WAIT_SLACK: Duration = Duration::from_secs(5);

pub(crate) struct Shared {
    hub: Hub<Wake>,
    store: Arc<dyn TokenStore>,
    events: broadcast::Sender<Event>,
    source: Source,
    token_http: TokenService,
    runtime: tokio::runtime::Handle,
    /// Wakes the timer task when an input moved the next deadline earlier.
    timer: Arc<Notify>,
    waiter_timeout: Duration,
    /// The session's refresh trigger, fixed at build time: a response it does not fire
    /// for is delivered without taking the lock, as the session would answer anyway.
    pub(crate) trigger: reauth_core::RefreshTrigger,
    allow_insecure_http: bool,
    /// Request bodies that are still streaming are recorded up to this many bytes.
    pub(crate) body_limit: usize,
    /// Watch response trailers for gRPC `UNAUTHENTICATED`.
    pub(crate) grpc: bool,
    /// Where requests without scheme and host go.
    pub(crate) default_origin: Option<reauth_core::Origin>,
}

pub(crate) struct Parts {
    pub(crate) session: Session,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) source: Source,
    pub(crate) token_http: TokenService,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) allow_insecure_http: bool,
    pub(crate) body_limit: usize,
    pub(crate) grpc: bool,
    pub(crate) default_origin: Option<reauth_core::Origin>,
}

impl Shared {
    pub(crate) fn start(parts: Parts) -> Arc<Self> {
        let config = parts.session.config();
        let waiter_timeout = config.waiter_timeout;
        let trigger = config.trigger.clone();
        let shared = Arc::new(Self {
            hub: Hub::new(parts.session),
            store: parts.store,
            events: broadcast::channel(64).0,
            source: parts.source,
            token_http: parts.token_http,
            runtime: parts.runtime,
            timer: Arc::new(Notify::new()),
            waiter_timeout,
            trigger,
            allow_insecure_http: parts.allow_insecure_http,
            body_limit: parts.body_limit,
            grpc: parts.grpc,
            default_origin: parts.default_origin,
        });
        let (weak, timer) = (Arc::downgrade(&shared), shared.timer.clone());
        shared.runtime.spawn(drive_timers(weak, timer));
        // Taking the session up from the store may have left work (an expired token).
        shared.with_hub(|_, _| ());
        shared
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
    /// their store write is done before the call returns.
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

    /// Waits for the session to resume or fail a parked request; a wait dropped midway
    /// is cancelled in the session.
    pub(crate) async fn wait(
        self: &Arc<Self>,
        waiter: WaiterId,
        rx: oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    ) -> Result<Next, crate::Error> {
        trace!(%waiter, "reauth waiting for refresh");
        let mut guard = CancelOnDrop {
            shared: self,
            waiter: Some(waiter),
        };
        let patience = self.waiter_timeout.saturating_add(WAIT_SLACK);
        match tokio::time::timeout(patience, rx).await {
            Ok(Ok(result)) => {
                guard.waiter = None;
                Ok(match result {
                    Ok(attempt) => Next::Send(attempt),
                    Err(e) => Next::Fail(e),
                })
            }
            Ok(Err(_)) => Err(crate::Error::Disconnected),
            Err(_) => Ok(Next::Fail(reauth_core::Error::Timeout)),
        }
    }
}

/// A `Next`, with the receiver registered under the same lock when it says wait.
pub(crate) enum Step {
    Go(Next),
    Parked(
        WaiterId,
        oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    ),
}

/// A `Next`, with the receiver registered under the same lock when it says wait.
pub(crate) fn step(d: &mut Drive<Wake>, next: Next) -> Step {
    match next {
        Next::Wait(w) => {
            let (tx, rx) = oneshot::channel();
            d.park(w, tx);
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
            self.shared.with_hub(|d, _| d.cancel(w));
        }
    }
}

/// Fires the session's deadlines (waiter timeouts, refresh timeouts, backoff, proactive
/// refresh). Holds only a weak reference, so it ends when the layer is dropped.
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
        self.shared.runtime.spawn(async move {
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
        self.shared.runtime.spawn(task.instrument(span));
    }
}

/// A refresh the session asked for, in its task. Dropped without an answer, it reports
/// the refresh abandoned (a transient failure), so no waiter is held until its deadline.
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
        // Let the timer task notice that the layer is gone.
        self.timer.notify_one();
    }
}
