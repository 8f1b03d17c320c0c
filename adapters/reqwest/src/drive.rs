//! The request loop over tokio: admit, send, follow redirects, replay after a refresh.
//! The session's tasks and parked requests are `reauth_drive::tokio`'s; this file and
//! `source.rs` are this adapter's I/O.

use crate::error::Error;
use crate::redirect::{came_from, follow};
use crate::source::over_http;
use crate::template::{Built, Template};
use reauth_core::{Attempt, Origin, RefreshOutcome, RefreshToken};
use reauth_drive::tokio::{step, Adapter, Source, Step};
use reauth_drive::{is_redirect, Next, UrlTarget};
use reqwest::{Request, Response};
use std::future::Future;
use std::sync::Arc;
use tracing::trace;

/// How a request reaches the network: the plain client, or the rest of a middleware chain.
pub(crate) trait Transport {
    fn send(&mut self, request: Request) -> impl Future<Output = Result<Response, Error>> + Send;
}

/// The session's shared state, with this adapter's own part.
pub(crate) type Shared = reauth_drive::tokio::Shared<Http>;

/// What this adapter adds to the shared state: the refresh over its token client, and the
/// redirect rules of its request loop.
pub(crate) struct Http {
    pub(crate) source: Source,
    pub(crate) token_http: reqwest::Client,
    pub(crate) allow_insecure_http: bool,
    /// Where the credential may go, for redirect hops. Fixed at build time, as in the
    /// session's config.
    pub(crate) allowed: Box<[Origin]>,
    /// How many redirects a request follows; 0 for none (the 3xx is the answer).
    pub(crate) max_redirects: usize,
}

impl Adapter for Http {
    fn refresh(
        &self,
        refresh_token: Option<RefreshToken>,
    ) -> impl Future<Output = RefreshOutcome> + Send + '_ {
        self.source
            .refresh(refresh_token, |protocol, refresh_token| {
                over_http(
                    protocol,
                    &self.token_http,
                    refresh_token,
                    self.allow_insecure_http,
                )
            })
    }
}

/// The runtime the client was built on may be gone: then this request's is the one to
/// fire the session's deadlines.
fn ensure_timer(shared: &Arc<Shared>) -> Result<(), Error> {
    if shared.ensure_timer() {
        Ok(())
    } else {
        Err(Error::NoRuntime)
    }
}

/// Sends `request` through the session: attach the credential, follow redirects,
/// replay after a refresh, hand back the final response.
///
/// Only the common case lives here (a credential at hand, a response that is neither
/// a redirect nor one the refresh trigger fires for); every other path is boxed, so
/// this future, which callers move around, stays small.
// Not an `async fn`: rustc then keeps a second copy of the request in the future,
// and every request's future is built and moved.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run(
    shared: Arc<Shared>,
    request: Request,
    built: Built,
    mut transport: impl Transport,
) -> impl Future<Output = Result<Response, Error>> {
    // Nothing happens until the first poll, as with any future.
    async move {
        // The runtime the client was built on may be gone: then this request's is the
        // one to fire the session's deadlines.
        ensure_timer(&shared)?;
        let template = Template::of(built, &request);
        let step = shared.with_hub(|d, now| {
            let admission = d.begin_request(now, &UrlTarget(request.url()));
            step(d, admission.into())
        });
        let Step::Go(Next::Send(attempt)) = step else {
            let rest = resolve(&shared, step, Some(request), template, &mut transport);
            return Box::pin(rest).await;
        };
        let response = send(&attempt, request, &mut transport).await?;
        came_from(template.url(), &response)?;
        let status = response.status();
        if !is_redirect(status) && !shared.trigger().fires(status, response.headers()) {
            return Ok(response);
        }
        Box::pin(async move {
            match settle(&shared, &attempt, response, &template, &mut transport).await? {
                Ok(response) => Ok(response),
                Err(step) => resolve(&shared, step, None, template, &mut transport).await,
            }
        })
        .await
    }
}

/// Carries a request on from `step` (a wait, a replay, a failure) to its end. Boxed by
/// its callers; what it waits on in turn (a refresh, a body to drain) is boxed here,
/// so that every waiter of a storm holds no more than it needs.
// Not an `async fn`, for the reason given at `run`: its arguments would be stored
// twice.
#[allow(clippy::manual_async_fn)]
fn resolve<'a>(
    shared: &'a Arc<Shared>,
    mut step: Step,
    mut first: Option<Request>,
    template: Template,
    transport: &'a mut impl Transport,
) -> impl Future<Output = Result<Response, Error>> + 'a {
    async move {
        loop {
            step = match step {
                Step::Go(Next::Send(attempt)) => {
                    let Some(request) = first.take().or_else(|| template.replay()) else {
                        // Unreachable: a non-replayable request is never told to send
                        // twice.
                        return Err(Error::Disconnected);
                    };
                    let response = send(&attempt, request, transport).await?;
                    came_from(template.url(), &response)?;
                    let settled = settle(shared, &attempt, response, &template, transport);
                    match Box::pin(settled).await? {
                        Ok(response) => return Ok(response),
                        Err(step) => step,
                    }
                }
                Step::Go(Next::SendAnonymous) => {
                    let request = first.take().ok_or(Error::Disconnected)?;
                    trace!("reauth sending without credential: origin not allowed");
                    let response = transport.send(request).await?;
                    came_from(template.url(), &response)?;
                    if !is_redirect(response.status()) {
                        return Ok(response);
                    }
                    let followed = follow(shared, None, response, &template, transport);
                    return Ok(Box::pin(followed).await?.0);
                }
                Step::Go(Next::Fail(e)) => return Err(e.into()),
                Step::Parked(w, rx) => Step::Go(
                    Box::pin(shared.wait(w, rx))
                        .await
                        .ok_or(Error::Disconnected)?,
                ),
                Step::Go(Next::Deliver | Next::Wait(_)) => return Err(Error::Disconnected),
            };
        }
    }
}

/// After `response` to a request sent with `attempt`'s credential: follows its
/// redirects, then asks the session about the last response if its hop carried the
/// credential. `Ok` to hand it to the caller, else the step to take instead (the
/// response is then set aside).
async fn settle(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    response: Response,
    template: &Template,
    transport: &mut impl Transport,
) -> Result<Result<Response, Step>, Error> {
    let (response, authorized) = if is_redirect(response.status()) {
        follow(shared, Some(attempt), response, template, transport).await?
    } else {
        (response, true)
    };
    if !authorized {
        // A hop that never carried the token: its status says nothing about it.
        return Ok(Ok(response));
    }
    match answer(shared, attempt, &response, template.is_whole()) {
        None => Ok(Ok(response)),
        Some(step) => {
            set_aside(response).await;
            Ok(Err(step))
        }
    }
}

/// What to do after `response` to a request that carried `attempt`'s credential:
/// `None` to hand it to the caller, else the step to take instead.
fn answer(
    shared: &Arc<Shared>,
    attempt: &Attempt,
    response: &Response,
    replayable: bool,
) -> Option<Step> {
    if !shared
        .trigger()
        .fires(response.status(), response.headers())
    {
        // The common case, and what the session would answer: no lock.
        return None;
    }
    let step = shared.with_hub(|d, now| {
        let verdict = d.session.handle_response(
            now,
            attempt,
            response.status(),
            response.headers(),
            replayable,
        );
        step(d, verdict.into())
    });
    (!matches!(step, Step::Go(Next::Deliver))).then_some(step)
}

/// Sends `request` with the attempt's credential. Not an `async fn`: that would keep a
/// second copy of the request in every caller's future.
pub(crate) fn send<'t>(
    attempt: &Attempt,
    mut request: Request,
    transport: &'t mut impl Transport,
) -> impl Future<Output = Result<Response, Error>> + Send + 't {
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, attempt.header_value().clone());
    trace!(
        generation = attempt.generation().get(),
        replay = attempt.is_replay(),
        "reauth sending"
    );
    transport.send(request)
}

/// Drops a response that a refresh or a replay supersedes, after reading its body.
async fn set_aside(response: Response) {
    trace!(
        status = response.status().as_u16(),
        "reauth response needs a refresh or replay"
    );
    discard(response).await;
}

/// Reads and drops the body of a response that will not reach the caller, bounded (see
/// [`reauth_drive::tokio::discard`]).
pub(crate) async fn discard(response: Response) {
    reauth_drive::tokio::discard(reqwest::Body::from(response)).await;
}
