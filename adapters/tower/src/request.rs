//! One request through the session: admit, attach the credential, send, and on a
//! refresh trigger wait and replay.

use crate::body::{Prepared, ReplayBody};
use crate::drive::Shared;
use crate::grpc::{ResponseBody, Watch};
use crate::Error;
use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use reauth_core::{Attempt, Origin, Target};
use reauth_drive::tokio::{discard, step, Step};
use reauth_drive::Next;
use std::sync::Arc;
use tower::{BoxError, Service, ServiceExt};

/// Sends `request` through the session on `inner` (which has answered ready once): the
/// credential attached, replayed after a refresh, the final response handed back.
pub(crate) async fn run<S, B, O, R>(
    shared: Arc<Shared>,
    request: Request<B>,
    mut inner: S,
) -> Result<Response<ResponseBody<R>>, BoxError>
where
    S: Service<Request<O>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    O: From<ReplayBody>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    R: Body,
    R::Data: Buf,
{
    let (parts, body) = request.into_parts();
    let mut current = shared.with_hub(|d, now| {
        let admission = match &shared.adapter.default_origin {
            Some(base) if parts.uri.authority().is_none() => d.begin_request(now, &Relative(base)),
            _ => d.begin_request(now, &parts.uri),
        };
        step(d, admission.into())
    });
    if let Step::Go(Next::SendAnonymous) = current {
        // Nothing is replayed without a credential: no recording.
        let body = Prepared::new(body, 0).next().ok_or(Error::Disconnected)?;
        let response = inner
            .call(Request::from_parts(parts, O::from(body)))
            .await
            .map_err(Into::into)?;
        return Ok(response.map(|b| ResponseBody::new(b, None)));
    }
    let mut body = Prepared::new(body, shared.adapter.body_limit);
    let mut ready = true;
    loop {
        current = match current {
            Step::Go(Next::Send(attempt)) => {
                let Some(sent) = body.next() else {
                    // Unreachable: a request that cannot be replayed is never told to send
                    // twice.
                    return Err(Error::Disconnected.into());
                };
                let mut request = Request::from_parts(parts.clone(), O::from(sent));
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, attempt.header_value().clone());
                if !ready {
                    inner.ready().await.map_err(Into::into)?;
                }
                ready = false;
                let response = inner.call(request).await.map_err(Into::into)?;
                if !shared
                    .trigger()
                    .fires(response.status(), response.headers())
                {
                    // The common case, and what the session would answer: no lock.
                    return Ok(deliver(&shared, &attempt, response));
                }
                body.settle().await;
                let replayable = body.replayable();
                let next = shared.with_hub(|d, now| {
                    let verdict = d.session.handle_response(
                        now,
                        &attempt,
                        response.status(),
                        response.headers(),
                        replayable,
                    );
                    step(d, verdict.into())
                });
                if let Step::Go(Next::Deliver) = next {
                    return Ok(deliver(&shared, &attempt, response));
                }
                tracing::trace!(
                    status = response.status().as_u16(),
                    "reauth response needs a refresh or replay"
                );
                discard(response.into_body()).await;
                next
            }
            Step::Go(Next::Fail(e)) => return Err(Error::Auth(e).into()),
            Step::Parked(w, rx) => Step::Go(shared.wait(w, rx).await.ok_or(Error::Disconnected)?),
            Step::Go(Next::SendAnonymous | Next::Deliver | Next::Wait(_)) => {
                return Err(Error::Disconnected.into())
            }
        };
    }
}

fn deliver<R>(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    response: Response<R>,
) -> Response<ResponseBody<R>> {
    let watch = shared.adapter.grpc.then(|| Watch {
        shared: shared.clone(),
        generation: attempt.generation(),
    });
    response.map(|b| ResponseBody::new(b, watch))
}

/// A request without scheme and host (a tonic client over a `Channel`), taken to go to
/// the layer's default origin.
struct Relative<'a>(&'a Origin);

impl Target for Relative<'_> {
    fn scheme(&self) -> Option<&str> {
        Some(self.0.scheme())
    }

    fn host(&self) -> Option<&str> {
        Some(self.0.host())
    }

    fn port(&self) -> Option<u16> {
        Some(self.0.port())
    }
}
