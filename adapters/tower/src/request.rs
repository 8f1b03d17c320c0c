//! One request through the session: admit, attach the credential, send, and on a
//! refresh trigger wait and replay.
//!
//! The first attempt is sent inside `AuthService::call`, on the service that answered
//! ready, and its future is polled in place: the common case (a valid token, a response
//! that is not a trigger) allocates nothing and clones no service. A request that waits
//! for a refresh, or whose response is a trigger, goes on in a boxed future with a clone
//! of the service.

use crate::body::{Prepared, ReplayBody};
use crate::drive::Shared;
use crate::grpc::{ResponseBody, Watch};
use crate::Error;
use bytes::{Buf, Bytes};
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use reauth_core::{Attempt, Origin, Target, WaiterId};
use reauth_drive::tokio::{discard, step, Step};
use reauth_drive::Next;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::sync::oneshot;
use tower::{BoxError, Service, ServiceExt};

/// What the response futures resolve to.
type Output<R> = Result<Response<ResponseBody<R>>, BoxError>;

pin_project_lite::pin_project! {
    /// The response future of [`AuthService`](crate::AuthService): the wrapped service's
    /// own future while the first attempt is in flight, a boxed one once the request
    /// waits for a refresh or is replayed.
    pub struct ResponseFuture<S, O, R>
    where
        S: Service<Request<O>>,
    {
        #[pin]
        state: State<S, O, R>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[project_replace = StateTaken]
    enum State<S, O, R>
    where
        S: Service<Request<O>>,
    {
        // Sent without a credential (a foreign origin): the response as it comes.
        Bare {
            #[pin]
            sent: S::Future,
        },
        // The first attempt with a credential, and what a replay needs.
        First {
            #[pin]
            sent: S::Future,
            attempt: Attempt,
            again: Again<S, O>,
        },
        // Waiting for a refresh, replaying.
        Slow {
            future: Pin<Box<dyn Future<Output = Output<R>> + Send>>,
        },
        // Failed before anything was sent.
        Failed {
            error: Option<BoxError>,
        },
        // Only while the state is being replaced.
        Moving,
    }
}

/// What sending the request again takes: its head and body, the session, and where a
/// service comes from.
struct Again<S, O> {
    shared: Arc<Shared>,
    parts: Parts,
    body: Prepared,
    spare: Arc<Mutex<S>>,
    sent_as: PhantomData<fn() -> O>,
}

/// Admits `request` and, if the session says send, sends it on `inner` (which has
/// answered ready); `spare` gives the service for any later send.
pub(crate) fn start<S, B, O, R>(
    shared: &Arc<Shared>,
    spare: &Arc<Mutex<S>>,
    inner: &mut S,
    request: Request<B>,
) -> ResponseFuture<S, O, R>
where
    S: Service<Request<O>, Response = Response<R>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    O: From<ReplayBody> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    R: Body + Send + 'static,
    R::Data: Send,
{
    let (parts, body) = request.into_parts();
    let admitted = shared.with_hub(|d, now| {
        let admission = match &shared.adapter.default_origin {
            Some(base) if parts.uri.authority().is_none() => d.begin_request(now, &Relative(base)),
            _ => d.begin_request(now, &parts.uri),
        };
        step(d, admission.into())
    });
    let failed = |e: Error| State::Failed {
        error: Some(e.into()),
    };
    let state = match admitted {
        // Nothing is replayed without a credential: no recording.
        Step::Go(Next::SendAnonymous) => match Prepared::new(body, 0).next() {
            Some(body) => State::Bare {
                sent: inner.call(Request::from_parts(parts, O::from(body))),
            },
            None => failed(Error::Disconnected),
        },
        Step::Go(Next::Send(attempt)) => {
            let mut body = Prepared::new(body, shared.adapter.body_limit);
            match body.next() {
                Some(sent) => {
                    // The caller's head goes out; a copy without the credential stays
                    // for a replay.
                    let kept = parts.clone();
                    let mut request = Request::from_parts(parts, O::from(sent));
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, attempt.header_value().clone());
                    State::First {
                        sent: inner.call(request),
                        attempt,
                        again: Again {
                            shared: shared.clone(),
                            parts: kept,
                            body,
                            spare: spare.clone(),
                            sent_as: PhantomData,
                        },
                    }
                }
                None => failed(Error::Disconnected),
            }
        }
        Step::Parked(waiter, rx) => {
            let again = Again {
                shared: shared.clone(),
                parts,
                body: Prepared::new(body, shared.adapter.body_limit),
                spare: spare.clone(),
                sent_as: PhantomData,
            };
            let parked = Parked {
                shared: shared.clone(),
                wait: Some((waiter, rx)),
            };
            State::Slow {
                future: Box::pin(again.run(Pending::Parked(parked))),
            }
        }
        Step::Go(Next::Fail(e)) => failed(Error::Auth(e)),
        Step::Go(Next::Deliver | Next::Wait(_)) => failed(Error::Disconnected),
    };
    ResponseFuture { state }
}

impl<S, O, R> Future for ResponseFuture<S, O, R>
where
    S: Service<Request<O>, Response = Response<R>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    O: From<ReplayBody> + Send + 'static,
    R: Body + Send + 'static,
    R::Data: Send,
{
    type Output = Output<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output<R>> {
        let mut state = self.project().state;
        let (attempt, again, response) = match state.as_mut().project() {
            StateProj::Bare { sent } => {
                let response = ready!(sent.poll(cx)).map_err(Into::into)?;
                return Poll::Ready(Ok(response.map(|b| ResponseBody::new(b, None))));
            }
            StateProj::First {
                sent,
                attempt,
                again,
            } => {
                let response = ready!(sent.poll(cx)).map_err(Into::into)?;
                if !again
                    .shared
                    .trigger()
                    .fires(response.status(), response.headers())
                {
                    // The common case, and what the session would answer: no lock.
                    return Poll::Ready(Ok(deliver(&again.shared, attempt, response)));
                }
                match state.as_mut().project_replace(State::Moving) {
                    StateTaken::First { attempt, again, .. } => (attempt, again, response),
                    _ => unreachable!("the state was First"),
                }
            }
            StateProj::Slow { future } => return future.as_mut().poll(cx),
            StateProj::Failed { error } => {
                return Poll::Ready(Err(error.take().unwrap_or_else(|| {
                    panic!("reauth_tower::ResponseFuture polled after it completed")
                })))
            }
            StateProj::Moving => unreachable!("the state is replaced before it is polled"),
        };
        let mut future = Box::pin(again.run(Pending::Judge(attempt, response)));
        let polled = future.as_mut().poll(cx);
        state.set(State::Slow { future });
        polled
    }
}

/// Where the slow path takes up the request.
enum Pending<R> {
    /// The response to an attempt was a trigger: the session judges it.
    Judge(Attempt, Response<R>),
    /// Parked by the session when admitted.
    Parked(Parked),
}

/// A request parked when admitted, until its future first runs: dropped before that, the
/// wait is cancelled in the session (once running, [`Shared::wait`] does it).
struct Parked {
    shared: Arc<Shared>,
    wait: Option<(
        WaiterId,
        oneshot::Receiver<Result<Attempt, reauth_core::Error>>,
    )>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some((waiter, _)) = self.wait.take() {
            self.shared.with_hub(|d, _| d.cancel(waiter));
        }
    }
}

/// What the session made of a trigger response.
enum Judged<R> {
    Deliver(Response<ResponseBody<R>>),
    Next(Step),
}

impl<S, O> Again<S, O> {
    /// The rest of the request after the first attempt or the admission: waits, replays,
    /// the final response.
    async fn run<R>(self, pending: Pending<R>) -> Output<R>
    where
        S: Service<Request<O>, Response = Response<R>> + Clone,
        S::Error: Into<BoxError>,
        O: From<ReplayBody>,
        R: Body,
        R::Data: Buf,
    {
        let Again {
            shared,
            parts,
            mut body,
            spare,
            ..
        } = self;
        let mut current = match pending {
            Pending::Judge(attempt, response) => {
                match judge(&shared, &mut body, attempt, response).await {
                    Judged::Deliver(response) => return Ok(response),
                    Judged::Next(next) => next,
                }
            }
            Pending::Parked(mut parked) => {
                let Some((waiter, rx)) = parked.wait.take() else {
                    return Err(Error::Disconnected.into());
                };
                Step::Go(shared.wait(waiter, rx).await.ok_or(Error::Disconnected)?)
            }
        };
        // A clone of the wrapped service, taken once and polled ready before each send.
        let mut service: Option<S> = None;
        loop {
            current = match current {
                Step::Go(Next::Send(attempt)) => {
                    let Some(sent) = body.next() else {
                        // Unreachable: a request that cannot be replayed is never told to
                        // send twice.
                        return Err(Error::Disconnected.into());
                    };
                    let mut request = Request::from_parts(parts.clone(), O::from(sent));
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, attempt.header_value().clone());
                    let service = service.get_or_insert_with(|| {
                        spare.lock().unwrap_or_else(|e| e.into_inner()).clone()
                    });
                    let response = service
                        .ready()
                        .await
                        .map_err(Into::into)?
                        .call(request)
                        .await
                        .map_err(Into::into)?;
                    if !shared
                        .trigger()
                        .fires(response.status(), response.headers())
                    {
                        return Ok(deliver(&shared, &attempt, response));
                    }
                    match judge(&shared, &mut body, attempt, response).await {
                        Judged::Deliver(response) => return Ok(response),
                        Judged::Next(next) => next,
                    }
                }
                Step::Go(Next::Fail(e)) => return Err(Error::Auth(e).into()),
                Step::Parked(w, rx) => {
                    Step::Go(shared.wait(w, rx).await.ok_or(Error::Disconnected)?)
                }
                Step::Go(Next::SendAnonymous | Next::Deliver | Next::Wait(_)) => {
                    return Err(Error::Disconnected.into())
                }
            };
        }
    }
}

/// Tells the session of a trigger response to `attempt`: deliver it, or what comes next.
/// (`body` is `&mut`: a shared borrow held across the wait would need `Prepared: Sync`.)
async fn judge<R>(
    shared: &Arc<Shared>,
    body: &mut Prepared,
    attempt: Attempt,
    response: Response<R>,
) -> Judged<R>
where
    R: Body,
    R::Data: Buf,
{
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
        return Judged::Deliver(deliver(shared, &attempt, response));
    }
    tracing::trace!(
        status = response.status().as_u16(),
        "reauth response needs a refresh or replay"
    );
    discard(response.into_body()).await;
    Judged::Next(next)
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
