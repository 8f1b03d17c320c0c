//! The second listener: a different origin that records every `Authorization` header it
//! receives (a bearer token arriving here has leaked across a redirect) and answers 200
//! to anything, except `/unauthorized` (401 `invalid_token`, as an API that got no
//! token would answer), `/bounce?to=/path` (307 back to the main listener: a chain
//! A → B → A) and `/hop?to=/path` (307 to `/path` on this listener: A → B → B′).

use std::future::{ready, Ready};
use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::respond::{self, Abort, Reply};
use crate::state::Shared;

/// The hyper service of the leak listener.
#[derive(Clone)]
pub(crate) struct LeakService(pub(crate) Arc<Shared>);

impl hyper::service::Service<Request<Incoming>> for LeakService {
    type Response = respond::Resp;
    type Error = Abort;
    type Future = Ready<Reply>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let authorizations = req
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        self.0.stats.leak(authorizations);
        let resp = match req.uri().path() {
            "/unauthorized" => respond::with_header(
                respond::text(StatusCode::UNAUTHORIZED, "no token here\n"),
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"leak\", error=\"invalid_token\""),
            ),
            "/bounce" => bounce(&self.0.api_base, req.uri().query()),
            "/hop" => bounce(&self.0.leak_base, req.uri().query()),
            _ => respond::text(StatusCode::OK, "ok: leak listener\n"),
        };
        ready(Ok(resp))
    }
}

/// 307 to `to` (a path) on the listener at `base`, or 400 without one.
fn bounce(base: &str, query: Option<&str>) -> respond::Resp {
    let to = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "to")
            .map(|(_, v)| v.into_owned())
    });
    let location = to
        .filter(|t| t.starts_with('/'))
        .and_then(|t| HeaderValue::from_str(&format!("{base}{t}")).ok());
    match location {
        Some(l) => respond::with_header(
            respond::text(StatusCode::TEMPORARY_REDIRECT, "bounce\n"),
            LOCATION,
            l,
        ),
        None => respond::text(StatusCode::BAD_REQUEST, "`to` must be a path\n"),
    }
}
