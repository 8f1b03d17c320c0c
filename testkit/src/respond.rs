//! Response building and request-body reading shared by every route.

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

/// Every response body is fully buffered: simple, and enough for a test server.
pub(crate) type Resp = Response<Full<Bytes>>;

/// What a route returns. `Err` means "answer nothing": hyper then closes the HTTP/1.1
/// connection or resets the HTTP/2 stream.
pub(crate) type Reply = Result<Resp, Abort>;

/// Deliberately abandons a request without a response.
#[derive(Debug)]
pub(crate) struct Abort;

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request abandoned on purpose")
    }
}

impl std::error::Error for Abort {}

/// A response with a body and content type.
pub(crate) fn body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    body(status, "application/json", value.to_string())
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, msg: &'static str) -> Resp {
    body(status, "text/plain; charset=utf-8", msg)
}

/// Adds a header (replacing any with the same name).
pub(crate) fn with_header(mut resp: Resp, name: HeaderName, value: HeaderValue) -> Resp {
    resp.headers_mut().insert(name, value);
    resp
}

/// Token responses must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store(resp: Resp) -> Resp {
    let resp = with_header(resp, CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_header(resp, PRAGMA, HeaderValue::from_static("no-cache"))
}

/// Why a request body could not be read.
pub(crate) enum BodyError {
    /// Larger than the route accepts: 413.
    TooLarge,
    /// The client went away or sent garbage framing.
    Broken,
}

/// Reads the whole request body, refusing more than `limit` bytes.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Broken),
    }
}

/// The standard answer to a body that could not be read.
pub(crate) fn body_error(e: BodyError) -> Reply {
    match e {
        BodyError::TooLarge => Ok(json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &serde_json::json!({"error": "invalid_request", "error_description": "request body too large"}),
        )),
        BodyError::Broken => Err(Abort),
    }
}

/// 404 for unknown paths.
pub(crate) fn not_found() -> Resp {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"error": "not_found"}),
    )
}

/// 405 with the one allowed method.
pub(crate) fn method_not_allowed(allow: &'static str) -> Resp {
    let resp = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({"error": "method_not_allowed"}),
    );
    with_header(resp, http::header::ALLOW, HeaderValue::from_static(allow))
}
