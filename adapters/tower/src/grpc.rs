//! gRPC: `UNAUTHENTICATED` (status 16) as a refresh trigger, and in the trailers of a
//! streamed response as a report that the token is bad.
//!
//! Marked for reauth-core: [`unauthenticated`] and [`trigger`] are pure functions over
//! `http` types and belong next to `RefreshTrigger::Rfc6750` as a preset
//! (`RefreshTrigger::Grpc`); this crate may not edit the core, so they live here, built
//! with [`RefreshTrigger::custom`].

use crate::drive::Shared;
use bytes::Buf;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use reauth_core::{Generation, RefreshTrigger};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// gRPC's status code for a missing, invalid or expired credential.
const UNAUTHENTICATED: &[u8] = b"16";

/// True if `headers` carry `grpc-status: 16` (UNAUTHENTICATED). In the response headers
/// this is a *trailers-only* response: the call failed before any message, so it can be
/// replayed like a 401.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("grpc-status", HeaderValue::from_static("16"));
/// assert!(reauth_tower::grpc::unauthenticated(&headers));
/// headers.insert("grpc-status", HeaderValue::from_static("7")); // PERMISSION_DENIED
/// assert!(!reauth_tower::grpc::unauthenticated(&headers));
/// ```
pub fn unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes().trim_ascii() == UNAUTHENTICATED)
}

/// The refresh trigger for gRPC (and plain HTTP on the same layer): a trailers-only
/// `UNAUTHENTICATED` (whatever the HTTP status, normally 200) or what RFC 6750 says (a
/// 401 without a challenge that rules it out). `PERMISSION_DENIED` (7) never refreshes:
/// the token is good, it lacks a right. [`AuthLayerBuilder::grpc`](crate::AuthLayerBuilder::grpc)
/// sets it.
///
/// ```
/// use http::{HeaderMap, HeaderValue, StatusCode};
///
/// let trigger = reauth_tower::grpc::trigger();
/// let mut headers = HeaderMap::new();
/// headers.insert("grpc-status", HeaderValue::from_static("16"));
/// assert!(trigger.fires(StatusCode::OK, &headers));
/// assert!(!trigger.fires(StatusCode::OK, &HeaderMap::new()));
/// assert!(trigger.fires(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
/// ```
pub fn trigger() -> RefreshTrigger {
    RefreshTrigger::custom(|status: StatusCode, headers: &HeaderMap| {
        unauthenticated(headers) || RefreshTrigger::Rfc6750.fires(status, headers)
    })
}

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
                    if let Some(w) = watch.filter(|_| unauthenticated(trailers)) {
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
