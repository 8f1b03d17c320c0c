//! `token_response`: an arbitrary status, headers and body into
//! [`parse_token_response`] (RFC 6749 section 5.1 / 5.2).
//!
//! Checked on every input, besides "no panic":
//! - **secrets**: rotating the text of `access_token` and `refresh_token` in the body
//!   (same length, same validity, same JSON structure) leaves the outcome's `Debug` and
//!   the error's `Display` byte-for-byte unchanged, so neither can show any part of them,
//!   whether the response parses or not;
//! - **2xx**: a complete JSON object whose other known fields are well formed is a
//!   `Success` iff `access_token` is a valid token, with exactly the body's values; an
//!   ill-formed known field, a repeated known key, a body that is not one JSON object or
//!   exceeds the cap is a failure (`TooLarge` for the cap);
//! - **other statuses**: never a success; 408, 429 and 5xx are transient; a permanent
//!   failure is an OAuth code (not a "retry later" one, nor `invalid_client` or
//!   `unauthorized_client`, which are configuration errors) or HTTP 400/401; every transient
//!   non-2xx failure is `Status` with the response's own status and its `Retry-After`.

use crate::http_input::{self, Response};
use crate::json_scan::{self, Scan};
use http::StatusCode;
use reauth_core::oauth2::{parse_token_response, MAX_TOKEN_RESPONSE_BYTES};
use reauth_core::{
    parse_retry_after, AccessToken, RefreshErrorKind, RefreshOutcome, RefreshToken, MAX_LIFETIME,
};
use serde_json::Value;
use std::time::Duration;

/// The keys whose values are secrets.
pub const SECRET_KEYS: [&str; 2] = ["access_token", "refresh_token"];

/// Everything a human or a log could see of an outcome.
pub fn shown(outcome: &RefreshOutcome) -> String {
    match outcome {
        RefreshOutcome::Success(set) => format!("{outcome:?} | {set:#?}"),
        RefreshOutcome::Failed(e) => format!("{outcome:?} | {e} | {e:#?}"),
        other => format!("{other:?}"),
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let r = http_input::parse(data);
    let outcome = parse_token_response(r.status, &r.headers, &r.body, r.now);
    let scan = json_scan::scan(&r.body);
    check_secrets(&r, &scan, &outcome);
    // Retry-After on its own: no panic, and delta-seconds are exact.
    let retry_after = parse_retry_after(&r.headers, r.now);
    if let Some(v) = r.headers.get(http::header::RETRY_AFTER) {
        let v = v.to_str().map(str::trim).unwrap_or("");
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            let secs = v.parse().unwrap_or(u64::MAX);
            assert_eq!(retry_after, Some(Duration::from_secs(secs)), "{v}");
        }
    }
    if r.status.is_success() {
        check_success_status(&r, &scan, &outcome);
    } else {
        check_failure_status(&r, &outcome, retry_after);
    }
}

fn check_secrets(r: &Response, scan: &Scan<'_>, outcome: &RefreshOutcome) {
    if let Some(rotated) = json_scan::rotate_values(&r.body, scan, &SECRET_KEYS) {
        let again = parse_token_response(r.status, &r.headers, &rotated, r.now);
        let (a, b) = (shown(outcome), shown(&again));
        assert_eq!(a, b, "the outcome depends on the text of a secret");
    }
}

/// How a known field of a 2xx body reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Absent, `null` or well formed.
    Fine,
    /// Certainly refused.
    Bad,
    /// Not judged by this oracle (e.g. `"1.5e3"` as a lifetime).
    Unsure,
}

/// `expires_in`-style lifetimes: a JSON number, or a string of digits (with blanks
/// around) is fine; a string with anything but digits, signs, points and exponents, or no
/// digit at all, or another type, is bad; other numeric-looking strings are unsure.
pub fn lifetime(value: Option<&Value>) -> (Field, Option<Duration>) {
    match value {
        None | Some(Value::Null) => (Field::Fine, None),
        Some(Value::Number(n)) => {
            let d = if let Some(s) = n.as_u64() {
                Some(Duration::from_secs(s).min(MAX_LIFETIME))
            } else if n.as_i64().is_some() {
                Some(Duration::ZERO)
            } else {
                None // a float: only bounded
            };
            (Field::Fine, d)
        }
        Some(Value::String(s)) => {
            let t = s.trim_matches([' ', '\t']);
            if !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()) {
                let secs: u64 = t.parse().expect("19 digits fit a u64");
                (
                    Field::Fine,
                    Some(Duration::from_secs(secs).min(MAX_LIFETIME)),
                )
            } else if t.is_empty()
                || t.len() > 64
                || !t.bytes().any(|b| b.is_ascii_digit())
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            {
                (Field::Bad, None)
            } else {
                (Field::Unsure, None)
            }
        }
        Some(_) => (Field::Bad, None),
    }
}

/// A token field: absent, `null`, empty (when `empty_ok`) or a valid token is fine.
pub fn token_field(value: Option<&Value>, empty_ok: bool) -> (Field, Option<String>) {
    match value {
        None | Some(Value::Null) => (Field::Fine, None),
        Some(Value::String(s)) if s.is_empty() && empty_ok => (Field::Fine, None),
        Some(Value::String(s)) if RefreshToken::new(s.as_str()).is_ok() => {
            (Field::Fine, Some(s.clone()))
        }
        Some(_) => (Field::Bad, None),
    }
}

fn plain(value: Option<&Value>, fine: impl Fn(&Value) -> bool) -> Field {
    match value {
        None | Some(Value::Null) => Field::Fine,
        Some(v) if fine(v) => Field::Fine,
        Some(_) => Field::Bad,
    }
}

/// Parses the value of `key` if it appears once; a value that does not parse (a number
/// beyond `f64`) is reported as `Err`.
fn value_of(scan: &Scan<'_>, key: &str) -> Result<Option<Value>, ()> {
    match scan.value(key) {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(())) => Err(()),
    }
}

fn check_success_status(r: &Response, scan: &Scan<'_>, outcome: &RefreshOutcome) {
    if r.body.len() > MAX_TOKEN_RESPONSE_BYTES {
        let RefreshOutcome::Failed(e) = outcome else {
            panic!("an oversized body was accepted: {outcome:?}");
        };
        assert_eq!(
            e.kind(),
            &RefreshErrorKind::TooLarge {
                limit: MAX_TOKEN_RESPONSE_BYTES
            }
        );
        assert!(!e.is_permanent());
        return;
    }
    if !scan.complete {
        let RefreshOutcome::Failed(e) = outcome else {
            panic!("a body that is not one JSON object was accepted: {outcome:?}");
        };
        assert_eq!(e.kind(), &RefreshErrorKind::Malformed, "{e}");
        assert!(!e.is_permanent());
        return;
    }
    const KNOWN: [&str; 5] = [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
    ];
    if KNOWN.iter().any(|k| scan.repeated(k)) {
        assert!(
            matches!(outcome, RefreshOutcome::Failed(_)),
            "a repeated key was accepted: {outcome:?}"
        );
        return;
    }
    let values: Result<Vec<Option<Value>>, ()> = KNOWN.iter().map(|k| value_of(scan, k)).collect();
    let Ok(values) = values else {
        // A known field that the JSON parser refuses (a number beyond f64).
        assert!(matches!(outcome, RefreshOutcome::Failed(_)), "{outcome:?}");
        return;
    };
    let [access, token_type, expires_in, refresh, scope] =
        [0, 1, 2, 3, 4].map(|i| values[i].as_ref());

    let access_ok =
        matches!(access, Some(Value::String(s)) if AccessToken::new(s.as_str()).is_ok());
    let token_type = plain(
        token_type,
        |v| matches!(v, Value::String(s) if s.eq_ignore_ascii_case("bearer")),
    );
    let (life_field, life) = lifetime(expires_in);
    let (refresh_field, refresh) = token_field(refresh, true);
    let scope_field = plain(scope, Value::is_string);
    let fields = [token_type, life_field, refresh_field, scope_field];

    match outcome {
        RefreshOutcome::Success(set) => {
            assert!(access_ok, "success without a valid access_token");
            assert!(
                !fields.contains(&Field::Bad),
                "success with a bad field: {fields:?}"
            );
            let Some(Value::String(a)) = access else {
                unreachable!()
            };
            assert_eq!(set.access_token().secret(), a);
            assert_eq!(set.refresh_token().map(|t| t.secret()), refresh.as_deref());
            assert_eq!(set.scope(), scope.and_then(Value::as_str));
            assert!(set.expires_in().is_none_or(|d| d <= MAX_LIFETIME));
            assert_eq!(
                set.expires_in().is_some(),
                expires_in.is_some_and(|v| !v.is_null())
            );
            if let Some(d) = life {
                assert_eq!(set.expires_in(), Some(d));
            }
        }
        RefreshOutcome::Failed(e) => {
            assert!(
                !(access_ok && fields.iter().all(|f| *f == Field::Fine)),
                "a well-formed token response was refused: {e}"
            );
        }
        other => panic!("unknown outcome {other:?}"),
    }
}

/// The codes an `OAuth` error may show: RFC 6749 and RFC 6750 ones, or `other`.
const SHOWN_CODES: [&str; 11] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "unsupported_response_type",
    "invalid_token",
    "insufficient_scope",
    "other",
];

/// The codes that say "try again later" on any status.
const RETRY_LATER: [&str; 2] = ["server_error", "temporarily_unavailable"];

fn check_failure_status(r: &Response, outcome: &RefreshOutcome, retry_after: Option<Duration>) {
    let RefreshOutcome::Failed(e) = outcome else {
        panic!("HTTP {} was a success: {outcome:?}", r.status);
    };
    let status = r.status;
    let transient_status = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if transient_status {
        assert!(!e.is_permanent(), "HTTP {status} logged out: {e}");
    }
    match e.kind() {
        RefreshErrorKind::OAuth { code } => {
            // The client's own errors keep the session (configuration); the rest log out.
            let client = ["invalid_client", "unauthorized_client"].contains(&code.as_str());
            if client {
                assert!(e.is_configuration() && !e.is_permanent(), "{e}");
            } else {
                assert!(e.is_permanent(), "a transient OAuth error: {e}");
            }
            assert!(!RETRY_LATER.contains(&code.as_str()), "{e}");
            assert!(!code.is_empty() && code.len() <= 64, "{e}");
            // Server text is never shown: a code of no RFC reads `other`.
            assert!(SHOWN_CODES.contains(&code.as_str()), "{e}");
        }
        RefreshErrorKind::Status { status: s } => {
            assert_eq!(*s, status.as_u16());
            if e.is_permanent() {
                assert!(
                    status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
                    "HTTP {status} without an OAuth code logged out"
                );
            } else {
                assert_eq!(e.retry_after(), retry_after, "Retry-After lost: {e}");
            }
        }
        other => panic!("HTTP {status} gave {other:?}"),
    }
}
