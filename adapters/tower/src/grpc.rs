//! gRPC: `UNAUTHENTICATED` (status 16) in the trailers of a streamed response, as a report
//! that the token is bad. In the headers (a trailers-only response) it is the core's
//! [`RefreshTrigger::Grpc`](reauth_core::RefreshTrigger::Grpc), like a 401.

use crate::drive::Shared;
use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use reauth_core::challenge::grpc_unauthenticated;
use reauth_core::Generation;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// The response body the layer hands back: the wrapped service's, unchanged. With
    /// [`grpc`](crate::AuthLayerBuilder::grpc) on, a response to a request sent with the
    /// token is watched for `UNAUTHENTICATED` in its trailers: such a call has streamed
    /// messages already and cannot be replayed (the caller gets the status), but the
    /// session is told the token is bad, so the next call waits for a fresh one instead
    /// of being refused too. The report carries the token's generation: a trailer for a
    /// token already replaced does nothing.
    pub struct ResponseBody<R> {
        #[pin]
        inner: R,
        watch: Option<Watch>,
    }
}

pub(crate) struct Watch {
    pub(crate) shared: Arc<Shared>,
    pub(crate) generation: Generation,
}

impl<R> ResponseBody<R> {
    pub(crate) fn new(inner: R, watch: Option<Watch>) -> Self {
        Self { inner, watch }
    }

    /// The wrapped service's body.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: std::fmt::Debug> std::fmt::Debug for ResponseBody<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("watched", &self.watch.is_some())
            .finish()
    }
}

impl<R: Body> Body for ResponseBody<R>
where
    R::Data: Buf,
{
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<R::Data>, R::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if this.watch.is_some() {
            if let Poll::Ready(Some(Ok(frame))) = &polled {
                if let Some(trailers) = frame.trailers_ref() {
                    let watch = this.watch.take();
                    if let Some(w) = watch.filter(|_| grpc_unauthenticated(trailers)) {
                        tracing::debug!(
                            "reauth: UNAUTHENTICATED in trailers, refreshing for the next call"
                        );
                        let generation = w.generation;
                        w.shared
                            .with_hub(|d, now| d.session.invalidate(now, generation));
                    }
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
