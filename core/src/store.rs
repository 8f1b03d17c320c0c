//! Where tokens live between runs: the store interface both adapters use, and an
//! in-memory store. The file store (real I/O) lives in the `reauth` facade crate.

use crate::token::{AccessToken, RefreshToken, StoredTokens, TokenSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Tokens as a store keeps them: the expiry is wall-clock time, so it survives restarts.
#[derive(Clone, PartialEq, Eq)]
pub struct SavedTokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, if any.
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, if known.
    pub expires_at: Option<SystemTime>,
    /// The granted scope, if known.
    pub scope: Option<String>,
}

impl SavedTokens {
    /// Converts the session's tokens; `now` and `wall` are the same moment on both clocks.
    pub fn from_stored(stored: &StoredTokens, now: Instant, wall: SystemTime) -> Self {
        Self {
            access_token: stored.access_token().clone(),
            refresh_token: stored.refresh_token().cloned(),
            expires_at: stored.expires_at().map(|at| {
                let left = at.saturating_duration_since(now);
                wall.checked_add(left).unwrap_or(wall)
            }),
            scope: stored.scope().map(str::to_owned),
        }
    }

    /// Converts a token set received at wall time `wall`: the lifetime becomes an
    /// absolute expiry.
    pub fn from_token_set(set: &TokenSet, wall: SystemTime) -> Self {
        Self {
            access_token: set.access_token().clone(),
            refresh_token: set.refresh_token().cloned(),
            expires_at: set
                .expires_in()
                .map(|life| wall.checked_add(life).unwrap_or(wall)),
            scope: set.scope().map(str::to_owned),
        }
    }

    /// The token set to log in with at wall time `wall`: the remaining lifetime, zero if
    /// the token expired meanwhile (the session then refreshes before using it).
    pub fn to_token_set(&self, wall: SystemTime) -> TokenSet {
        let mut set = TokenSet::new(self.access_token.clone());
        if let Some(r) = &self.refresh_token {
            set = set.with_refresh_token(r.clone());
        }
        if let Some(at) = self.expires_at {
            set = set.with_expires_in(at.duration_since(wall).unwrap_or(Duration::ZERO));
        }
        if let Some(s) = &self.scope {
            set = set.with_scope(s.clone());
        }
        set
    }
}

impl fmt::Debug for SavedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedTokens")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// What kind of failure a [`StoreError`] is, so callers can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Reading or writing failed (permissions, disk full, a missing folder, …).
    Io,
    /// The stored data is unreadable: corrupt, truncated, altered, or written by a newer
    /// version. The session starts logged out; the store keeps the bad data aside.
    Corrupt,
    /// Another process held the refresh lock past the deadline.
    LockTimeout,
    /// Anything else.
    Other,
}

/// A store failed. The message never holds token text. The store's own typed error, if
/// it has one, is the [`source`](std::error::Error::source) (downcast it for details).
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error of kind [`StoreErrorKind::Other`] with a human-readable message.
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_kind(StoreErrorKind::Other, message)
    }

    /// An error of a given kind with a human-readable message.
    pub fn with_kind(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the store's own error, kept as the [`source`](std::error::Error::source).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message, without the `token store:` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The store's own error as type `E`, if it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_deref().and_then(|e| e.downcast_ref::<E>())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token store: {}", self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Two errors are equal if their kind and message are (the source is not compared).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for StoreError {}

/// Proof that this process holds a store's cross-process refresh lock, from
/// [`TokenStore::lock_refresh`]. Dropping it releases the lock.
pub trait RefreshLock: Send {}

/// Keeps tokens between runs. Calls are short and synchronous; adapters make them outside
/// the session lock, in the order the session asked.
///
/// A store that several processes share (a token file) also implements
/// [`lock_refresh`](Self::lock_refresh), so that only one of them refreshes at a time and
/// the others adopt its tokens: see [`driver::begin_refresh`](crate::driver::begin_refresh).
pub trait TokenStore: Send + Sync {
    /// The saved tokens, if any.
    fn load(&self) -> Result<Option<SavedTokens>, StoreError>;
    /// Replaces the saved tokens.
    fn save(&self, tokens: &SavedTokens) -> Result<(), StoreError>;
    /// Deletes the saved tokens.
    fn clear(&self) -> Result<(), StoreError>;

    /// Takes the lock that serialises refreshes across every process sharing this store,
    /// waiting at most `wait` (then [`StoreErrorKind::LockTimeout`]). While it is held,
    /// [`load`](Self::load), [`save`](Self::save) and [`clear`](Self::clear) must keep
    /// working from the same process.
    ///
    /// `Ok(None)`, the default, means the store is not shared between processes (memory,
    /// or a store with its own coordination): refreshes are then single-flight within the
    /// process only, and the driver skips the re-read protocol.
    fn lock_refresh(&self, wait: Duration) -> Result<Option<Box<dyn RefreshLock>>, StoreError> {
        let _ = wait;
        Ok(None)
    }
}

/// A shared store is a store: keep an `Arc` to inspect it while a client uses it.
impl<T: TokenStore + ?Sized> TokenStore for std::sync::Arc<T> {
    fn load(&self) -> Result<Option<SavedTokens>, StoreError> {
        (**self).load()
    }

    fn save(&self, tokens: &SavedTokens) -> Result<(), StoreError> {
        (**self).save(tokens)
    }

    fn clear(&self) -> Result<(), StoreError> {
        (**self).clear()
    }

    fn lock_refresh(&self, wait: Duration) -> Result<Option<Box<dyn RefreshLock>>, StoreError> {
        (**self).lock_refresh(wait)
    }
}

/// Keeps tokens in memory only: the default.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<Option<SavedTokens>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<SavedTokens>> {
        // A panic elsewhere cannot leave an Option half-written: recover the value.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<SavedTokens>, StoreError> {
        Ok(self.slot().clone())
    }

    fn save(&self, tokens: &SavedTokens) -> Result<(), StoreError> {
        *self.slot() = Some(tokens.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        *self.slot() = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_wall_time() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let stored = StoredTokens {
            access_token: AccessToken::new("a").unwrap(),
            refresh_token: Some(RefreshToken::new("r").unwrap()),
            expires_at: Some(now + Duration::from_secs(100)),
            scope: Some("read".into()),
        };
        let saved = SavedTokens::from_stored(&stored, now, wall);
        assert_eq!(saved.expires_at, Some(wall + Duration::from_secs(100)));
        let store = MemoryStore::new();
        store.save(&saved).unwrap();
        let back = store.load().unwrap().unwrap();
        let set = back.to_token_set(wall + Duration::from_secs(40));
        assert_eq!(set.expires_in(), Some(Duration::from_secs(60)));
        assert_eq!(set.scope(), Some("read"));
        let expired = back.to_token_set(wall + Duration::from_secs(400));
        assert_eq!(expired.expires_in(), Some(Duration::ZERO));
        assert!(!format!("{back:?}").contains("\"a\""));
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }
}
