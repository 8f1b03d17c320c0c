//! RFC 6749 section 5.1 token responses and 5.2 error responses, friendly and hostile.

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use reauth_core::oauth2::{parse_token_response, MAX_TOKEN_RESPONSE_BYTES};
use reauth_core::{RefreshError, RefreshErrorKind, RefreshOutcome, TokenSet, MAX_LIFETIME};
use std::time::{Duration, SystemTime};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn parse_with(status: u16, headers: &HeaderMap, body: &[u8]) -> RefreshOutcome {
    let status = StatusCode::from_u16(status).unwrap();
    parse_token_response(status, headers, body, now())
}

fn ok(body: &str) -> TokenSet {
    match parse_with(200, &HeaderMap::new(), body.as_bytes()) {
        RefreshOutcome::Success(set) => set,
        other => panic!("expected success for {body}: {other:?}"),
    }
}

fn failed_with(status: u16, headers: &HeaderMap, body: &[u8]) -> RefreshError {
    match parse_with(status, headers, body) {
        RefreshOutcome::Failed(e) => e,
        other => panic!("expected failure: {other:?}"),
    }
}

fn failed(status: u16, body: &str) -> RefreshError {
    failed_with(status, &HeaderMap::new(), body.as_bytes())
}

/// A 2xx body that must be refused as a transient `Malformed`.
fn malformed(body: &[u8]) -> RefreshError {
    let e = failed_with(200, &HeaderMap::new(), body);
    assert_eq!(e.kind(), &RefreshErrorKind::Malformed, "{e}");
    assert!(!e.is_permanent());
    e
}

fn permanent_oauth(e: &RefreshError, code: &str) {
    assert!(e.is_permanent(), "{e}");
    assert_eq!(e.kind(), &RefreshErrorKind::OAuth { code: code.into() });
}

fn status_error(e: &RefreshError, status: u16, permanent: bool) {
    assert_eq!(e.is_permanent(), permanent, "{e}");
    assert_eq!(e.kind(), &RefreshErrorKind::Status { status });
}

fn with_retry_after(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
    h
}

// ---- Section 5.1 -------------------------------------------------------------------

#[test]
fn rfc6749_section5_1_example_is_refused_for_its_token_type() {
    // The RFC's example uses the placeholder type "example": not a bearer token.
    let body = r#"{
       "access_token":"2YotnFZFEjr1zCsicMWpAA",
       "token_type":"example",
       "expires_in":3600,
       "refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA",
       "example_parameter":"example_value"
     }"#;
    let e = malformed(body.as_bytes());
    assert_eq!(e.detail(), Some("token_type `example` is not Bearer"));
    // The same response with a bearer token: rotation, unknown parameter ignored.
    let set = ok(&body.replace("\"example\"", "\"Bearer\""));
    assert_eq!(set.access_token().secret(), "2YotnFZFEjr1zCsicMWpAA");
    assert_eq!(
        set.refresh_token().unwrap().secret(),
        "tGzv3JOkF0XG5Qx2TlKWIA"
    );
    assert_eq!(set.expires_in(), Some(Duration::from_secs(3600)));
    assert_eq!(set.scope(), None);
}

#[test]
fn rfc6749_section4_4_3_example_without_refresh_token() {
    let set = ok(
        r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"bearer",
                     "expires_in":3600,"example_parameter":"example_value"}"#,
    );
    assert!(set.refresh_token().is_none());
}

#[test]
fn rfc6750_section4_example() {
    let set = ok(r#"{"access_token":"mF_9.B5f-4.1JqM","token_type":"Bearer",
                     "expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA"}"#);
    assert_eq!(set.access_token().secret(), "mF_9.B5f-4.1JqM");
}

#[test]
fn token_type_bearer_any_case_or_absent() {
    for t in [
        r#""Bearer""#,
        r#""bearer""#,
        r#""BEARER""#,
        r#""bEaReR""#,
        "null",
    ] {
        ok(&format!(r#"{{"access_token":"a","token_type":{t}}}"#));
    }
    ok(r#"{"access_token":"a"}"#);
    for t in [
        r#""mac""#,
        r#""DPoP""#,
        r#""""#,
        r#"" Bearer""#,
        "1",
        "true",
        r#"["Bearer"]"#,
    ] {
        malformed(format!(r#"{{"access_token":"a","token_type":{t}}}"#).as_bytes());
    }
}

#[test]
fn optional_fields() {
    let set = ok(r#"{"access_token":"a","scope":"read write","refresh_token":"r"}"#);
    assert_eq!(set.scope(), Some("read write"));
    assert_eq!(set.refresh_token().unwrap().secret(), "r");
    assert_eq!(set.expires_in(), None);

    let set = ok(r#"{"access_token":"a","scope":null,"refresh_token":null,"expires_in":null}"#);
    assert_eq!(
        (set.scope(), set.refresh_token(), set.expires_in()),
        (None, None, None)
    );
    // An empty refresh token is no rotation: the old one is kept.
    assert!(ok(r#"{"access_token":"a","refresh_token":""}"#)
        .refresh_token()
        .is_none());
    // Everything else unknown is ignored, whatever its type.
    ok(r#"{"access_token":"a","id_token":"x.y.z","nested":{"a":[1,{"b":null}]},"n":1.5}"#);
}

#[test]
fn expires_in_forms() {
    let life = |v: &str| ok(&format!(r#"{{"access_token":"a","expires_in":{v}}}"#)).expires_in();
    let secs = |s| Some(Duration::from_secs(s));
    assert_eq!(life("3600"), secs(3600));
    assert_eq!(life(r#""3600""#), secs(3600));
    assert_eq!(life("3600.0"), secs(3600));
    assert_eq!(life("59.5"), Some(Duration::from_millis(59_500)));
    assert_eq!(life("0"), secs(0));
    assert_eq!(life("-1"), secs(0));
    assert_eq!(life(r#""-30""#), secs(0));
    assert_eq!(life("-9223372036854775809"), secs(0));
    assert_eq!(life("1e300"), Some(MAX_LIFETIME));
    assert_eq!(life("18446744073709551615"), Some(MAX_LIFETIME));
    assert_eq!(life("18446744073709551616"), Some(MAX_LIFETIME));
    assert_eq!(life(r#""18446744073709551616""#), Some(MAX_LIFETIME));
    assert_eq!(life("null"), None);
    for bad in [
        "true",
        "{}",
        "[3600]",
        r#""soon""#,
        r#""NaN""#,
        r#""Infinity""#,
        r#""""#,
        r#""0x20""#,
    ] {
        malformed(format!(r#"{{"access_token":"a","expires_in":{bad}}}"#).as_bytes());
    }
    // Beyond f64 the JSON parser itself gives up: malformed, not a panic.
    malformed(br#"{"access_token":"a","expires_in":1e400}"#);
}

// ---- Hostile success bodies --------------------------------------------------------

#[test]
fn access_token_must_be_a_sendable_string() {
    for bad in [
        "{}",
        r#"{"access_token":null}"#,
        r#"{"access_token":""}"#,
        r#"{"access_token":42}"#,
        r#"{"access_token":["a"]}"#,
        r#"{"access_token":{"v":"a"}}"#,
        r#"{"access_token":"has space"}"#,
        r#"{"access_token":"tab\tinside"}"#,
        r#"{"access_token":"nul\u0000byte"}"#,
        r#"{"access_token":"newline\nSECRET"}"#,
        r#"{"access_token":"non-ascii-é"}"#,
    ] {
        let e = malformed(bad.as_bytes());
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("inside"),
            "{shown}"
        );
    }
    // Wrong refresh token or scope types are refused too, not silently dropped.
    for bad in [
        r#"{"access_token":"a","refresh_token":"bad token"}"#,
        r#"{"access_token":"a","refresh_token":7}"#,
        r#"{"access_token":"a","scope":["read"]}"#,
    ] {
        malformed(bad.as_bytes());
    }
}

#[test]
fn duplicate_keys_are_refused() {
    // Two parsers may disagree on which copy wins, so the response is ambiguous.
    let e = malformed(br#"{"access_token":"a","access_token":"b"}"#);
    assert_eq!(e.detail(), Some("duplicate key `access_token`"));
    malformed(br#"{"access_token":"a","refresh_token":null,"refresh_token":"r"}"#);
    malformed(br#"{"access_token":"a","expires_in":1,"expires_in":2}"#);
    // Escapes do not smuggle a second copy past the check.
    malformed(br#"{"access_token":"a","access\u005ftoken":"b"}"#);
    // Unknown keys may repeat: they are ignored anyway.
    ok(r#"{"access_token":"a","x":1,"x":2}"#);
}

#[test]
fn not_json_objects() {
    for bad in [
        &b""[..],
        b"   ",
        b"null",
        b"[]",
        br#"["a","Bearer",3600]"#,
        br#""access_token""#,
        b"42",
        b"{",
        br#"{"access_token":"a"} trailing"#,
        br#"{"access_token":"a"}{}"#,
        br#"{'access_token':'a'}"#,
        b"access_token=a&token_type=bearer",
        b"<html><body>502 Bad Gateway</body></html>",
        b"\xEF\xBB\xBF{\"access_token\":\"a\"}", // a byte order mark is not JSON
        b"{\"access_token\":\"a\xff\"}",
        b"\xff\xfe\x00{",
        b"{\"access_token\":\"a\",\"x\":\"\xc3\x28\"}",
    ] {
        malformed(bad);
    }
}

#[test]
fn content_type_is_not_checked() {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let body = br#"{"access_token":"a"}"#;
    assert!(matches!(
        parse_with(200, &headers, body),
        RefreshOutcome::Success(_)
    ));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let e = failed_with(200, &headers, b"<!doctype html><p>Login</p>");
    assert_eq!(e.kind(), &RefreshErrorKind::Malformed);
}

#[test]
fn deeply_nested_json_does_not_overflow() {
    let deep = |n: usize, field: &str| {
        format!(
            r#"{{"{field}":{}1{},"access_token":"a"}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    // In an unknown field it is skipped without recursion.
    ok(&deep(20_000, "junk"));
    // In a known field the JSON parser's depth limit refuses it.
    malformed(deep(20_000, "scope").as_bytes());
    malformed(deep(200, "expires_in").as_bytes());
    // Unclosed nesting up to the cap.
    malformed("[".repeat(MAX_TOKEN_RESPONSE_BYTES).as_bytes());
    malformed(format!("{{\"x\":{}", "{\"y\":".repeat(10_000)).as_bytes());
}

#[test]
fn body_size_cap() {
    let fits = |len: usize| {
        let json = r#"{"access_token":"a"}"#;
        format!("{json}{}", " ".repeat(len - json.len()))
    };
    ok(&fits(MAX_TOKEN_RESPONSE_BYTES));
    let e = failed(200, &fits(MAX_TOKEN_RESPONSE_BYTES + 1));
    assert_eq!(
        e.kind(),
        &RefreshErrorKind::TooLarge {
            limit: MAX_TOKEN_RESPONSE_BYTES
        }
    );
    assert!(!e.is_permanent());
    // A 10 MB body, as a careless adapter might pass.
    let huge = vec![b'a'; 10 * 1024 * 1024];
    let e = failed_with(200, &HeaderMap::new(), &huge);
    assert_eq!(
        e.kind(),
        &RefreshErrorKind::TooLarge {
            limit: MAX_TOKEN_RESPONSE_BYTES
        }
    );
    // An oversized error body is ignored: the status decides.
    let e = failed_with(400, &HeaderMap::new(), &huge);
    status_error(&e, 400, true);
    let e = failed_with(503, &HeaderMap::new(), &huge);
    status_error(&e, 503, false);
}

#[test]
fn any_2xx_is_a_success_status() {
    let body = br#"{"access_token":"a"}"#;
    assert!(matches!(
        parse_with(201, &HeaderMap::new(), body),
        RefreshOutcome::Success(_)
    ));
    // 204 has no body: malformed, transient.
    malformed(b"");
    assert_eq!(
        failed_with(204, &HeaderMap::new(), b"").kind(),
        &RefreshErrorKind::Malformed
    );
}

// ---- Section 5.2 -------------------------------------------------------------------

#[test]
fn rfc6749_section5_2_example() {
    let e = failed(400, r#"{"error":"invalid_request"}"#);
    permanent_oauth(&e, "invalid_request");
    assert_eq!(e.detail(), None);
}

#[test]
fn standard_and_unknown_codes_on_400_and_401_are_permanent() {
    for code in [
        "invalid_request",
        "invalid_grant",
        "unsupported_grant_type",
        "invalid_scope",
        "some_vendor_code",
    ] {
        for status in [400, 401] {
            let e = failed(status, &format!(r#"{{"error":"{code}"}}"#));
            // A code of no RFC is server text: judged, never shown.
            let shown = if code == "some_vendor_code" {
                "other"
            } else {
                code
            };
            permanent_oauth(&e, shown);
            assert!(!e.to_string().contains("vendor"), "{e}");
        }
    }
}

#[test]
fn error_descriptions_become_clean_details() {
    let e = failed(
        400,
        r#"{"error":"invalid_grant","error_description":"Refresh token\nexpired\u0007",
           "error_uri":"https://example.com/e"}"#,
    );
    permanent_oauth(&e, "invalid_grant");
    assert_eq!(e.detail(), Some("Refresh token expired"));
    assert_eq!(
        e.to_string(),
        "the token endpoint answered error `invalid_grant`: Refresh token expired"
    );
    // A server that echoes the token does not get it into our logs.
    let e = failed(
        400,
        r#"{"error":"invalid_grant","error_description":"token tGzv3JOkF0XG5Qx2TlKWIA12 is revoked"}"#,
    );
    assert_eq!(e.detail(), Some("token […] is revoked"));
    // Long descriptions are cut; wrong types are dropped without losing the code.
    let long = "word ".repeat(10_000);
    let e = failed(
        400,
        &format!(r#"{{"error":"invalid_grant","error_description":"{long}"}}"#),
    );
    assert!(e.detail().unwrap().chars().count() <= 201);
    let e = failed(
        400,
        r#"{"error":"invalid_grant","error_description":{"x":1}}"#,
    );
    permanent_oauth(&e, "invalid_grant");
    assert_eq!(e.detail(), None);
}

#[test]
fn no_usable_error_body_on_400_or_401_is_a_permanent_status() {
    for body in [
        "",
        "Bad Request",
        "<html>401</html>",
        "{}",
        r#"{"error":null}"#,
        r#"{"error":42}"#,
        r#"{"error":""}"#,
        r#"{"error":"has\"quote"}"#,
        r#"{"error":"back\\slash"}"#,
        r#"{"error":"tab	"}"#,
        r#"{"error":"é"}"#,
        r#"{"error":"a","error":"b"}"#,
        &format!(r#"{{"error":"{}"}}"#, "x".repeat(65)),
        r#"[{"error":"invalid_grant"}]"#,
    ] {
        for status in [400, 401] {
            let e = failed(status, body);
            status_error(&e, status, true);
        }
    }
}

#[test]
fn server_trouble_is_transient_with_retry_after() {
    for status in [500, 502, 503, 504, 599, 408, 429] {
        let e = failed(status, "");
        status_error(&e, status, false);
        assert_eq!(e.retry_after(), None);
        let e = failed_with(status, &with_retry_after("30"), b"");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    }
    // HTTP-date, converted with `now`; in the past means now.
    let date = httpdate::fmt_http_date(now() + Duration::from_secs(120));
    let e = failed_with(503, &with_retry_after(&date), b"");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    let e = failed_with(429, &with_retry_after("Fri, 31 Dec 1999 23:59:59 GMT"), b"");
    assert_eq!(e.retry_after(), Some(Duration::ZERO));
    // Garbage is ignored.
    for garbage in ["soon", "-5", "1.5", "", "Fri, 32 Dec 1999 23:59:59 GMT"] {
        let e = failed_with(503, &with_retry_after(garbage), b"");
        assert_eq!(e.retry_after(), None, "{garbage}");
    }
    // Even an OAuth code does not make a 5xx permanent; it is kept as the detail.
    let e = failed(
        503,
        r#"{"error":"invalid_grant","error_description":"db down"}"#,
    );
    status_error(&e, 503, false);
    assert_eq!(e.detail(), Some("invalid_grant: db down"));
}

#[test]
fn retry_later_codes_are_transient_on_any_status() {
    for code in ["temporarily_unavailable", "server_error"] {
        let e = failed_with(
            400,
            &with_retry_after("5"),
            format!(r#"{{"error":"{code}"}}"#).as_bytes(),
        );
        status_error(&e, 400, false);
        assert_eq!(e.detail(), Some(code));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
    }
}

#[test]
fn other_statuses_are_transient_unless_a_standard_code_says_otherwise() {
    // 404/403/405/3xx without an OAuth error: a proxy or misconfiguration, not a dead
    // refresh token. Transient keeps the session and its tokens.
    for status in [
        300, 301, 302, 307, 308, 402, 403, 404, 405, 409, 410, 415, 422, 100,
    ] {
        let e = failed(status, "<html>nope</html>");
        status_error(&e, status, false);
    }
    // An unknown code on such a status is not trusted either.
    let e = failed(403, r#"{"error":"forbidden"}"#);
    status_error(&e, 403, false);
    assert_eq!(e.detail(), Some("other"));
    // The section 5.2 codes are definitive wherever they come from.
    permanent_oauth(
        &failed(403, r#"{"error":"invalid_grant"}"#),
        "invalid_grant",
    );
    permanent_oauth(
        &failed(404, r#"{"error":"invalid_scope"}"#),
        "invalid_scope",
    );
}

#[test]
fn the_clients_own_errors_are_configuration_errors_on_any_status() {
    // The refresh token is the user's; the client's credentials are the app's. Neither
    // logs out (permanent) nor is retried on the backoff schedule (transient).
    for code in ["invalid_client", "unauthorized_client"] {
        for status in [400, 401, 403, 200] {
            let e = failed(status, &format!(r#"{{"error":"{code}"}}"#));
            assert!(e.is_configuration() && !e.is_permanent(), "{status}: {e}");
            assert_eq!(e.kind(), &RefreshErrorKind::OAuth { code: code.into() });
        }
    }
}

#[test]
fn errors_sent_with_a_success_status_are_errors() {
    // GitHub answers a dead refresh token with 200 and an error body.
    let e = failed(
        200,
        r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired.","error_uri":"https://docs.github.com"}"#,
    );
    permanent_oauth(&e, "other");
    assert_eq!(
        e.detail(),
        Some("The refresh token passed is incorrect or expired.")
    );
    let e = failed(200, r#"{"error":"temporarily_unavailable"}"#);
    assert!(!e.is_permanent());
    // With an access token it is a success (the stray field is ignored)...
    ok(r#"{"access_token":"a","error":"invalid_grant"}"#);
    // ...and a broken token next to an error stays merely malformed.
    malformed(br#"{"access_token":"bad token","error":"invalid_grant"}"#);
    malformed(br#"{"error":42}"#);
}
