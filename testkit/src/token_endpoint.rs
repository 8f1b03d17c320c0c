//! `POST /oauth/token` (RFC 6749 §4.4 and §6) and the custom `POST /auth/refresh`.

use std::time::Instant;

use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::client_auth::{authenticate, ClientAuthError, Form};
use crate::inject::{self, invalid_client, json_error, oauth_error, Flavor};
use crate::respond::{self, body_error, no_store, read_body, Reply, Resp};
use crate::state::Shared;
use crate::stats::TokenOutcome;
use crate::tokens::{is_subset, Grant, RefreshError};

/// Token requests are small; anything bigger is refused unread.
const MAX_TOKEN_REQUEST: usize = 64 * 1024;

/// `POST /oauth/token`.
pub(crate) async fn oauth(shared: &Shared, req: Request<Incoming>) -> Reply {
    if req.method() != Method::POST {
        return Ok(respond::method_not_allowed("POST"));
    }
    shared.stats.token_call(false);
    let (parts, body) = req.into_parts();
    // Read the body before any fault so that a hanging request is idle on the wire and
    // hyper notices the client leaving.
    let body = match read_body(body, MAX_TOKEN_REQUEST).await {
        Ok(b) => b,
        Err(e) => {
            shared.stats.token_outcome(TokenOutcome::InvalidRequest);
            return body_error(e);
        }
    };
    let fault = shared.next_fault();
    if let Some(fault) = fault {
        if let Some(reply) = inject::act(shared, fault, Flavor::OAuth).await {
            return reply;
        }
    }
    let (outcome, resp) = oauth_answer(shared, &parts.headers, &body);
    shared.stats.token_outcome(outcome);
    inject::deliver(shared, fault, resp).await
}

fn oauth_answer(shared: &Shared, headers: &http::HeaderMap, body: &[u8]) -> (TokenOutcome, Resp) {
    let invalid_request = |desc: &str| {
        (
            TokenOutcome::InvalidRequest,
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", desc),
        )
    };
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return invalid_request("Content-Type must be application/x-www-form-urlencoded");
    }
    let form = match Form::parse(body) {
        Ok(f) => f,
        Err(_) => return invalid_request("a parameter is repeated"),
    };
    match authenticate(headers, &form, &shared.config) {
        Ok(()) => {}
        Err(ClientAuthError::MultipleMethods) => {
            return invalid_request("more than one client authentication method")
        }
        Err(ClientAuthError::Invalid(desc)) => {
            return (TokenOutcome::InvalidClient, invalid_client(desc))
        }
    }
    let now = Instant::now();
    let config = &shared.config;
    match form.get("grant_type") {
        None => invalid_request("missing grant_type"),
        Some("refresh_token") => {
            let Some(presented) = form.get("refresh_token") else {
                return invalid_request("missing refresh_token");
            };
            let result = shared
                .tokens()
                .refresh(config, presented, form.get("scope"), now);
            match result {
                Ok(grant) => {
                    count_grace(shared, &grant);
                    (TokenOutcome::RefreshOk, oauth_success(&grant))
                }
                Err(RefreshError::InvalidScope) => (
                    TokenOutcome::InvalidRequest,
                    oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        RefreshError::InvalidScope.description(),
                    ),
                ),
                Err(e) => (TokenOutcome::InvalidGrant, refresh_refused(shared, e)),
            }
        }
        Some("client_credentials") => {
            let scope = match form.get("scope") {
                None => config.scope.clone(),
                Some(s) if is_subset(s, &config.scope) => s.to_owned(),
                Some(_) => {
                    return (
                        TokenOutcome::InvalidRequest,
                        oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "requested scope exceeds the client's scope",
                        ),
                    )
                }
            };
            // §4.4.3: no refresh token for client credentials.
            let (_, grant) = shared.tokens().issue_family(config, &scope, false, now);
            (TokenOutcome::ClientCredentialsOk, oauth_success(&grant))
        }
        Some(_) => (
            TokenOutcome::InvalidRequest,
            oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "supported: refresh_token, client_credentials",
            ),
        ),
    }
}

/// RFC 6749 §5.1 success body.
fn oauth_success(grant: &Grant) -> Resp {
    let mut body = json!({
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
        "scope": grant.scope,
    });
    if let Some(rt) = &grant.refresh_token {
        body["refresh_token"] = json!(rt);
    }
    no_store(respond::json(StatusCode::OK, &body))
}

fn count_grace(shared: &Shared, grant: &Grant) {
    if grant.grace_reuse {
        shared.stats.grace_reuse();
    }
}

/// `invalid_grant`, counting a reuse detection when that is why.
fn refresh_refused(shared: &Shared, e: RefreshError) -> Resp {
    if e == RefreshError::ReuseDetected {
        shared.stats.reuse_detected();
    }
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", e.description())
}

/// `POST /auth/refresh` with `{"refreshToken": "..."}`, as mobile-app tutorials do it.
pub(crate) async fn json_refresh(shared: &Shared, req: Request<Incoming>) -> Reply {
    if req.method() != Method::POST {
        return Ok(respond::method_not_allowed("POST"));
    }
    shared.stats.token_call(true);
    let body = match read_body(req.into_body(), MAX_TOKEN_REQUEST).await {
        Ok(b) => b,
        Err(e) => {
            shared.stats.token_outcome(TokenOutcome::InvalidRequest);
            return body_error(e);
        }
    };
    let fault = shared.next_fault();
    if let Some(fault) = fault {
        if let Some(reply) = inject::act(shared, fault, Flavor::Json).await {
            return reply;
        }
    }
    let (outcome, resp) = json_answer(shared, &body);
    shared.stats.token_outcome(outcome);
    inject::deliver(shared, fault, resp).await
}

fn json_answer(shared: &Shared, body: &[u8]) -> (TokenOutcome, Resp) {
    let presented = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("refreshToken")?.as_str().map(str::to_owned));
    let Some(presented) = presented else {
        let resp = no_store(respond::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "message": "expected {\"refreshToken\": \"...\"}"}),
        ));
        return (TokenOutcome::InvalidRequest, resp);
    };
    let result = shared
        .tokens()
        .refresh(&shared.config, &presented, None, Instant::now());
    match result {
        Ok(grant) => {
            count_grace(shared, &grant);
            // This API always answers both tokens; without rotation the old one stays.
            let refresh = grant.refresh_token.as_deref().unwrap_or(&presented);
            let body = json!({
                "accessToken": grant.access_token,
                "refreshToken": refresh,
                "expiresIn": grant.expires_in,
            });
            (
                TokenOutcome::RefreshOk,
                no_store(respond::json(StatusCode::OK, &body)),
            )
        }
        Err(e) => {
            if e == RefreshError::ReuseDetected {
                shared.stats.reuse_detected();
            }
            (
                TokenOutcome::InvalidGrant,
                json_error("invalid_refresh_token"),
            )
        }
    }
}
