//! Token responses (RFC 6749 section 5.1) and error responses (section 5.2).

use crate::command::RefreshOutcome;
use crate::error::{RefreshError, RefreshErrorKind};
use crate::json::{lifetime_field, malformed, read_object, string_field};
use crate::redact::{error_code, server_text};
use crate::retry_after::parse_retry_after;
use crate::token::{AccessToken, RefreshToken, TokenSet};
use http::{HeaderMap, StatusCode};
use std::time::SystemTime;

/// The largest token response body parsed, in bytes. A success with a larger body is a
/// transient [`RefreshErrorKind::TooLarge`]. Adapters should read at most one byte more
/// than this and pass what they read, so an oversized body is detected without buffering
/// it whole.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// The RFC 6749 section 5.2 error codes. On any 4xx they log the session out.
const STANDARD_CODES: [&str; 6] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
];

/// Codes that blame the client (its credentials, or what it may ask for), not the user's
/// refresh token: the application's configuration is wrong. Logging the user out would
/// destroy tokens that may be good, so they are
/// [configuration](RefreshError::is_configuration) errors: the tokens are kept, waiting
/// requests fail, and refreshing waits for the backoff cap or a login.
const CLIENT_CODES: [&str; 2] = ["invalid_client", "unauthorized_client"];

/// Codes that say "try again later" (RFC 6749 section 4.1.2.1; some servers also send
/// them from the token endpoint). Logging a user out over them would be wrong.
const TRANSIENT_CODES: [&str; 2] = ["server_error", "temporarily_unavailable"];

/// Longest `error` code believed; longer ones are treated as no code at all.
const MAX_CODE_LEN: usize = 64;

/// Turns a token endpoint response into a refresh outcome.
///
/// `now` is the caller's wall clock, used only to convert an HTTP-date `Retry-After`.
/// The `Content-Type` is not checked: the body is parsed as JSON whatever it claims to be.
///
/// # Success (2xx)
/// The body must be a JSON object (RFC 6749 section 5.1):
/// - `access_token`: required, a string that [`AccessToken::new`] accepts;
/// - `token_type`: `Bearer`, case-insensitively. When absent it is assumed to be `Bearer`
///   (lenient: some servers omit it); any other type is refused, since only bearer tokens
///   can be sent;
/// - `expires_in`: optional, seconds as a JSON integer or float or a numeric string. Zero
///   or negative means already expired; huge values are capped at
///   [`MAX_LIFETIME`](crate::MAX_LIFETIME); absent means unknown expiry;
/// - `refresh_token`: optional; present means rotation. An empty string counts as absent;
/// - `scope`: optional string.
///
/// `null` counts as absent and unknown fields are ignored. A known field that appears
/// twice is refused: which copy wins differs between parsers, so the body is ambiguous.
/// Anything wrong (bad JSON, not an object, invalid UTF-8, wrong types, more than
/// [`MAX_TOKEN_RESPONSE_BYTES`]) is a *transient* failure: a garbled success does not
/// prove that the refresh token is dead. One exception: a 2xx body with a section 5.2
/// `error` code and no `access_token` is an error response sent with the wrong status
/// (GitHub does this), and is judged by the table below as if it were a 400.
///
/// # Failure
/// | status | body | outcome |
/// |---|---|---|
/// | any | `invalid_client`, `unauthorized_client` | configuration [`RefreshErrorKind::OAuth`] (see below) |
/// | 400, 401 | section 5.2 `error` code | permanent [`RefreshErrorKind::OAuth`] |
/// | 400, 401 | none usable | permanent [`RefreshErrorKind::Status`] |
/// | 408, 429, 5xx | any | transient [`RefreshErrorKind::Status`] |
/// | other 4xx | one of the six section 5.2 codes | permanent [`RefreshErrorKind::OAuth`] |
/// | other 4xx, 1xx, 3xx | anything else | transient [`RefreshErrorKind::Status`] |
///
/// Only 400/401 (and the standard codes) are permanent because a permanent failure logs
/// the user out and deletes the stored tokens. A 404, 403 or 3xx without an OAuth error
/// more likely comes from a proxy, a deployment in progress or a misconfigured URI than
/// from a dead refresh token; a transient failure keeps the session, and the failed
/// requests still surface the error. The codes `server_error` and
/// `temporarily_unavailable` are transient on any status. Every transient failure carries
/// the response's `Retry-After`, if any. The client's own errors (`invalid_client`,
/// `unauthorized_client`) are neither: the refresh token is the user's, the client's
/// credentials the application's, so the session keeps its tokens, fails the waiting
/// requests with the error and emits [`Event::RefreshFailed`](crate::Event::RefreshFailed),
/// and refreshes again only after [`Backoff::cap`](crate::Backoff::cap) or a login. The `error_description` becomes the error's
/// detail, cleaned and cut to 200 characters, with long token-like words elided.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use reauth_core::oauth2::parse_token_response;
/// use reauth_core::{RefreshErrorKind, RefreshOutcome};
/// use std::time::{Duration, SystemTime};
///
/// let body = br#"{"access_token":"mF_9.B5f-4.1JqM","token_type":"Bearer",
///                 "expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA"}"#;
/// let RefreshOutcome::Success(set) =
///     parse_token_response(StatusCode::OK, &HeaderMap::new(), body, SystemTime::now())
/// else {
///     panic!("a valid response")
/// };
/// assert_eq!(set.access_token().secret(), "mF_9.B5f-4.1JqM");
/// assert_eq!(set.expires_in(), Some(Duration::from_secs(3600)));
///
/// let body = br#"{"error":"invalid_grant"}"#;
/// let RefreshOutcome::Failed(error) =
///     parse_token_response(StatusCode::BAD_REQUEST, &HeaderMap::new(), body, SystemTime::now())
/// else {
///     panic!("an error response")
/// };
/// assert!(error.is_permanent());
/// assert_eq!(error.kind(), &RefreshErrorKind::OAuth { code: "invalid_grant".into() });
/// ```
pub fn parse_token_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> RefreshOutcome {
    if !status.is_success() {
        let oauth_status = status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED;
        let error_body = ErrorBody::parse(body);
        return RefreshOutcome::Failed(classify(status, headers, error_body, oauth_status, now));
    }
    match parse_token_set(body) {
        Ok(set) => RefreshOutcome::Success(set),
        // Some servers (GitHub) send errors with 200: an `error` code without an
        // `access_token` is an error response, judged as if its status were 400.
        Err(e) => match ErrorBody::parse(body) {
            Some(b) if !b.has_access_token => {
                RefreshOutcome::Failed(classify(status, headers, Some(b), true, now))
            }
            _ => RefreshOutcome::Failed(e),
        },
    }
}

fn parse_token_set(body: &[u8]) -> Result<TokenSet, RefreshError> {
    const NAMES: [&str; 5] = [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
    ];
    let [access, token_type, expires_in, refresh, scope] =
        read_object(body, MAX_TOKEN_RESPONSE_BYTES, NAMES).map_err(|e| e.into_refresh_error())?;

    if let Some(kind) = string_field(token_type, "token_type")? {
        if !kind.eq_ignore_ascii_case("bearer") {
            // Named only if short and plain (`DPoP`, `mac`): anything else might be a token.
            let plain = kind.len() <= 10 && kind.bytes().all(|b| b.is_ascii_alphanumeric());
            return Err(malformed(if plain {
                format!("token_type `{kind}` is not Bearer")
            } else {
                "token_type is not Bearer".to_owned()
            }));
        }
    }
    let access = string_field(access, "access_token")?
        .ok_or_else(|| malformed("`access_token` is missing"))?;
    let access = AccessToken::new(access)
        .map_err(|e| malformed(format!("`access_token` is invalid: {e}")))?;
    let mut set = TokenSet::new(access);
    if let Some(lifetime) = lifetime_field(expires_in, "expires_in")? {
        set = set.with_expires_in(lifetime);
    }
    if let Some(refresh) = string_field(refresh, "refresh_token")?.filter(|r| !r.is_empty()) {
        let refresh = RefreshToken::new(refresh)
            .map_err(|e| malformed(format!("`refresh_token` is invalid: {e}")))?;
        set = set.with_refresh_token(refresh);
    }
    if let Some(scope) = string_field(scope, "scope")? {
        set = set.with_scope(scope);
    }
    Ok(set)
}

/// True for the statuses that say "try again later" on their own.
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// A transient `Status` error carrying the response's `Retry-After`, if any.
pub(crate) fn transient_status(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> RefreshError {
    let error = RefreshError::transient(RefreshErrorKind::Status {
        status: status.as_u16(),
    });
    match parse_retry_after(headers, now) {
        Some(delay) => error.with_retry_after(delay),
        None => error,
    }
}

/// The failure table of [`parse_token_response`]; `oauth_status` marks the statuses on
/// which section 5.2 error responses are expected (400, 401).
fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<ErrorBody>,
    oauth_status: bool,
    now: SystemTime,
) -> RefreshError {
    let with_detail = |e: RefreshError| match &body {
        Some(b) => b.annotate(e),
        None => e,
    };
    let code = body.as_ref().map(|b| b.code.as_str());
    if is_transient_status(status) || code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        return with_detail(transient_status(status, headers, now));
    }
    match code {
        Some(code) if CLIENT_CODES.contains(&code) => {
            with_detail(RefreshError::configuration(RefreshErrorKind::OAuth {
                code: code.to_owned(),
            }))
        }
        Some(code) if oauth_status || STANDARD_CODES.contains(&code) => {
            with_detail(RefreshError::permanent(RefreshErrorKind::OAuth {
                code: error_code(code).to_owned(),
            }))
        }
        _ if oauth_status => with_detail(RefreshError::permanent(RefreshErrorKind::Status {
            status: status.as_u16(),
        })),
        _ => with_detail(transient_status(status, headers, now)),
    }
}

/// The usable part of a section 5.2 error body.
struct ErrorBody {
    code: String,
    description: Option<String>,
    has_access_token: bool,
}

impl ErrorBody {
    /// `None` unless the body is a JSON object whose `error` is a plausible code: a
    /// non-empty string of at most 64 characters from the section 5.2 character set.
    fn parse(body: &[u8]) -> Option<Self> {
        let [error, description, access_token] = read_object(
            body,
            MAX_TOKEN_RESPONSE_BYTES,
            ["error", "error_description", "access_token"],
        )
        .ok()?;
        let code = string_field(error, "error").ok()??;
        let plausible = !code.is_empty()
            && code.len() <= MAX_CODE_LEN
            && code
                .bytes()
                .all(|b| (0x20..=0x7E).contains(&b) && b != b'"' && b != b'\\');
        if !plausible {
            return None;
        }
        // A description of the wrong type is dropped rather than losing the code.
        let description = match description {
            Some(serde_json::Value::String(d)) => server_text(&d),
            _ => None,
        };
        Some(Self {
            code,
            description,
            has_access_token: access_token.is_some(),
        })
    }

    /// Adds the description, or the code when the error kind does not show it.
    fn annotate(&self, error: RefreshError) -> RefreshError {
        let shows_code = matches!(error.kind(), RefreshErrorKind::OAuth { .. });
        match (&self.description, shows_code) {
            (Some(d), true) => error.with_detail(d.clone()),
            (Some(d), false) => error.with_detail(format!("{}: {d}", error_code(&self.code))),
            (None, true) => error,
            (None, false) => error.with_detail(error_code(&self.code).to_owned()),
        }
    }
}
