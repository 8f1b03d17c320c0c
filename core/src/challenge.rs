//! `WWW-Authenticate` challenges (RFC 9110 section 11.6.1) and the RFC 6750 section 3
//! `Bearer` challenge that tells whether a 401 calls for a token refresh.
//!
//! ```
//! use http::{header::WWW_AUTHENTICATE, HeaderMap, HeaderValue, StatusCode};
//! use reauth_core::challenge::{bearer_challenge, should_refresh, BearerError};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(
//!     r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
//! ));
//! let bearer = bearer_challenge(&headers).unwrap();
//! assert_eq!(bearer.error(), Some(&BearerError::InvalidToken));
//! assert!(should_refresh(StatusCode::UNAUTHORIZED, &headers));
//! ```

mod parse;

pub use parse::{
    parse_challenges, Challenge, ChallengeError, MAX_CHALLENGES, MAX_PARAMS, MAX_VALUE_LEN,
};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

/// At most this many `WWW-Authenticate` fields of one response are examined.
pub const MAX_FIELDS: usize = 16;

/// The `error` attribute of a bearer challenge (RFC 6750 section 3.1). Matched
/// case-insensitively, so an oddly cased `Insufficient_Scope` still prevents a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// `invalid_request`: the request is malformed; a new token will not fix it.
    InvalidRequest,
    /// `invalid_token`: expired, revoked or malformed token; refreshing may help.
    InvalidToken,
    /// `insufficient_scope`: the token lacks privileges; refreshing will not add them.
    InsufficientScope,
    /// Any other code, as sent.
    Other(String),
}

impl BearerError {
    fn from_code(code: &str) -> Self {
        if code.eq_ignore_ascii_case("invalid_request") {
            Self::InvalidRequest
        } else if code.eq_ignore_ascii_case("invalid_token") {
            Self::InvalidToken
        } else if code.eq_ignore_ascii_case("insufficient_scope") {
            Self::InsufficientScope
        } else {
            Self::Other(code.to_owned())
        }
    }

    /// The code as text (lower case for the standard ones).
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::Other(code) => code,
        }
    }
}

/// A `Bearer` challenge (RFC 6750 section 3) with its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BearerChallenge {
    realm: Option<String>,
    scope: Option<String>,
    error: Option<BearerError>,
    error_description: Option<String>,
    error_uri: Option<String>,
}

impl BearerChallenge {
    /// Reads a parsed challenge as a bearer challenge. `None` if the scheme is not
    /// `Bearer` (any case), if it uses the token68 form, or if one of the five RFC 6750
    /// attributes appears twice (the RFC forbids it, and which copy to believe would be a
    /// guess). Other attributes are ignored.
    pub fn from_challenge(challenge: &Challenge) -> Option<Self> {
        if !challenge.scheme().eq_ignore_ascii_case("Bearer") || challenge.token68().is_some() {
            return None;
        }
        let single = |name: &str| -> Result<Option<String>, ()> {
            let mut values = challenge.params().iter().filter(|(n, _)| n == name);
            match (values.next(), values.next()) {
                (_, Some(_)) => Err(()),
                (value, None) => Ok(value.map(|(_, v)| v.clone())),
            }
        };
        Some(Self {
            realm: single("realm").ok()?,
            scope: single("scope").ok()?,
            error: single("error").ok()?.map(|c| BearerError::from_code(&c)),
            error_description: single("error_description").ok()?,
            error_uri: single("error_uri").ok()?,
        })
    }

    /// The protection space, if given.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// The scope needed, as sent (space-separated).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The individual scope tokens.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// The error code, if any.
    pub fn error(&self) -> Option<&BearerError> {
        self.error.as_ref()
    }

    /// The human-readable error description, if any.
    pub fn error_description(&self) -> Option<&str> {
        self.error_description.as_deref()
    }

    /// The URI of an error page, if any.
    pub fn error_uri(&self) -> Option<&str> {
        self.error_uri.as_deref()
    }
}

/// The first valid bearer challenge among the response's `WWW-Authenticate` fields (at
/// most [`MAX_FIELDS`] are read). A field that does not parse, or is not UTF-8, is
/// skipped whole: the others may still hold a good challenge.
pub fn bearer_challenge(headers: &HeaderMap) -> Option<BearerChallenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .take(MAX_FIELDS)
        .filter_map(|value| std::str::from_utf8(value.as_bytes()).ok())
        .filter_map(|text| parse_challenges(text).ok())
        .flat_map(|challenges| challenges.into_iter())
        .find_map(|challenge| BearerChallenge::from_challenge(&challenge))
}

/// True if a response with this status and these headers means the access token should be
/// refreshed: a 401, unless its bearer challenge rules it out.
///
/// - 401 with a bearer `error` of `insufficient_scope` or `invalid_request`: no (a new
///   token would be rejected the same way);
/// - any other 401, including one without a challenge, with an unparseable one, or with
///   only other schemes: yes (the machine's replay rule stops any loop);
/// - 403 (even with `invalid_token`) and every other status: no.
pub fn should_refresh(status: StatusCode, headers: &HeaderMap) -> bool {
    if status != StatusCode::UNAUTHORIZED {
        return false;
    }
    !matches!(
        bearer_challenge(headers).and_then(|c| c.error),
        Some(BearerError::InsufficientScope | BearerError::InvalidRequest)
    )
}

/// [`should_refresh`], and also a 403 that names no other reason: no `Bearer` challenge at
/// all (the bare 403 of django-oauth-toolkit's stock views), or one whose `error` is
/// `invalid_token`. A 403 whose bearer challenge names any other error
/// (`insufficient_scope` above all) or none never refreshes.
pub(crate) fn should_refresh_or_bare_403(status: StatusCode, headers: &HeaderMap) -> bool {
    if status != StatusCode::FORBIDDEN {
        return should_refresh(status, headers);
    }
    match bearer_challenge(headers) {
        None => true,
        Some(challenge) => challenge.error == Some(BearerError::InvalidToken),
    }
}

/// True if `headers` carry `grpc-status: 16` (UNAUTHENTICATED). In a response's headers
/// this is a *trailers-only* response: the call failed before any message, so it can be
/// replayed like a 401. `PERMISSION_DENIED` (7) is not it: the token is good and lacks a
/// right.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use reauth_core::challenge::grpc_unauthenticated;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("grpc-status", HeaderValue::from_static("16"));
/// assert!(grpc_unauthenticated(&headers));
/// headers.insert("grpc-status", HeaderValue::from_static("7"));
/// assert!(!grpc_unauthenticated(&headers));
/// ```
pub fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"16")
}
