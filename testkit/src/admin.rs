//! The HTTP control interface, `/_admin/...`, served on its own loopback listener.
//!
//! Its own port, not the main one: driving the server must not show up in what the
//! server reports about the client under test (`connections_accepted`, HTTP/2 streams).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::fault::{Fault, FAULT_NAMES};
use crate::respond::{self, no_store, read_body, Abort, BodyError, Reply, Resp};
use crate::state::Shared;
use crate::stats::Stats;
use crate::tokens::{FamilyId, FamilyRef};

/// Fault lists and the like are small.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The queue is held in memory: refuse requests that would grow it without bound.
const MAX_PENDING_FAULTS: usize = 100_000;

/// Listed in 404 answers, so a caller can find the right route.
const ROUTES: &str = "POST /_admin/expire, POST /_admin/revoke?family=ID|?token=TOKEN, \
POST /_admin/faults (body: one fault per line, or ?fault=NAME&count=N), GET /_admin/faults, \
DELETE /_admin/faults, GET /_admin/stats, POST /_admin/reset, POST /_admin/tokens[?scope=S]";

/// The hyper service of the admin listener.
#[derive(Clone)]
pub(crate) struct AdminService(pub(crate) Arc<Shared>);

impl hyper::service::Service<Request<Incoming>> for AdminService {
    type Response = Resp;
    type Error = Abort;
    type Future = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move { Ok(handle(&shared, req).await) })
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let method = req.method().clone();
    let Some(route) = path.strip_prefix("/_admin/") else {
        return unknown_route();
    };
    let result = match (route, &method) {
        ("expire", &Method::POST) => no_params(&query).map(|()| {
            shared.tokens().expire_all(std::time::Instant::now());
            ok_json(json!({"expired": true}))
        }),
        ("revoke", &Method::POST) => revoke(shared, &query),
        ("faults", &Method::POST) => queue_faults(shared, &query, req.into_body()).await,
        ("faults", &Method::GET) => {
            no_params(&query).map(|()| ok_json(json!({"pending": shared.faults().len()})))
        }
        ("faults", &Method::DELETE) => no_params(&query).map(|()| {
            let cleared = std::mem::take(&mut *shared.faults()).len();
            ok_json(json!({"cleared": cleared, "pending": 0}))
        }),
        ("stats", &Method::GET) => {
            no_params(&query).map(|()| ok_json(stats_json(&shared.stats.snapshot())))
        }
        ("reset", &Method::POST) => no_params(&query).map(|()| {
            shared.stats.reset();
            let cleared = std::mem::take(&mut *shared.faults()).len();
            ok_json(json!({"reset": true, "faults_cleared": cleared}))
        }),
        ("tokens", &Method::POST) => issue(shared, &query),
        ("expire" | "revoke" | "reset" | "tokens", _) => {
            return respond::method_not_allowed("POST")
        }
        ("faults", _) => return respond::method_not_allowed("GET, POST, DELETE"),
        ("stats", _) => return respond::method_not_allowed("GET"),
        _ => return unknown_route(),
    };
    result.unwrap_or_else(BadRequest::into_response)
}

/// A 400, with the plain-text reason.
struct BadRequest(String);

type Answer = Result<Resp, BadRequest>;

fn ok_json(value: Value) -> Resp {
    respond::json(StatusCode::OK, &value)
}

fn bad_request(msg: impl Into<String>) -> BadRequest {
    BadRequest(msg.into())
}

impl BadRequest {
    fn into_response(self) -> Resp {
        let mut msg = self.0;
        msg.push('\n');
        respond::body(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", msg)
    }
}

fn unknown_route() -> Resp {
    respond::body(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        format!("unknown admin route; routes: {ROUTES}\n"),
    )
}

/// The query's parameters, refusing unknown and repeated ones: a typo should be an
/// error, not a silently ignored option.
fn params(query: &str, allowed: &[&str]) -> Result<HashMap<String, String>, BadRequest> {
    let mut out = HashMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&key.as_ref()) {
            let allowed = match allowed {
                [] => "none".to_owned(),
                _ => allowed.join(", "),
            };
            return Err(bad_request(format!(
                "unknown query parameter {key:?}; this route accepts: {allowed}"
            )));
        }
        if out.insert(key.to_string(), value.into_owned()).is_some() {
            return Err(bad_request(format!("query parameter {key:?} is repeated")));
        }
    }
    Ok(out)
}

fn no_params(query: &str) -> Result<(), BadRequest> {
    params(query, &[]).map(drop)
}

fn revoke(shared: &Shared, query: &str) -> Answer {
    let p = params(query, &["family", "token"])?;
    let revoked = match (p.get("family"), p.get("token")) {
        (Some(id), None) => match FamilyId::parse(id) {
            Some(id) => shared.revoke(FamilyRef::Id(id)),
            None => {
                return Err(bad_request(format!(
                    "bad family {id:?}; expected family-N (as /_admin/tokens reports it) or N"
                )))
            }
        },
        (None, Some(token)) => shared.revoke(FamilyRef::Token(token)),
        _ => {
            return Err(bad_request(
                "give exactly one of ?family=family-N or ?token=TOKEN (any access or refresh token of the family)",
            ))
        }
    };
    Ok(ok_json(json!({"revoked": revoked})))
}

async fn queue_faults(shared: &Shared, query: &str, body: Incoming) -> Answer {
    let p = params(query, &["fault", "count"])?;
    let body = match read_body(body, MAX_ADMIN_BODY).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(bad_request("request body too large")),
        Err(BodyError::Broken) => return Err(bad_request("request body could not be read")),
    };
    let faults = match (p.get("fault"), p.get("count")) {
        (Some(_), _) if !body.is_empty() => {
            return Err(bad_request(
                "give faults either in the query (?fault=NAME&count=N) or in the body, not both",
            ))
        }
        (Some(name), count) => {
            let fault = parse_fault(name)?;
            let n = match count {
                None => 1,
                Some(c) => match c.parse::<usize>() {
                    Ok(n) if (1..=MAX_PENDING_FAULTS).contains(&n) => n,
                    _ => {
                        return Err(bad_request(format!(
                        "bad count {c:?}; expected a whole number from 1 to {MAX_PENDING_FAULTS}"
                    )))
                    }
                },
            };
            vec![fault; n]
        }
        (None, Some(_)) => return Err(bad_request("count needs ?fault=NAME")),
        (None, None) => {
            let Ok(text) = std::str::from_utf8(&body) else {
                return Err(bad_request(
                    "the body must be UTF-8 text, one fault per line",
                ));
            };
            // Parse every line before queuing any, so a typo queues nothing.
            let faults = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(parse_fault)
                .collect::<Result<Vec<_>, _>>()?;
            if faults.is_empty() {
                return Err(bad_request(format!(
                    "no faults given: send one per line in the body, or ?fault=NAME&count=N; valid faults: {FAULT_NAMES}"
                )));
            }
            faults
        }
    };
    let mut queue = shared.faults();
    if queue.len() + faults.len() > MAX_PENDING_FAULTS {
        return Err(bad_request(format!(
            "at most {MAX_PENDING_FAULTS} faults may be pending"
        )));
    }
    let queued = faults.len();
    queue.extend(faults);
    Ok(ok_json(json!({"queued": queued, "pending": queue.len()})))
}

fn parse_fault(name: &str) -> Result<Fault, BadRequest> {
    Fault::parse(name).map_err(|e| bad_request(e.to_string()))
}

/// RFC 6749 §5.1 token response, plus the family id for `/_admin/revoke`.
fn issue(shared: &Shared, query: &str) -> Answer {
    let p = params(query, &["scope"])?;
    let scope = p
        .get("scope")
        .cloned()
        .unwrap_or_else(|| shared.config.scope.clone());
    let t = shared.issue_tokens(&scope);
    Ok(no_store(ok_json(json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "refresh_token": t.refresh_token,
        "scope": t.scope,
        "family": t.family.to_string(),
    }))))
}

/// Every field of [`Stats`], under its Rust name.
fn stats_json(s: &Stats) -> Value {
    // No `..`: a new field must be added here before this compiles.
    let Stats {
        connections_accepted,
        token_calls,
        oauth_token_calls,
        json_refresh_calls,
        token_ok,
        refresh_grants,
        client_credentials_grants,
        token_invalid_grant,
        token_invalid_client,
        token_invalid_request,
        faults_injected,
        answers_withheld,
        reuse_detections,
        grace_reuses,
        api_calls,
        api_by_status,
        api_tokens_seen,
        leak_requests,
        leaked_authorizations,
        hangs_in_flight,
    } = s;
    json!({
        "connections_accepted": connections_accepted,
        "token_calls": token_calls,
        "oauth_token_calls": oauth_token_calls,
        "json_refresh_calls": json_refresh_calls,
        "token_ok": token_ok,
        "refresh_grants": refresh_grants,
        "client_credentials_grants": client_credentials_grants,
        "token_invalid_grant": token_invalid_grant,
        "token_invalid_client": token_invalid_client,
        "token_invalid_request": token_invalid_request,
        "faults_injected": faults_injected,
        "answers_withheld": answers_withheld,
        "reuse_detections": reuse_detections,
        "grace_reuses": grace_reuses,
        "api_calls": api_calls,
        "api_by_status": api_by_status,
        "api_tokens_seen": api_tokens_seen,
        "leak_requests": leak_requests,
        "leaked_authorizations": leaked_authorizations,
        "hangs_in_flight": hangs_in_flight,
    })
}
