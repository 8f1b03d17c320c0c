//! The protected API: bearer validation (RFC 6750) and a few routes to exercise it.

use std::time::{Duration, Instant};

use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::respond::{self, body_error, read_body, with_header, Reply, Resp};
use crate::state::Shared;
use crate::tokens::has_scope;

/// Route patterns, as counted in [`Stats::api_tokens_seen`](crate::Stats::api_tokens_seen).
pub(crate) const ITEMS: &str = "/api/items/{id}";
pub(crate) const ECHO: &str = "/api/echo";
pub(crate) const SCOPED: &str = "/api/scoped";
pub(crate) const REDIRECT: &str = "/api/redirect";
pub(crate) const REJECT: &str = "/api/reject";
pub(crate) const MOVED: &str = "/api/moved";
pub(crate) const LOOP: &str = "/api/loop";
const UNKNOWN: &str = "/api/*";

/// The longest `delay_ms` an item request may ask for.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Echo accepts bodies up to this size.
const MAX_ECHO: usize = 4 * 1024 * 1024;

const REALM: &str = "Bearer realm=\"reauth-testkit\"";

enum Route<'a> {
    Item(&'a str),
    Echo,
    Scoped,
    Redirect,
    /// Refuses every token, valid or not: an API that rejects fresh tokens.
    Reject,
}

/// Handles every `/api/...` request.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    // Moved resources redirect every request, with or without a token, whatever its method.
    if path == MOVED || path == LOOP {
        let (pattern, resp) = if path == MOVED {
            (MOVED, moved(req.uri().query()))
        } else {
            (LOOP, again())
        };
        let token = bearer(req.headers()).ok().flatten();
        shared
            .stats
            .api_call(pattern, resp.status().as_u16(), token.as_deref());
        // Read the body first, so a client still sending one gets the answer instead of
        // a reset connection.
        if let Err(e) = read_body(req.into_body(), MAX_ECHO).await {
            return body_error(e);
        }
        return Ok(resp);
    }
    let (pattern, route, allowed) = match path.as_str() {
        ECHO => (ECHO, Some(Route::Echo), "POST"),
        SCOPED => (SCOPED, Some(Route::Scoped), "GET"),
        REDIRECT => (REDIRECT, Some(Route::Redirect), "GET"),
        REJECT => (REJECT, Some(Route::Reject), "GET"),
        p => match p.strip_prefix("/api/items/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                (ITEMS, Some(Route::Item(id)), "GET")
            }
            _ => (UNKNOWN, None, "GET"),
        },
    };
    let token = bearer(req.headers());
    let presented = match &token {
        Ok(Some(t)) => Some(t.clone()),
        _ => None,
    };
    // `?delay_ms=N` on an item waits before the token is checked: a request that is
    // slow to reach the resource server, whose token may be rotated away meanwhile.
    if let (Some(Route::Item(_)), Some(delay)) = (&route, delay(req.uri().query())) {
        tokio::time::sleep(delay).await;
    }
    let resp = match route {
        None => Ok(respond::not_found()),
        Some(_) if req.method().as_str() != allowed => Ok(respond::method_not_allowed(allowed)),
        Some(Route::Reject) => Ok(with_header(
            error_body(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "this route refuses every token",
            ),
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"reauth-testkit\", error=\"invalid_token\""),
        )),
        Some(route) => match authorize(shared, token) {
            Err(resp) => Ok(*resp),
            Ok(scope) => serve(shared, route, &scope, req).await,
        },
    };
    if let Ok(resp) = &resp {
        shared
            .stats
            .api_call(pattern, resp.status().as_u16(), presented.as_deref());
    }
    resp
}

async fn serve(shared: &Shared, route: Route<'_>, scope: &str, req: Request<Incoming>) -> Reply {
    match route {
        Route::Item(id) => Ok(respond::json(
            StatusCode::OK,
            &json!({"id": id, "name": format!("Item {id}")}),
        )),
        Route::Echo => {
            let content_type = req
                .headers()
                .get(CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let body = match read_body(req.into_body(), MAX_ECHO).await {
                Ok(b) => b,
                Err(e) => return body_error(e),
            };
            let resp = respond::body(StatusCode::OK, "application/octet-stream", body);
            Ok(with_header(resp, CONTENT_TYPE, content_type))
        }
        Route::Scoped if has_scope(scope, "admin") => Ok(respond::json(
            StatusCode::OK,
            &json!({"ok": true, "scope": scope}),
        )),
        Route::Scoped => Ok(with_header(
            error_body(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "requires scope admin",
            ),
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"reauth-testkit\", error=\"insufficient_scope\", scope=\"admin\"",
            ),
        )),
        Route::Redirect => Ok(redirect(shared, req.uri().query())),
        Route::Reject => unreachable!("answered before authorizing"),
    }
}

/// The `delay_ms` query parameter, capped.
fn delay(query: Option<&str>) -> Option<Duration> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "delay_ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms).min(MAX_DELAY))
}

/// 307 to the leak listener: a cross-origin redirect that must not carry the token.
fn redirect(shared: &Shared, query: Option<&str>) -> Resp {
    let to = query
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "to")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| "/".to_owned());
    let bad = || {
        error_body(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`to` must be a path starting with /",
        )
    };
    if !to.starts_with('/') {
        return bad();
    }
    match HeaderValue::from_str(&format!("{}{}", shared.leak_base, to)) {
        Ok(location) => with_header(
            respond::json(
                StatusCode::TEMPORARY_REDIRECT,
                &json!({"redirect": location.to_str().unwrap_or_default()}),
            ),
            LOCATION,
            location,
        ),
        Err(_) => bad(),
    }
}

/// A redirect on this listener: the status from `status` (301, 302, 303, 307 or 308;
/// default 307), to the path `to` as a path-absolute `Location` (the client resolves it).
fn moved(query: Option<&str>) -> Resp {
    let mut to = None;
    let mut status = StatusCode::TEMPORARY_REDIRECT;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "to" => to = Some(v.into_owned()),
            "status" => match v.parse::<u16>() {
                Ok(n @ (301..=303 | 307 | 308)) => {
                    status = StatusCode::from_u16(n).unwrap_or(status);
                }
                _ => {
                    return error_body(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "`status` must be 301, 302, 303, 307 or 308",
                    )
                }
            },
            _ => {}
        }
    }
    match to
        .filter(|t| t.starts_with('/'))
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        Some(location) => with_header(respond::text(status, "moved\n"), LOCATION, location),
        None => error_body(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`to` must be a path starting with /",
        ),
    }
}

/// 302 to itself, by a relative `Location`: a client that follows it never gets anywhere.
fn again() -> Resp {
    with_header(
        respond::text(StatusCode::FOUND, "again\n"),
        LOCATION,
        HeaderValue::from_static("loop"),
    )
}

/// Why no usable bearer token was presented.
enum BearerError {
    /// `Authorization: Bearer` with an empty or ill-formed token (RFC 6750 §3.1).
    Malformed,
}

/// The bearer token, `None` if the request carries no Bearer credentials at all.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, BearerError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(value) = value.to_str() else {
        return Err(BearerError::Malformed);
    };
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim();
    if is_b64token(token) {
        Ok(Some(token.to_owned()))
    } else {
        Err(BearerError::Malformed)
    }
}

/// RFC 6750 §2.1 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c))
}

/// Validates the bearer token; `Ok(scope)` or the 400/401 answer (boxed: it is large).
fn authorize(
    shared: &Shared,
    token: Result<Option<String>, BearerError>,
) -> Result<String, Box<Resp>> {
    let (status, error, desc) = match token {
        Ok(Some(token)) => {
            let checked = shared
                .tokens()
                .check_access(&token, Instant::now())
                .map(str::to_owned);
            match checked {
                Ok(scope) => return Ok(scope),
                Err(e) => (StatusCode::UNAUTHORIZED, "invalid_token", e.description()),
            }
        }
        // RFC 6750 §3.1: no credentials at all gets a challenge without an error code.
        Ok(None) => (StatusCode::UNAUTHORIZED, "", "missing bearer token"),
        Err(BearerError::Malformed) => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed bearer token",
        ),
    };
    let challenge = if error.is_empty() {
        HeaderValue::from_static(REALM)
    } else {
        let full = format!("{REALM}, error=\"{error}\", error_description=\"{desc}\"");
        HeaderValue::from_str(&full).unwrap_or(HeaderValue::from_static(REALM))
    };
    let error = if error.is_empty() {
        "unauthorized"
    } else {
        error
    };
    Err(Box::new(with_header(
        error_body(status, error, desc),
        WWW_AUTHENTICATE,
        challenge,
    )))
}

fn error_body(status: StatusCode, error: &str, description: &str) -> Resp {
    respond::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}
