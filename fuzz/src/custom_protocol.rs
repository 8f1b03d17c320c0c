//! `custom_protocol`: arbitrary responses into the example JSON refresh protocol,
//! [`JsonRefreshProtocol`] (`{"accessToken": …, "refreshToken": …, "expiresIn": …}`).
//!
//! Checked on every input, besides "no panic":
//! - **secrets**: rotating the text of `accessToken` and `refreshToken` leaves the
//!   outcome's `Debug` and the error's `Display` unchanged;
//! - **2xx**: a complete JSON object whose other known fields are well formed is a
//!   `Success` iff `accessToken` is a valid token, with exactly the body's values;
//!   anything else is a transient failure (`TooLarge` over the cap, `Malformed` otherwise);
//! - **other statuses**: a `Status` failure with the response's status, permanent exactly
//!   for 401, 403 and the `x-fuzz-permanent` statuses (never for 408, 429, 5xx), and a
//!   transient one carries the response's `Retry-After`;
//! - **requests**: for every valid `refreshToken` in the body, `build_request` makes a
//!   POST whose JSON body holds exactly that token.

use crate::http_input::{self, Response};
use crate::json_scan::{self, Scan};
use crate::token_response::{lifetime, shown, token_field, Field};
use http::{Method, StatusCode};
use reauth_core::oauth2::MAX_TOKEN_RESPONSE_BYTES;
use reauth_core::protocol::JsonRefreshProtocol;
use reauth_core::{
    parse_retry_after, AccessToken, RefreshErrorKind, RefreshOutcome, RefreshProtocol,
    RefreshToken, MAX_LIFETIME,
};
use serde_json::Value;

/// The keys whose values are secrets.
pub const SECRET_KEYS: [&str; 2] = ["accessToken", "refreshToken"];

const URI: &str = "https://api.example.com/auth/refresh";

/// The fuzz target.
pub fn run(data: &[u8]) {
    let r = http_input::parse(data);
    let mut api = JsonRefreshProtocol::new(URI.parse().expect("a valid URI")).expect("https");
    for status in &r.permanent {
        api = api.with_permanent_status(*status);
    }
    assert_eq!(api.max_response_bytes(), MAX_TOKEN_RESPONSE_BYTES);
    let outcome = api.parse_response(r.status, &r.headers, &r.body, r.now);
    let scan = json_scan::scan(&r.body);

    if let Some(rotated) = json_scan::rotate_values(&r.body, &scan, &SECRET_KEYS) {
        let again = api.parse_response(r.status, &r.headers, &rotated, r.now);
        assert_eq!(
            shown(&outcome),
            shown(&again),
            "the outcome depends on the text of a secret"
        );
    }
    if r.status.is_success() {
        check_success_status(&r, &scan, &outcome);
    } else {
        check_failure_status(&r, &outcome);
    }
    check_requests(&api, &scan);
}

fn check_success_status(r: &Response, scan: &Scan<'_>, outcome: &RefreshOutcome) {
    let failed = |what: &str| match outcome {
        RefreshOutcome::Failed(e) => {
            assert!(!e.is_permanent(), "{what}: {e}");
            e.clone()
        }
        other => panic!("{what} was accepted: {other:?}"),
    };
    if r.body.len() > MAX_TOKEN_RESPONSE_BYTES {
        let e = failed("an oversized body");
        assert_eq!(
            e.kind(),
            &RefreshErrorKind::TooLarge {
                limit: MAX_TOKEN_RESPONSE_BYTES
            }
        );
        return;
    }
    if !scan.complete {
        let e = failed("a body that is not one JSON object");
        assert_eq!(e.kind(), &RefreshErrorKind::Malformed);
        return;
    }
    const KNOWN: [&str; 3] = ["accessToken", "refreshToken", "expiresIn"];
    if KNOWN.iter().any(|k| scan.repeated(k)) {
        let e = failed("a repeated key");
        assert_eq!(e.kind(), &RefreshErrorKind::Malformed);
        return;
    }
    let mut values = Vec::new();
    for key in KNOWN {
        match scan.value(key) {
            None => values.push(None),
            Some(Ok(v)) => values.push(Some(v)),
            Some(Err(())) => {
                failed("a number beyond f64");
                return;
            }
        }
    }
    let [access, refresh, expires_in] = [0, 1, 2].map(|i| values[i].as_ref());
    let access_ok =
        matches!(access, Some(Value::String(s)) if AccessToken::new(s.as_str()).is_ok());
    let (life_field, life) = lifetime(expires_in);
    let (refresh_field, refresh) = token_field(refresh, true);
    let fields = [life_field, refresh_field];

    match outcome {
        RefreshOutcome::Success(set) => {
            assert!(access_ok, "success without a valid accessToken");
            assert!(
                !fields.contains(&Field::Bad),
                "success with a bad field: {fields:?}"
            );
            let Some(Value::String(a)) = access else {
                unreachable!()
            };
            assert_eq!(set.access_token().secret(), a);
            assert_eq!(set.refresh_token().map(|t| t.secret()), refresh.as_deref());
            assert!(set.expires_in().is_none_or(|d| d <= MAX_LIFETIME));
            assert_eq!(
                set.expires_in().is_some(),
                expires_in.is_some_and(|v| !v.is_null())
            );
            if let Some(d) = life {
                assert_eq!(set.expires_in(), Some(d));
            }
            assert_eq!(set.scope(), None);
        }
        RefreshOutcome::Failed(e) => {
            assert!(!e.is_permanent(), "a 2xx logged out: {e}");
            assert_eq!(e.kind(), &RefreshErrorKind::Malformed, "{e}");
            assert!(
                !(access_ok && fields.iter().all(|f| *f == Field::Fine)),
                "a well-formed response was refused: {e}"
            );
        }
        other => panic!("unknown outcome {other:?}"),
    }
}

fn check_failure_status(r: &Response, outcome: &RefreshOutcome) {
    let RefreshOutcome::Failed(e) = outcome else {
        panic!("HTTP {} was a success: {outcome:?}", r.status);
    };
    let status = r.status;
    assert_eq!(
        e.kind(),
        &RefreshErrorKind::Status {
            status: status.as_u16()
        }
    );
    let transient = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    let listed = status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || r.permanent.contains(&status);
    assert_eq!(e.is_permanent(), listed && !transient, "HTTP {status}: {e}");
    if !e.is_permanent() {
        assert_eq!(e.retry_after(), parse_retry_after(&r.headers, r.now), "{e}");
    }
}

fn check_requests(api: &JsonRefreshProtocol, scan: &Scan<'_>) {
    for entry in scan.all("refreshToken").take(2) {
        let Ok(Value::String(text)) = serde_json::from_str::<Value>(entry.raw) else {
            continue;
        };
        let Ok(token) = RefreshToken::new(text.as_str()) else {
            continue;
        };
        let request = api.build_request(Some(&token)).expect("a request");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), URI);
        assert_eq!(request.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_slice(request.body()).expect("a JSON body");
        assert_eq!(body, serde_json::json!({ "refreshToken": text }));
    }
    assert!(api.build_request(None).is_err_and(|e| e.is_permanent()));
}
