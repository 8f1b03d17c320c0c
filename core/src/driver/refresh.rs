//! A refresh around a shared token store: the cross-process half of single-flight. The
//! rules are in the [`driver`](crate::driver) docs.

use crate::command::RefreshOutcome;
use crate::error::{RefreshError, RefreshErrorKind};
use crate::store::{RefreshLock, SavedTokens, StoreError, StoreErrorKind, TokenStore};
use crate::token::RefreshToken;
use std::fmt;
use std::time::{Duration, SystemTime};

/// What [`begin_refresh`] decided. Deliberately exhaustive: an adapter handles both.
#[derive(Debug)]
#[must_use]
pub enum RefreshStart {
    /// No HTTP call: the refresh is already decided (tokens adopted from the store, or
    /// the lock could not be had). Report it with
    /// [`Hub::refresh_finished`](super::Hub::refresh_finished).
    Done(RefreshDone),
    /// Make the refresh call presenting [`RefreshGuard::refresh_token`], then hand the
    /// outcome and this guard to [`finish_refresh`]. Dropping the guard releases the lock
    /// (e.g. on a panic) without saving anything.
    Proceed(RefreshGuard),
}

/// The store's refresh lock (if it has one) and what was read under it.
#[must_use = "dropping the guard releases the lock without saving the refresh outcome"]
pub struct RefreshGuard {
    lock: Option<Box<dyn RefreshLock>>,
    present: Option<RefreshToken>,
    seen: Seen,
    errors: Vec<StoreError>,
}

/// What the store held when the lock was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Not read: the store has no lock, or reading failed.
    Unknown,
    Read(Option<SavedTokens>),
}

impl RefreshGuard {
    /// The refresh token to present: the session's, or a newer one found in the store.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.present.as_ref()
    }

    /// True if the store's cross-process lock is held.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Store errors met so far (to log; none of them stopped the refresh).
    pub fn store_errors(&self) -> &[StoreError] {
        &self.errors
    }
}

impl fmt::Debug for RefreshGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshGuard")
            .field("locked", &self.lock.is_some())
            .field("refresh_token", &self.present)
            .field("seen", &self.seen)
            .field("errors", &self.errors)
            .finish()
    }
}

/// A finished refresh, ready for [`Hub::refresh_finished`](super::Hub::refresh_finished).
#[derive(Debug)]
#[must_use]
pub struct RefreshDone {
    outcome: RefreshOutcome,
    store_done: bool,
    adopted: bool,
    busy: bool,
    errors: Vec<StoreError>,
}

impl RefreshDone {
    /// An outcome the store has not seen: the session's own `Persist` or `Forget` will
    /// update it. For adapters that do not use [`begin_refresh`].
    pub fn from_outcome(outcome: RefreshOutcome) -> Self {
        Self::made(outcome, false, Vec::new())
    }

    /// What the session gets.
    pub fn outcome(&self) -> &RefreshOutcome {
        &self.outcome
    }

    /// True if the tokens came from the store (another process refreshed): no refresh
    /// call was made, or its result was superseded.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// True if the store already holds this outcome (saved, adopted from it, or cleared
    /// after a permanent failure), so the session's store command for it is skipped.
    pub fn store_done(&self) -> bool {
        self.store_done
    }

    /// True if nothing was done because another process held the refresh lock for the
    /// whole wait. An async adapter may wait in short slices and call
    /// [`begin_refresh`] again until its own deadline; the outcome is then a transient
    /// [`RefreshErrorKind::Store`] failure.
    pub fn lock_busy(&self) -> bool {
        self.busy
    }

    /// Store errors to log. None of them holds token text.
    pub fn store_errors(&self) -> &[StoreError] {
        &self.errors
    }

    pub(crate) fn into_parts(self) -> (RefreshOutcome, bool) {
        (self.outcome, self.store_done)
    }

    fn made(outcome: RefreshOutcome, store_done: bool, errors: Vec<StoreError>) -> Self {
        Self {
            outcome,
            store_done,
            adopted: false,
            busy: false,
            errors,
        }
    }

    fn adopt(saved: &SavedTokens, wall: SystemTime, errors: Vec<StoreError>) -> Self {
        Self {
            outcome: RefreshOutcome::Success(saved.to_token_set(wall)),
            store_done: true,
            adopted: true,
            busy: false,
            errors,
        }
    }
}

/// Starts a refresh that presents `refresh_token` (the one from
/// [`Command::StartRefresh`](crate::Command::StartRefresh)): takes the store's refresh
/// lock, waiting at most `wait`, and re-reads the store under it. `wall` reads the wall
/// clock (after the wait). Blocks for the lock: call it where blocking is allowed (a
/// blocking thread, `spawn_blocking`). See the [`driver`](crate::driver) docs for the rules.
pub fn begin_refresh(
    store: &dyn TokenStore,
    refresh_token: Option<RefreshToken>,
    wait: Duration,
    wall: impl FnOnce() -> SystemTime,
) -> RefreshStart {
    let mut errors = Vec::new();
    let lock = match store.lock_refresh(wait) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return RefreshStart::Proceed(RefreshGuard {
                lock: None,
                present: refresh_token,
                seen: Seen::Unknown,
                errors,
            })
        }
        Err(e) if e.kind() == StoreErrorKind::LockTimeout => {
            let error = RefreshError::transient(RefreshErrorKind::Store)
                .with_detail("another process held the token store's refresh lock too long");
            let mut done = RefreshDone::from_outcome(RefreshOutcome::Failed(error));
            done.busy = true;
            done.errors.push(e);
            return RefreshStart::Done(done);
        }
        Err(e) => {
            // Without the lock this process can still refresh for itself.
            errors.push(e);
            return RefreshStart::Proceed(RefreshGuard {
                lock: None,
                present: refresh_token,
                seen: Seen::Unknown,
                errors,
            });
        }
    };
    let seen = match store.load() {
        Ok(saved) => Seen::Read(saved),
        Err(e) => {
            errors.push(e);
            Seen::Unknown
        }
    };
    let mut present = refresh_token;
    if let (Seen::Read(Some(saved)), Some(used)) = (&seen, &present) {
        if let Some(stored) = saved.refresh_token.as_ref().filter(|&s| s != used) {
            let wall = wall();
            if saved.expires_at.is_none_or(|at| at > wall) {
                drop(lock);
                return RefreshStart::Done(RefreshDone::adopt(saved, wall, errors));
            }
            // Rotated elsewhere, and that access token has expired too: refresh with
            // the newest refresh token, never the rotated-away one.
            present = Some(stored.clone());
        }
    }
    RefreshStart::Proceed(RefreshGuard {
        lock: Some(lock),
        present,
        seen,
        errors,
    })
}

/// Ends a refresh begun with [`begin_refresh`]: saves its outcome (or clears the store
/// after a permanent failure) while the lock is still held, then releases the lock.
/// `wall` is the wall-clock time the outcome arrived, for the absolute expiry. Blocks on
/// store I/O.
///
/// A successful outcome comes back with the refresh token always set (a response without
/// one keeps the token that was presented), so the session never falls back to an older
/// one it may hold.
pub fn finish_refresh(
    store: &dyn TokenStore,
    guard: RefreshGuard,
    outcome: RefreshOutcome,
    wall: SystemTime,
) -> RefreshDone {
    let RefreshGuard {
        lock,
        present,
        seen,
        mut errors,
    } = guard;
    let outcome = match outcome {
        RefreshOutcome::Success(set) => {
            RefreshOutcome::Success(match (set.refresh_token(), &present) {
                (None, Some(kept)) => set.with_refresh_token(kept.clone()),
                _ => set,
            })
        }
        failed => failed,
    };
    let Some(lock) = lock else {
        // Not shared between processes: the session's own Persist or Forget follows.
        return RefreshDone::made(outcome, false, errors);
    };
    let now = match store.load() {
        Ok(saved) => Seen::Read(saved),
        Err(e) => {
            errors.push(e);
            Seen::Unknown
        }
    };
    // Somebody wrote the store without the lock while we refreshed (a login or a logout):
    // their write is newer than anything this refresh knows.
    let changed = match (&seen, &now) {
        (Seen::Read(before), Seen::Read(after)) => before != after,
        _ => false,
    };
    let after = match now {
        Seen::Read(after) => after,
        Seen::Unknown => None,
    };
    let done = match outcome {
        RefreshOutcome::Success(_) if changed => match after {
            Some(saved) => RefreshDone::adopt(&saved, wall, errors),
            None => RefreshDone::made(
                RefreshOutcome::Failed(
                    RefreshError::permanent(RefreshErrorKind::Store).with_detail(
                        "the stored tokens were cleared meanwhile: logged out elsewhere",
                    ),
                ),
                true,
                errors,
            ),
        },
        RefreshOutcome::Success(set) => {
            let mut saved = SavedTokens::from_token_set(&set, wall);
            if saved.scope.is_none() {
                // As in the session: a response without a scope keeps the old one.
                if let Seen::Read(Some(old)) = &seen {
                    saved.scope = old.scope.clone();
                }
            }
            let store_done = match store.save(&saved) {
                Ok(()) => true,
                Err(e) => {
                    errors.push(e);
                    false
                }
            };
            RefreshDone::made(RefreshOutcome::Success(set), store_done, errors)
        }
        RefreshOutcome::Failed(e) if e.is_permanent() => {
            let newer = after.filter(|saved| {
                changed && saved.refresh_token.is_some() && saved.refresh_token != present
            });
            match newer {
                Some(saved) => RefreshDone::adopt(&saved, wall, errors),
                None => {
                    let store_done = match store.clear() {
                        Ok(()) => true,
                        Err(clear) => {
                            errors.push(clear);
                            false
                        }
                    };
                    RefreshDone::made(RefreshOutcome::Failed(e), store_done, errors)
                }
            }
        }
        failed => RefreshDone::made(failed, false, errors),
    };
    // Only now may another process read the store.
    drop(lock);
    done
}

/// [`begin_refresh`], the refresh call, [`finish_refresh`]: the whole cross-process
/// refresh for a blocking adapter. `refresh` gets the refresh token to present and makes
/// the call; `wall` reads the wall clock (`SystemTime::now`).
pub fn run_refresh(
    store: &dyn TokenStore,
    refresh_token: Option<RefreshToken>,
    wait: Duration,
    wall: impl Fn() -> SystemTime,
    refresh: impl FnOnce(Option<RefreshToken>) -> RefreshOutcome,
) -> RefreshDone {
    match begin_refresh(store, refresh_token, wait, &wall) {
        RefreshStart::Done(done) => done,
        RefreshStart::Proceed(guard) => {
            let outcome = refresh(guard.refresh_token().cloned());
            finish_refresh(store, guard, outcome, wall())
        }
    }
}

#[cfg(test)]
mod tests;
