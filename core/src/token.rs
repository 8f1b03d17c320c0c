//! Tokens and token sets. The secret text is never printed by `Debug` or `Display`.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// The longest lifetime the core believes a token response about (ten years). Larger
/// `expires_in` values are capped to this, so `Instant` arithmetic never overflows.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A token text was rejected because it could never be sent in an HTTP header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The token is the empty string.
    #[error("the token is empty")]
    Empty,
    /// The token holds a byte outside visible ASCII (`0x21..=0x7E`), e.g. a space or a
    /// control character. The byte's position is given; the token itself is not.
    #[error("the token holds a byte outside visible ASCII at position {position}")]
    NotVisibleAscii {
        /// Zero-based byte offset of the first offending byte.
        position: usize,
    },
}

fn validate(text: &str) -> Result<(), InvalidToken> {
    if text.is_empty() {
        return Err(InvalidToken::Empty);
    }
    match text.bytes().position(|b| !(0x21..=0x7E).contains(&b)) {
        Some(position) => Err(InvalidToken::NotVisibleAscii { position }),
        None => Ok(()),
    }
}

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Wraps a token text, checking that it can be sent in an HTTP header
            /// (non-empty, visible ASCII only).
            pub fn new(text: impl Into<String>) -> Result<Self, InvalidToken> {
                let text = text.into();
                validate(&text)?;
                Ok(Self(text))
            }

            /// The secret text. Handle with care: never log it.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted {} bytes>)"), self.0.len())
            }
        }
    };
}

secret_string! {
    /// An OAuth2 access token (RFC 6749 section 1.4): sent as `Authorization: Bearer …`.
    AccessToken
}

secret_string! {
    /// An OAuth2 refresh token (RFC 6749 section 1.5): sent only to the token endpoint.
    RefreshToken
}

/// What a login or a successful refresh hands to the session.
///
/// `expires_in` is relative: the session turns it into an `Instant` with the `now` of the
/// input that carries the set, so the core never reads a clock.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    access_token: AccessToken,
    refresh_token: Option<RefreshToken>,
    expires_in: Option<Duration>,
    scope: Option<String>,
}

impl TokenSet {
    /// A set with only an access token: unknown expiry, no refresh token.
    pub fn new(access_token: AccessToken) -> Self {
        Self {
            access_token,
            refresh_token: None,
            expires_in: None,
            scope: None,
        }
    }

    /// Adds a refresh token. In a refresh response this means rotation: it replaces the
    /// old one.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: RefreshToken) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// Sets the lifetime, counted from the `now` of the input that delivers this set.
    /// Lifetimes above [`MAX_LIFETIME`] are capped.
    #[must_use]
    pub fn with_expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in.min(MAX_LIFETIME));
        self
    }

    /// Sets the granted scope (space-separated, RFC 6749 section 3.3).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The refresh token, if the set carries one.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// The lifetime, if known.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The granted scope, if the server told it.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub(crate) fn into_parts(
        self,
    ) -> (
        AccessToken,
        Option<RefreshToken>,
        Option<Duration>,
        Option<String>,
    ) {
        (
            self.access_token,
            self.refresh_token,
            self.expires_in,
            self.scope,
        )
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The session's tokens as the store should keep them: the refresh token already merged
/// (a response without one keeps the old one) and the expiry made absolute.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTokens {
    pub(crate) access_token: AccessToken,
    pub(crate) refresh_token: Option<RefreshToken>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) scope: Option<String>,
}

impl StoredTokens {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The refresh token, if any.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// When the access token expires, on the caller's `Instant` clock.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The granted scope, if known.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Back to a [`TokenSet`] whose lifetime is what remains at `now` (zero if already
    /// expired), e.g. to log in again from a store.
    pub fn to_token_set(&self, now: Instant) -> TokenSet {
        TokenSet {
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_in: self.expires_at.map(|at| at.saturating_duration_since(now)),
            scope: self.scope.clone(),
        }
    }
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_tokens_that_cannot_be_header_values() {
        assert_eq!(AccessToken::new(""), Err(InvalidToken::Empty));
        assert_eq!(
            AccessToken::new("ab c"),
            Err(InvalidToken::NotVisibleAscii { position: 2 })
        );
        assert!(RefreshToken::new("a\nb").is_err());
        assert!(AccessToken::new("é").is_err());
        assert!(AccessToken::new("mF_9.B5f-4.1JqM/+=").is_ok());
    }

    #[test]
    fn debug_never_shows_secret_text() {
        let set = TokenSet::new(AccessToken::new("SECRET-ACCESS").unwrap())
            .with_refresh_token(RefreshToken::new("SECRET-REFRESH").unwrap())
            .with_expires_in(Duration::from_secs(60));
        let shown = format!("{set:?} {:?}", set.access_token());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn huge_lifetimes_are_capped() {
        let set = TokenSet::new(AccessToken::new("a").unwrap())
            .with_expires_in(Duration::from_secs(u64::MAX));
        assert_eq!(set.expires_in(), Some(MAX_LIFETIME));
    }
}
