//! One refresh, as a spawned task: the store's cross-process lock and re-read
//! ([`begin_refresh`]), the HTTP call, the save under the lock ([`finish_refresh`]), then
//! the outcome back into the session.

use crate::shared::Shared;
use reauth_core::driver::{begin_refresh, finish_refresh, RefreshDone, RefreshStart};
use reauth_core::{RefreshError, RefreshErrorKind, RefreshId, RefreshOutcome, RefreshToken};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{debug, warn};

/// Longest single blocking wait for another process's refresh lock.
const LOCK_SLICE: Duration = Duration::from_millis(50);
/// Pause between two waits, on the async side.
const LOCK_PAUSE: Duration = Duration::from_millis(10);

/// Runs refresh `id` presenting `refresh_token` and reports it to the session. Spawned, so
/// no caller's cancellation can abort it or strand the waiters.
pub(crate) async fn run(shared: Arc<Shared>, id: RefreshId, refresh_token: Option<RefreshToken>) {
    debug!("refresh started");
    let budget = shared.refresh_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    let start = begin(&shared, refresh_token, deadline).await;
    let done = match start {
        Ok(RefreshStart::Done(done)) => done,
        Ok(RefreshStart::Proceed(guard)) => {
            let refresh = shared.source.refresh(
                &shared.token_http,
                guard.refresh_token().cloned(),
                shared.allow_insecure_http,
            );
            // The lock wait and the call share one budget.
            let outcome = match tokio::time::timeout_at(deadline, refresh).await {
                Ok(outcome) => outcome,
                Err(_) => RefreshOutcome::Failed(
                    RefreshError::transient(RefreshErrorKind::Timeout)
                        .with_detail("no answer within the refresh timeout"),
                ),
            };
            let store = shared.store.clone();
            // Saved before the lock is released; dropping the guard on a panic releases it.
            tokio::task::spawn_blocking(move || {
                finish_refresh(&*store, guard, outcome, SystemTime::now())
            })
            .await
            .unwrap_or_else(|_| abandoned("the token store panicked while saving"))
        }
        Err(()) => abandoned("the token store panicked while locking"),
    };
    for e in done.store_errors() {
        warn!(error = %e, "reauth token store failed during a refresh");
    }
    debug!(
        success = matches!(done.outcome(), RefreshOutcome::Success(_)),
        adopted = done.adopted(),
        "refresh finished"
    );
    shared.with_hub(|hub, now| hub.refresh_finished(now, id, done));
}

/// [`begin_refresh`] on the blocking pool, in slices of at most [`LOCK_SLICE`] with
/// async pauses between them, until `deadline`. Waiting in one long blocking call would
/// hold up the runtime's shutdown (it waits for blocking tasks) for the whole wait.
async fn begin(
    shared: &Arc<Shared>,
    refresh_token: Option<RefreshToken>,
    deadline: tokio::time::Instant,
) -> Result<RefreshStart, ()> {
    loop {
        let (store, token) = (shared.store.clone(), refresh_token.clone());
        let slice = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(LOCK_SLICE);
        let start = tokio::task::spawn_blocking(move || {
            begin_refresh(&*store, token, slice, SystemTime::now)
        })
        .await
        .map_err(|_| ())?;
        match start {
            RefreshStart::Done(done)
                if done.lock_busy() && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(LOCK_PAUSE.min(deadline - tokio::time::Instant::now())).await;
            }
            other => return Ok(other),
        }
    }
}

fn abandoned(detail: &str) -> RefreshDone {
    RefreshDone::from_outcome(RefreshOutcome::Failed(
        RefreshError::transient(RefreshErrorKind::Abandoned).with_detail(detail),
    ))
}
