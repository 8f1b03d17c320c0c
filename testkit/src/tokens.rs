//! Token families, refresh-token rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! Every issuance starts a family. Refreshing with the family's current refresh token
//! rotates it; presenting a refresh token that was already rotated (outside the grace
//! window) is treated as theft and revokes the whole family.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::config::ServerConfig;

/// Identifies one token family: the tokens descending from one login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(u64);

impl FamilyId {
    /// Reads what `Display` writes (`family-3`), or the bare number.
    pub(crate) fn parse(s: &str) -> Option<FamilyId> {
        let n = s.strip_prefix("family-").unwrap_or(s);
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok().map(FamilyId)
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "family-{}", self.0)
    }
}

/// A fresh token family handed to a test, as if the user had just logged in.
///
/// This is a test server: the secrets are deliberately public here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedTokens {
    /// The bearer access token.
    pub access_token: String,
    /// The refresh token (single use while rotation is on).
    pub refresh_token: String,
    /// Seconds until the access token expires, as the token endpoint would say.
    pub expires_in: u64,
    /// Granted scope, space-separated.
    pub scope: String,
    /// The family these tokens belong to.
    pub family: FamilyId,
}

/// Names a family to [`TestServer::revoke_family`](crate::TestServer::revoke_family):
/// its id, or any access or refresh token that belongs to it.
#[derive(Debug, Clone, Copy)]
pub enum FamilyRef<'a> {
    /// The family id.
    Id(FamilyId),
    /// Any access or refresh token of the family.
    Token(&'a str),
}

impl From<FamilyId> for FamilyRef<'_> {
    fn from(id: FamilyId) -> Self {
        FamilyRef::Id(id)
    }
}

impl<'a> From<&'a str> for FamilyRef<'a> {
    fn from(token: &'a str) -> Self {
        FamilyRef::Token(token)
    }
}

impl<'a> From<&'a String> for FamilyRef<'a> {
    fn from(token: &'a String) -> Self {
        FamilyRef::Token(token)
    }
}

impl<'a> From<&'a IssuedTokens> for FamilyRef<'a> {
    fn from(tokens: &'a IssuedTokens) -> Self {
        FamilyRef::Id(tokens.family)
    }
}

/// What a successful grant hands back.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub access_token: String,
    /// `None` when rotation is off: the client keeps the refresh token it has.
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub scope: String,
    /// The grant was a tolerated replay inside the grace window.
    pub grace_reuse: bool,
}

/// Why a refresh was refused. All map to `invalid_grant` (or `invalid_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshError {
    Unknown,
    Revoked,
    /// An already-rotated token was replayed: the family is now revoked.
    ReuseDetected,
    /// The requested scope exceeds the family's.
    InvalidScope,
}

impl RefreshError {
    pub(crate) fn description(self) -> &'static str {
        match self {
            RefreshError::Unknown => "unknown refresh token",
            RefreshError::Revoked => "refresh token revoked",
            RefreshError::ReuseDetected => {
                "refresh token reuse detected: the token family has been revoked"
            }
            RefreshError::InvalidScope => "requested scope exceeds the granted scope",
        }
    }
}

/// Why an access token was refused by the protected API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    Unknown,
    Expired,
    Revoked,
}

impl AccessError {
    pub(crate) fn description(self) -> &'static str {
        match self {
            AccessError::Unknown => "unknown access token",
            AccessError::Expired => "access token expired",
            AccessError::Revoked => "access token revoked",
        }
    }
}

struct Family {
    scope: String,
    revoked: bool,
    current_refresh: Option<String>,
}

struct RefreshRecord {
    family: FamilyId,
    /// When it was rotated away; `None` while it is the family's current token.
    rotated_at: Option<Instant>,
}

struct AccessRecord {
    family: FamilyId,
    expires_at: Instant,
    /// Revoked on its own (a later refresh of the family, with `revoke_access_on_rotation`).
    revoked: bool,
    /// May be narrower than the family's (a refresh can ask for less).
    scope: String,
}

/// All issued tokens. Lives behind a short `std::sync::Mutex`; nothing here awaits.
#[derive(Default)]
pub(crate) struct TokenStore {
    next_family: u64,
    families: HashMap<FamilyId, Family>,
    refresh: HashMap<String, RefreshRecord>,
    access: HashMap<String, AccessRecord>,
}

impl TokenStore {
    /// Starts a family with an access token and (optionally) a refresh token.
    pub(crate) fn issue_family(
        &mut self,
        config: &ServerConfig,
        scope: &str,
        with_refresh: bool,
        now: Instant,
    ) -> (FamilyId, Grant) {
        self.next_family += 1;
        let id = FamilyId(self.next_family);
        self.families.insert(
            id,
            Family {
                scope: scope.to_owned(),
                revoked: false,
                current_refresh: None,
            },
        );
        let access_token = self.new_access(id, scope, config, now);
        let refresh_token = with_refresh.then(|| self.new_refresh(id));
        let grant = Grant {
            access_token,
            refresh_token,
            expires_in: config.expires_in(),
            scope: scope.to_owned(),
            grace_reuse: false,
        };
        (id, grant)
    }

    /// The `refresh_token` grant: validates, rotates, detects reuse.
    pub(crate) fn refresh(
        &mut self,
        config: &ServerConfig,
        presented: &str,
        requested_scope: Option<&str>,
        now: Instant,
    ) -> Result<Grant, RefreshError> {
        let (family_id, rotated_at) = match self.refresh.get(presented) {
            Some(r) => (r.family, r.rotated_at),
            None => return Err(RefreshError::Unknown),
        };
        let Some(family) = self.families.get(&family_id) else {
            return Err(RefreshError::Unknown);
        };
        if family.revoked {
            return Err(RefreshError::Revoked);
        }
        let within_grace = match rotated_at {
            None => false,
            Some(at) if now.saturating_duration_since(at) < config.reuse_grace => true,
            Some(_) => {
                self.revoke(family_id);
                return Err(RefreshError::ReuseDetected);
            }
        };
        let scope = match requested_scope {
            None => family.scope.clone(),
            Some(req) if is_subset(req, &family.scope) => req.to_owned(),
            Some(_) => return Err(RefreshError::InvalidScope),
        };
        if config.revoke_access_on_rotation {
            for record in self.access.values_mut() {
                if record.family == family_id {
                    record.revoked = true;
                }
            }
        }
        let access_token = self.new_access(family_id, &scope, config, now);
        let refresh_token = if within_grace {
            // Hand out the family's current token so racing clients converge on it.
            self.families
                .get(&family_id)
                .and_then(|f| f.current_refresh.clone())
        } else if config.rotate_refresh_tokens {
            if let Some(old) = self.refresh.get_mut(presented) {
                old.rotated_at = Some(now);
            }
            Some(self.new_refresh(family_id))
        } else {
            None
        };
        Ok(Grant {
            access_token,
            refresh_token,
            expires_in: config.expires_in(),
            scope,
            grace_reuse: within_grace,
        })
    }

    /// Validates a bearer token; on success returns its scope.
    pub(crate) fn check_access(&self, token: &str, now: Instant) -> Result<&str, AccessError> {
        let record = self.access.get(token).ok_or(AccessError::Unknown)?;
        let family = self
            .families
            .get(&record.family)
            .ok_or(AccessError::Unknown)?;
        if family.revoked || record.revoked {
            Err(AccessError::Revoked)
        } else if now >= record.expires_at {
            Err(AccessError::Expired)
        } else {
            Ok(&record.scope)
        }
    }

    /// Expires every access token issued so far.
    pub(crate) fn expire_all(&mut self, now: Instant) {
        for record in self.access.values_mut() {
            record.expires_at = record.expires_at.min(now);
        }
    }

    /// Resolves a [`FamilyRef`] to a known family.
    pub(crate) fn find(&self, which: FamilyRef<'_>) -> Option<FamilyId> {
        match which {
            FamilyRef::Id(id) => self.families.contains_key(&id).then_some(id),
            FamilyRef::Token(t) => self
                .refresh
                .get(t)
                .map(|r| r.family)
                .or_else(|| self.access.get(t).map(|a| a.family)),
        }
    }

    /// The refresh token the family would accept now without a reuse alarm; `None` if
    /// the family is unknown, revoked or has no refresh token.
    pub(crate) fn current_refresh(&self, id: FamilyId) -> Option<&str> {
        let family = self.families.get(&id)?;
        family
            .current_refresh
            .as_deref()
            .filter(|_| !family.revoked)
    }

    /// Revokes a family and everything in it. Returns false if it was unknown or
    /// already revoked.
    pub(crate) fn revoke(&mut self, id: FamilyId) -> bool {
        match self.families.get_mut(&id) {
            Some(f) if !f.revoked => {
                f.revoked = true;
                f.current_refresh = None;
                true
            }
            _ => false,
        }
    }

    fn new_access(
        &mut self,
        family: FamilyId,
        scope: &str,
        config: &ServerConfig,
        now: Instant,
    ) -> String {
        let token = random_token("at_");
        let record = AccessRecord {
            family,
            expires_at: checked_add(now, config.access_token_lifetime),
            revoked: false,
            scope: scope.to_owned(),
        };
        self.access.insert(token.clone(), record);
        token
    }

    fn new_refresh(&mut self, family: FamilyId) -> String {
        let token = random_token("rt_");
        self.refresh.insert(
            token.clone(),
            RefreshRecord {
                family,
                rotated_at: None,
            },
        );
        if let Some(f) = self.families.get_mut(&family) {
            f.current_refresh = Some(token.clone());
        }
        token
    }
}

/// `now + d`, saturating far in the future instead of panicking on huge lifetimes.
fn checked_add(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// True if every scope token of `requested` is in `granted`.
pub(crate) fn is_subset(requested: &str, granted: &str) -> bool {
    requested
        .split_ascii_whitespace()
        .all(|s| granted.split_ascii_whitespace().any(|g| g == s))
}

/// True if the space-separated `scope` contains `wanted`.
pub(crate) fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_ascii_whitespace().any(|s| s == wanted)
}

/// A prefixed, URL-safe random token: 256 bits from the OS.
fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS RNG failing is not recoverable in a useful way; fall back to a
        // process-unique value so the server keeps answering (a test server, not a vault).
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_le_bytes());
    }
    let mut token = String::with_capacity(prefix.len() + 43);
    token.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (TokenStore, ServerConfig) {
        (TokenStore::default(), ServerConfig::default())
    }

    #[test]
    fn rotation_then_reuse_revokes_family() {
        let (mut s, c) = store();
        let now = Instant::now();
        let (_, g) = s.issue_family(&c, "read", true, now);
        let rt1 = g.refresh_token.unwrap();
        let g2 = s.refresh(&c, &rt1, None, now).unwrap();
        let rt2 = g2.refresh_token.unwrap();
        assert_ne!(rt1, rt2);
        assert_eq!(
            s.refresh(&c, &rt1, None, now).unwrap_err(),
            RefreshError::ReuseDetected
        );
        assert_eq!(
            s.refresh(&c, &rt2, None, now).unwrap_err(),
            RefreshError::Revoked
        );
        assert_eq!(
            s.check_access(&g2.access_token, now),
            Err(AccessError::Revoked)
        );
    }

    #[test]
    fn scope_subset() {
        assert!(is_subset("read", "read write"));
        assert!(is_subset("", "read"));
        assert!(!is_subset("admin", "read write"));
        assert!(has_scope("read admin", "admin"));
    }

    #[test]
    fn tokens_are_distinct_and_url_safe() {
        let a = random_token("at_");
        let b = random_token("at_");
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
    }
}
