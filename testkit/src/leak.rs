//! The second listener: a different origin that answers 200 to anything and records
//! every `Authorization` header it receives. A bearer token arriving here has leaked
//! across a redirect.

use std::future::{ready, Ready};
use std::sync::Arc;

use http::header::AUTHORIZATION;
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
        ready(Ok(respond::text(StatusCode::OK, "ok: leak listener\n")))
    }
}
