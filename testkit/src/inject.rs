//! Acting out a [`Fault`] at a token endpoint.

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;
use serde_json::json;

use crate::fault::{ceil_secs, Fault};
use crate::respond::{self, no_store, with_header, Abort, Reply, Resp};
use crate::state::Shared;

/// Which endpoint the fault is dressed up for: the body shapes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `/oauth/token`: RFC 6749 field names and error codes.
    OAuth,
    /// `/auth/refresh`: camelCase JSON.
    Json,
}

/// Bigger than the 1 MiB cap a careful client puts on token responses.
const OVERSIZED_LEN: usize = 1024 * 1024 + 64 * 1024;

/// Counts and performs `fault` before the endpoint does its work. `None` means "now
/// answer normally" (after a delay, or because the fault acts on the answer: see
/// [`deliver`]); `Some` is the whole reply.
pub(crate) async fn act(shared: &Shared, fault: Fault, flavor: Flavor) -> Option<Reply> {
    shared.stats.fault(fault.kind());
    let reply = match fault {
        Fault::Delay(d) => {
            return tokio::select! {
                _ = tokio::time::sleep(d) => None,
                _ = shared.shutdown.wait() => Some(Err(Abort)),
            };
        }
        Fault::ServerError => Ok(respond::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected fault: internal server error\n",
        )),
        Fault::Unavailable { retry_after } => Ok(retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected fault: service unavailable\n",
            retry_after,
        )),
        Fault::TooManyRequests { retry_after } => Ok(retry(
            StatusCode::TOO_MANY_REQUESTS,
            "injected fault: too many requests\n",
            retry_after,
        )),
        Fault::InvalidGrant => Ok(match flavor {
            Flavor::OAuth => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "injected fault: invalid_grant",
            ),
            Flavor::Json => json_error("invalid_refresh_token"),
        }),
        Fault::InvalidClient => Ok(match flavor {
            Flavor::OAuth => invalid_client("injected fault: invalid_client"),
            Flavor::Json => json_error("invalid_client"),
        }),
        Fault::MalformedJson => Ok(no_store(respond::body(
            StatusCode::OK,
            "application/json",
            match flavor {
                Flavor::OAuth => r#"{"access_token": "at_truncated", "token_type": "Bea"#,
                Flavor::Json => r#"{"accessToken": "at_truncated", "refreshTo"#,
            },
        ))),
        Fault::Oversized => Ok(no_store(respond::body(
            StatusCode::OK,
            "application/json",
            oversized_body(flavor),
        ))),
        Fault::ConnectionReset => Err(Abort),
        Fault::Hang => {
            // Dropped together with this future: when the client disconnects hyper drops
            // the request future; at shutdown the signal below fires.
            let _guard = shared.stats.hang_guard();
            shared.shutdown.wait().await;
            Err(Abort)
        }
        Fault::Redirect(status) => Ok(redirect(shared, status)),
        Fault::RotateThenDelay(_) | Fault::RotateThenDrop | Fault::RotateThenHang => return None,
    };
    Some(reply)
}

/// Sends the endpoint's answer, or for the `RotateThen*` faults withholds it: by then
/// the tokens are issued and the refresh token rotated, which is the point.
pub(crate) async fn deliver(shared: &Shared, fault: Option<Fault>, resp: Resp) -> Reply {
    match fault {
        Some(Fault::RotateThenDelay(d)) => tokio::select! {
            _ = tokio::time::sleep(d) => Ok(resp),
            _ = shared.shutdown.wait() => Err(Abort),
        },
        Some(Fault::RotateThenDrop) => {
            shared.stats.answer_withheld();
            Err(Abort)
        }
        Some(Fault::RotateThenHang) => {
            shared.stats.answer_withheld();
            // Same lifetime as `Hang`: dropped with the request future or at shutdown.
            let _guard = shared.stats.hang_guard();
            shared.shutdown.wait().await;
            Err(Abort)
        }
        _ => Ok(resp),
    }
}

/// `status` with a `Location` on the leak listener (another origin).
fn redirect(shared: &Shared, status: u16) -> Resp {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
    let location = format!("{}/token-sink?next=here", shared.leak_base);
    let resp = respond::text(status, "injected fault: redirect\n");
    match HeaderValue::from_str(&location) {
        Ok(v) => with_header(resp, http::header::LOCATION, v),
        Err(_) => resp,
    }
}

/// A well-formed JSON token response padded past 1 MiB.
fn oversized_body(flavor: Flavor) -> String {
    let padding = "x".repeat(OVERSIZED_LEN);
    match flavor {
        Flavor::OAuth => json!({
            "access_token": "at_oversized",
            "token_type": "Bearer",
            "expires_in": 3600,
            "padding": padding,
        }),
        Flavor::Json => json!({
            "accessToken": "at_oversized",
            "refreshToken": "rt_oversized",
            "padding": padding,
        }),
    }
    .to_string()
}

fn retry(
    status: StatusCode,
    msg: &'static str,
    retry_after: Option<std::time::Duration>,
) -> respond::Resp {
    let resp = respond::text(status, msg);
    match retry_after {
        Some(d) => with_header(resp, RETRY_AFTER, HeaderValue::from(ceil_secs(d))),
        None => resp,
    }
}

/// An RFC 6749 §5.2 error response.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> respond::Resp {
    no_store(respond::json(
        status,
        &json!({"error": error, "error_description": description}),
    ))
}

/// 401 `invalid_client` with the Basic challenge RFC 6749 §5.2 asks for.
pub(crate) fn invalid_client(description: &str) -> respond::Resp {
    with_header(
        oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description),
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"reauth-testkit\""),
    )
}

/// The custom JSON endpoint's 401 shape.
pub(crate) fn json_error(error: &str) -> respond::Resp {
    no_store(respond::json(
        StatusCode::UNAUTHORIZED,
        &json!({"error": error}),
    ))
}
