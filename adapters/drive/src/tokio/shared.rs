//! The session's shared state in an async adapter, and the tasks that serve it: store
//! operations and refreshes spawned on a runtime, the timer task, parked requests.

use super::runtime::Runtimes;
use crate::{carry_out, carry_out_async, Changes, Drive, Hub, Io, Next, Refresh};
use reauth_core::{
    Attempt, Event, RefreshError, RefreshErrorKind, RefreshOutcome, RefreshToken, RefreshTrigger,
    Session, StoreCommand, StoreError, StoreOpId, TokenStore, WaiterId,
};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, oneshot, Notify};
use tracing::{debug, trace, Instrument};

/// What wakes a parked request: the session's answer for it.
pub type Wake = oneshot::Sender<Result<Attempt, reauth_core::Error>>;

/// Extra time a parked request waits beyond the session's own waiter deadline. The session
/// fails the waiter first; this only guards against a bug leaving it parked forever.
const WAIT_SLACK: Duration = Duration::from_secs(5);

/// What an adapter adds to the shared state: its refresh call (over its own HTTP client)
/// and whatever its request loop reads.
pub trait Adapter: Send + Sync + 'static {
    /// Runs one refresh with `refresh_token`. Bounded by the session's deadline outside.
    fn refresh(
        &self,
        refresh_token: Option<RefreshToken>,
    ) -> impl Future<Output = RefreshOutcome> + Send + '_;
}

/// The session and everything its tasks need, shared by a client, its clones and its
/// tasks; `adapter` is the adapter's own part.
pub struct Shared<A> {
    hub: Hub<Wake>,
    store: Arc<dyn TokenStore>,
    events: broadcast::Sender<Event>,
    /// Where the timer task runs, and where the session's tasks go.
    runtimes: Runtimes,
    /// Wakes the timer task when an input moved the next deadline earlier.
    timer: Arc<Notify>,
    waiter_timeout: Duration,
    /// The session's refresh trigger, fixed at build time: a response it does not fire
    /// for is delivered without taking the lock, as the session would answer anyway.
    trigger: RefreshTrigger,
    /// The adapter's own part.
    pub adapter: A,
}

impl<A: Adapter> Shared<A> {
    /// Shares `session` and starts its timer task on `runtime`; `changes` (asked for
    /// when the session was opened) reach the session from here on.
    pub fn start(
        session: Session,
        changes: &Changes,
        store: Arc<dyn TokenStore>,
        adapter: A,
        runtime: &Handle,
    ) -> Arc<Self> {
        let config = session.config();
        let waiter_timeout = config.waiter_timeout;
        let trigger = config.trigger.clone();
        let shared = Arc::new(Self {
            hub: Hub::new(session),
            store,
            events: broadcast::channel(64).0,
            runtimes: Runtimes::new(),
            timer: Arc::new(Notify::new()),
            waiter_timeout,
            trigger,
            adapter,
        });
        shared.start_timer(runtime);
        shared.watch_store(changes);
        // Taking the session up from the store may have left work (an expired token).
        shared.with_hub(|_, _| ());
        shared
    }

    /// Hands other writers' changes to the session. The handler holds the state weakly
    /// (the store lives inside it); called on the store's own thread, its work goes to
    /// the runtime the timer runs on, as any task's does.
    fn watch_store(self: &Arc<Self>, changes: &Changes) {
        let weak = Arc::downgrade(self);
        changes.attach(Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.with_hub(|d, now| d.session.handle_changed(now));
            }
        }));
    }

    /// The session's refresh trigger.
    pub fn trigger(&self) -> &RefreshTrigger {
        &self.trigger
    }

    /// Starts the timer task on `runtime`, unless one is alive.
    fn start_timer(self: &Arc<Self>, runtime: &Handle) {
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
    /// on is gone. False without any runtime to start it on.
    pub fn ensure_timer(self: &Arc<Self>) -> bool {
        if self.runtimes.timer_alive() {
            return true;
        }
        let Ok(runtime) = Handle::try_current() else {
            return false;
        };
        self.start_timer(&runtime);
        true
    }

    /// Feeds the session an input under the lock, then carries out what it produced
    /// outside the lock. Returns what `f` returned.
    pub fn with_hub<R>(self: &Arc<Self>, f: impl FnOnce(&mut Drive<Wake>, Instant) -> R) -> R {
        self.with_hub_io(false, f)
    }

    /// As [`with_hub`](Self::with_hub), for the application's own calls (login, logout):
    /// their store write is done before the call returns, so a program that exits right
    /// after a logout leaves the tombstone behind.
    pub fn with_hub_now<R>(self: &Arc<Self>, f: impl FnOnce(&mut Drive<Wake>, Instant) -> R) -> R {
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

    /// The session's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The session's state.
    pub fn snapshot(&self) -> reauth_core::Snapshot {
        self.hub.peek(|d| d.session.snapshot())
    }

    /// Waits for the session to resume or fail a parked request; a wait dropped midway
    /// is cancelled in the session. `None`: the session dropped the wait unanswered (a
    /// bug).
    pub async fn wait(
        self: &Arc<Self>,
        waiter: WaiterId,
        mut rx: oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    ) -> Option<Next> {
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
            // Inside a runtime here (the sleep above needs one), so this starts a timer.
            self.ensure_timer();
            tokio::select! {
                outcome = &mut rx => {
                    let result = outcome.ok()?;
                    guard.waiter = None;
                    return Some(match result {
                        Ok(attempt) => Next::Send(attempt),
                        Err(e) => Next::Fail(e),
                    });
                }
                () = &mut give_up => return Some(Next::Fail(reauth_core::Error::Timeout)),
                () = &mut gone => {}
            }
        }
    }
}

/// A `Next`, with the receiver registered under the same lock when it says wait.
pub enum Step {
    /// Go on as the session said.
    Go(Next),
    /// Parked: wait on the receiver with [`Shared::wait`].
    Parked(
        WaiterId,
        oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    ),
}

/// Turns the session's `next` into a [`Step`], parking the request (under the same lock)
/// when it says wait.
pub fn step(d: &mut Drive<Wake>, next: Next) -> Step {
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
struct CancelOnDrop<'a, A: Adapter> {
    shared: &'a Arc<Shared<A>>,
    waiter: Option<WaiterId>,
}

impl<A: Adapter> Drop for CancelOnDrop<'_, A> {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.shared.with_hub(|d, _| d.cancel(w));
        }
    }
}

/// Reports the end of a run of the timer task, however it ends.
struct TimerRun<A> {
    shared: Weak<Shared<A>>,
    run: u64,
}

impl<A> Drop for TimerRun<A> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.runtimes.ended(self.run);
        }
    }
}

/// Fires the session's deadlines (waiter timeouts, refresh timeouts, backoff, proactive
/// refresh). Holds only a weak reference, so it ends when the client is dropped.
async fn drive_timers<A: Adapter>(shared: Weak<Shared<A>>, timer: Arc<Notify>) {
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
struct Tasks<'a, A> {
    shared: &'a Arc<Shared<A>>,
    inline: bool,
}

impl<A: Adapter> Io for Tasks<'_, A> {
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
        // A store that does not block (an in-memory one) is cheaper called here than
        // handed to a blocking thread.
        if self.inline || !shared.store.may_block() {
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
            // An async store is awaited here; one that may block (a file lock, fsync) runs
            // off the runtime's workers. Either runs as a task of its own, so a panic in it
            // is an error the session hears rather than an operation never answered.
            let done = if store.as_async().is_some() {
                tokio::spawn(async move {
                    match store.as_async() {
                        Some(awaited) => carry_out_async(awaited, &op).await,
                        None => carry_out(&*store, &op),
                    }
                })
            } else {
                tokio::task::spawn_blocking(move || carry_out(&*store, &op))
            };
            let outcome = done
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
            let call = pending.shared.adapter.refresh(refresh.refresh_token);
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
struct PendingRefresh<A: Adapter> {
    shared: Arc<Shared<A>>,
    id: reauth_core::RefreshId,
    answered: bool,
}

impl<A: Adapter> PendingRefresh<A> {
    fn answer(mut self, outcome: RefreshOutcome) {
        self.answered = true;
        let id = self.id;
        self.shared
            .with_hub(|d, now| d.session.handle_refresh(now, id, outcome));
    }
}

impl<A: Adapter> Drop for PendingRefresh<A> {
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

impl<A> Drop for Shared<A> {
    fn drop(&mut self) {
        // Let the timer task notice that the client is gone.
        self.timer.notify_one();
    }
}
