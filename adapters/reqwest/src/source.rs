//! A refresh protocol's call over the token client (the rest of the refresh source is
//! `reauth_drive::tokio::Source`).

use reauth_core::protocol::{prepare_request, redirected};
use reauth_core::{RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken};
use reauth_drive::tokio::read_limited;
use std::time::SystemTime;

/// One refresh with `protocol` over the token client.
pub(crate) async fn over_http(
    protocol: &dyn RefreshProtocol,
    http: &reqwest::Client,
    refresh_token: Option<RefreshToken>,
    allow_insecure_http: bool,
) -> RefreshOutcome {
    let request = match prepare_request(protocol, refresh_token.as_ref(), allow_insecure_http) {
        Ok(r) => r,
        Err(e) => return RefreshOutcome::Failed(e),
    };
    let request = match reqwest::Request::try_from(request) {
        Ok(r) => r,
        Err(_) => {
            return RefreshOutcome::Failed(
                RefreshError::permanent(RefreshErrorKind::Other)
                    .with_detail("the refresh request is not a valid reqwest request"),
            )
        }
    };
    let response = match http.execute(request).await {
        Ok(r) => r,
        Err(e) => return RefreshOutcome::Failed(network_error(&e)),
    };
    let status = response.status();
    // Never followed (the token client's policy is forced to none): a redirect is a
    // misconfigured endpoint, and its body is not a token response.
    if let Some(e) = redirected(status, response.headers()) {
        return RefreshOutcome::Failed(e);
    }
    let headers = response.headers().clone();
    let limit = protocol.max_response_bytes();
    let body = match read_limited(reqwest::Body::from(response), limit).await {
        Ok(body) => body,
        Err(e) => return RefreshOutcome::Failed(network_error(&e)),
    };
    protocol.parse_response(status, &headers, &body, SystemTime::now())
}

fn network_error(e: &reqwest::Error) -> RefreshError {
    // reqwest's message can name the URL; the kind is enough and never holds secrets.
    let (kind, detail) = if e.is_timeout() {
        (RefreshErrorKind::Timeout, "the token endpoint timed out")
    } else if e.is_connect() {
        (
            RefreshErrorKind::Network,
            "could not connect to the token endpoint",
        )
    } else if e.is_body() || e.is_decode() {
        (
            RefreshErrorKind::Network,
            "the token response body was cut off",
        )
    } else {
        (RefreshErrorKind::Network, "the token request failed")
    };
    RefreshError::transient(kind).with_detail(detail)
}
