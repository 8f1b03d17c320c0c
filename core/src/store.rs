//! Where tokens live between runs: the store interface both adapters use, and an
//! in-memory store. The file store (real I/O) lives in the `reauth` facade crate.

use crate::token::{AccessToken, RefreshToken, StoredTokens, TokenSet};
use std::fmt;
use std::sync::Mutex;
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

/// A store failed. The message never holds token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token store: {message}")]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// An error with a human-readable message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Keeps tokens between runs. Calls are short and synchronous; adapters make them outside
/// the session lock, in the order the session asked.
pub trait TokenStore: Send + Sync {
    /// The saved tokens, if any.
    fn load(&self) -> Result<Option<SavedTokens>, StoreError>;
    /// Replaces the saved tokens.
    fn save(&self, tokens: &SavedTokens) -> Result<(), StoreError>;
    /// Deletes the saved tokens.
    fn clear(&self) -> Result<(), StoreError>;
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
