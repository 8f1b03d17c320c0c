//! Request bodies that can be sent again after a refresh.
//!
//! A body whose frames are all ready at once (`Full`, `Bytes`, `Empty`, a `String`, …)
//! is taken in whole and replayed from its chunks (shared `Bytes`, nothing copied). Any
//! other body is sent as it streams and recorded up to the layer's cap; once it has been
//! sent in full and within the cap, a replay sends the recording. A body over the cap, or
//! one the server answered before it was sent in full, is not replayed.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tower::BoxError;

/// The request body the layer hands the wrapped service: the caller's body, or its
/// recording on a replay. Services that take another body type get it through `From`
/// (see [`AuthLayer::with_body`](crate::AuthLayer::with_body)).
///
/// ```
/// use http_body::Body;
/// use reauth_tower::ReplayBody;
///
/// let body = ReplayBody::from(bytes::Bytes::from_static(b"hello"));
/// assert_eq!(body.size_hint().exact(), Some(5));
/// ```
pub struct ReplayBody {
    kind: Kind,
}

enum Kind {
    /// Chunks held in memory from `next` on, then trailers. `exact`: the caller's body
    /// knew its length (a body that did not gets no length from us either, so hyper adds
    /// no `content-length` that the raw client would not have sent).
    Chunks {
        chunks: Chunks,
        next: usize,
        trailers: Option<HeaderMap>,
        exact: bool,
    },
    /// Chunks already taken from `rest`, then `rest` itself, recorded into `tape`.
    Streaming {
        prefix: VecDeque<Bytes>,
        rest: UnsyncBoxBody<Bytes, BoxError>,
        tape: Arc<TapeCell>,
    },
    /// The caller's body failed before it was sent: the error, once.
    Failed(Option<BoxError>),
}

impl std::fmt::Debug for ReplayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Chunks { .. } => "in memory",
            Kind::Streaming { .. } => "streaming",
            Kind::Failed(_) => "failed",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

impl From<Bytes> for ReplayBody {
    fn from(bytes: Bytes) -> Self {
        Self::chunks(Chunks::from_vec(vec![bytes]), None, true)
    }
}

#[cfg(feature = "tonic")]
impl From<ReplayBody> for tonic::body::Body {
    fn from(body: ReplayBody) -> Self {
        tonic::body::Body::new(body)
    }
}

impl From<ReplayBody> for UnsyncBoxBody<Bytes, BoxError> {
    fn from(body: ReplayBody) -> Self {
        UnsyncBoxBody::new(body)
    }
}

impl ReplayBody {
    fn chunks(chunks: Chunks, trailers: Option<HeaderMap>, exact: bool) -> Self {
        Self {
            kind: Kind::Chunks {
                chunks,
                next: 0,
                trailers,
                exact,
            },
        }
    }
}

/// Chunks in memory, shared by the first send and every replay. None or one chunk (the
/// common bodies) needs no allocation.
#[derive(Clone)]
enum Chunks {
    None,
    One(Bytes),
    Many(Arc<[Bytes]>),
}

impl Chunks {
    /// The non-empty ones of `chunks`.
    fn from_vec(mut chunks: Vec<Bytes>) -> Self {
        chunks.retain(|c| !c.is_empty());
        match chunks.len() {
            0 => Chunks::None,
            1 => Chunks::One(chunks.swap_remove(0)),
            _ => Chunks::Many(chunks.into()),
        }
    }

    /// The chunk at `*next`, moved out if it is the only one, and the cursor moved on.
    fn take(&mut self, next: &mut usize) -> Option<Bytes> {
        match self {
            Chunks::None => None,
            Chunks::One(_) => match std::mem::replace(self, Chunks::None) {
                Chunks::One(chunk) => Some(chunk),
                _ => None,
            },
            Chunks::Many(chunks) => {
                let chunk = chunks.get(*next).cloned();
                *next += 1;
                chunk
            }
        }
    }

    fn get(&self, i: usize) -> Option<&Bytes> {
        match self {
            Chunks::None => None,
            Chunks::One(chunk) => (i == 0).then_some(chunk),
            Chunks::Many(chunks) => chunks.get(i),
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunks::None => 0,
            Chunks::One(_) => 1,
            Chunks::Many(chunks) => chunks.len(),
        }
    }
}

/// A recording and the signal that it settled (finished, spoiled, or handed back).
struct TapeCell {
    tape: Mutex<Tape>,
    settled: tokio::sync::Notify,
}

impl TapeCell {
    fn new(cap: usize, chunks: &VecDeque<Bytes>) -> Arc<Self> {
        let mut tape = Tape {
            cap,
            chunks: Vec::new(),
            size: 0,
            trailers: None,
            state: TapeState::Recording,
            leftover: None,
        };
        for chunk in chunks {
            tape.record(chunk);
        }
        Arc::new(Self {
            tape: Mutex::new(tape),
            settled: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tape> {
        self.tape.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The part of a body the sender never took: what it had not sent yet when it dropped
/// the body (an HTTP/2 server may answer, and reset the upload, before reading it all).
type Leftover = (VecDeque<Bytes>, UnsyncBoxBody<Bytes, BoxError>);

/// What a streaming body left behind for a replay.
struct Tape {
    /// Bytes recorded at most: beyond, the recording is dropped.
    cap: usize,
    chunks: Vec<Bytes>,
    size: usize,
    trailers: Option<HeaderMap>,
    state: TapeState,
    /// Set when the sender dropped the body unfinished: recording plus leftover is the
    /// whole body.
    leftover: Option<Leftover>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TapeState {
    /// Still being sent.
    Recording,
    /// Sent in full, within the cap.
    Complete,
    /// Over the cap, or failed: never replayed.
    Spoiled,
}

impl Tape {
    fn record(&mut self, chunk: &Bytes) {
        if self.state != TapeState::Recording {
            return;
        }
        self.size = self.size.saturating_add(chunk.len());
        if self.size > self.cap {
            self.spoil();
        } else {
            self.chunks.push(chunk.clone());
        }
    }

    fn spoil(&mut self) {
        self.state = TapeState::Spoiled;
        self.chunks = Vec::new();
        self.trailers = None;
        self.leftover = None;
    }

    /// Whether a replay can be made, now that the recording settled.
    fn replayable(&self) -> bool {
        self.state == TapeState::Complete
            || (self.state == TapeState::Recording && self.leftover.is_some())
    }

    fn finish(&mut self) {
        if self.state == TapeState::Recording {
            self.state = TapeState::Complete;
        }
    }
}

/// The chunks a body had ready, in order: the first one needs no allocation.
#[derive(Default)]
struct Gathered {
    first: Option<Bytes>,
    more: Vec<Bytes>,
}

impl Gathered {
    fn push(&mut self, chunk: Bytes) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.more.push(chunk);
        }
    }

    fn into_chunks(self) -> Chunks {
        match self.first {
            None => Chunks::None,
            Some(first) if self.more.is_empty() => Chunks::One(first),
            Some(first) => Chunks::Many(std::iter::once(first).chain(self.more).collect()),
        }
    }

    fn into_prefix(self) -> VecDeque<Bytes> {
        self.first.into_iter().chain(self.more).collect()
    }
}

/// A request's body as the request future keeps it: the body for the first send, and
/// where a replay's body comes from.
pub(crate) struct Prepared {
    first: Option<ReplayBody>,
    replay: Replay,
}

enum Replay {
    Chunks(Chunks, Option<HeaderMap>, bool),
    Tape(Arc<TapeCell>),
    Never,
}

impl Prepared {
    /// Takes in whatever `body` has ready now (without waiting: every poll here finds it
    /// ready or not), then sets up the recording of the rest, up to `cap` bytes.
    pub(crate) fn new<B>(body: B, cap: usize) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // Bodies of a known length that are ready at once are in memory already: taking
        // them in whole costs nothing, whatever their size. Others stop at the cap.
        let exact = body.size_hint().exact().is_some();
        if body.is_end_stream() {
            return Self::complete(Gathered::default(), None, exact);
        }
        // tonic's body is boxed already and `Unpin`: polled where it is, not boxed again.
        #[cfg(feature = "tonic")]
        let body = {
            let mut slot = Some(body);
            let any: &mut dyn std::any::Any = &mut slot;
            if let Some(tonic) = any
                .downcast_mut::<Option<tonic::body::Body>>()
                .and_then(Option::take)
            {
                return Self::take_in(tonic, cap, exact, |rest| {
                    rest.map_err(Into::into).boxed_unsync()
                });
            }
            let Some(body) = slot else {
                unreachable!("only a successful downcast empties the slot")
            };
            body
        };
        // Any other body is boxed once, for the polls here and for streaming the rest.
        Self::take_in(
            body.map_err(Into::into).boxed_unsync(),
            cap,
            exact,
            |rest| rest,
        )
    }

    fn take_in<U>(
        mut body: U,
        cap: usize,
        exact: bool,
        boxed: impl FnOnce(U) -> UnsyncBoxBody<Bytes, BoxError>,
    ) -> Self
    where
        U: Body<Data = Bytes> + Unpin,
        U::Error: Into<BoxError>,
    {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut chunks = Gathered::default();
        let mut trailers = None;
        let mut size = 0usize;
        loop {
            if body.is_end_stream() {
                return Self::complete(chunks, trailers, exact);
            }
            if !exact && size > cap {
                break;
            }
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(None) => return Self::complete(chunks, trailers, exact),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) => {
                        size = size.saturating_add(data.len());
                        chunks.push(data);
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            trailers = Some(t);
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    return Self {
                        first: Some(ReplayBody {
                            kind: Kind::Failed(Some(e.into())),
                        }),
                        replay: Replay::Never,
                    }
                }
                Poll::Pending => break,
            }
        }
        let prefix = chunks.into_prefix();
        let tape = TapeCell::new(cap, &prefix);
        Self {
            first: Some(ReplayBody {
                kind: Kind::Streaming {
                    prefix,
                    rest: boxed(body),
                    tape: tape.clone(),
                },
            }),
            replay: Replay::Tape(tape),
        }
    }

    fn complete(chunks: Gathered, trailers: Option<HeaderMap>, exact: bool) -> Self {
        let chunks = chunks.into_chunks();
        Self {
            first: Some(ReplayBody::chunks(chunks.clone(), trailers.clone(), exact)),
            replay: Replay::Chunks(chunks, trailers, exact),
        }
    }

    /// The body for the next send: the caller's on the first, a recording after.
    pub(crate) fn next(&mut self) -> Option<ReplayBody> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        match &self.replay {
            Replay::Chunks(chunks, trailers, exact) => {
                Some(ReplayBody::chunks(chunks.clone(), trailers.clone(), *exact))
            }
            Replay::Tape(cell) => {
                let mut tape = cell.lock();
                if tape.state == TapeState::Complete {
                    return Some(ReplayBody::chunks(
                        Chunks::from_vec(tape.chunks.clone()),
                        tape.trailers.clone(),
                        true,
                    ));
                }
                let (unsent, rest) = tape
                    .leftover
                    .take()
                    .filter(|_| tape.state == TapeState::Recording)?;
                // The recording, then what was never sent, recorded anew for a replay
                // after this one.
                let prefix: VecDeque<Bytes> = tape.chunks.iter().cloned().chain(unsent).collect();
                let cap = tape.cap;
                drop(tape);
                let fresh = TapeCell::new(cap, &prefix);
                self.replay = Replay::Tape(fresh.clone());
                Some(ReplayBody {
                    kind: Kind::Streaming {
                        prefix,
                        rest,
                        tape: fresh,
                    },
                })
            }
            Replay::Never => None,
        }
    }

    /// Waits (briefly) until a streaming body's recording settles: sent in full, over the
    /// cap, or dropped by the sender with a part unsent (then that part is kept).
    pub(crate) fn settle(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);
        let cell = match &self.replay {
            Replay::Tape(cell) => Some(cell.clone()),
            _ => None,
        };
        async move {
            let Some(cell) = cell else { return };
            let settled = async {
                loop {
                    {
                        let tape = cell.lock();
                        if tape.state != TapeState::Recording || tape.leftover.is_some() {
                            return;
                        }
                    }
                    cell.settled.notified().await;
                }
            };
            let _ = tokio::time::timeout(PATIENCE, settled).await;
        }
    }

    /// True if a replay can be sent: the body is in memory, or was sent in full within
    /// the cap.
    pub(crate) fn replayable(&self) -> bool {
        match &self.replay {
            Replay::Chunks(..) => true,
            Replay::Tape(cell) => cell.lock().replayable(),
            Replay::Never => false,
        }
    }
}

impl Drop for ReplayBody {
    fn drop(&mut self) {
        let Kind::Streaming { prefix, rest, tape } = &mut self.kind else {
            return;
        };
        let mut recording = tape.lock();
        if recording.state == TapeState::Recording && recording.leftover.is_none() {
            let unsent = std::mem::take(prefix);
            let rest = std::mem::replace(
                rest,
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            recording.leftover = Some((unsent, rest));
        }
        drop(recording);
        tape.settled.notify_one();
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Chunks {
                chunks,
                next,
                trailers,
                ..
            } => Poll::Ready(match chunks.take(next) {
                Some(chunk) => Some(Ok(Frame::data(chunk))),
                None => trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            Kind::Streaming { prefix, rest, tape } => {
                if let Some(chunk) = prefix.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                let polled = Pin::new(&mut *rest).poll_frame(cx);
                let Poll::Ready(polled) = polled else {
                    return Poll::Pending;
                };
                let mut tape_now = tape.lock();
                match &polled {
                    None => tape_now.finish(),
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            tape_now.record(data);
                        } else if let Some(t) = frame.trailers_ref() {
                            if tape_now.state == TapeState::Recording {
                                tape_now.trailers = Some(t.clone());
                            }
                        }
                        if rest.is_end_stream() {
                            tape_now.finish();
                        }
                    }
                    Some(Err(_)) => tape_now.spoil(),
                }
                if tape_now.state != TapeState::Recording {
                    tape.settled.notify_one();
                }
                Poll::Ready(polled)
            }
            Kind::Failed(e) => Poll::Ready(e.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Chunks {
                chunks,
                next,
                trailers,
                ..
            } => *next >= chunks.len() && trailers.is_none(),
            Kind::Streaming { prefix, rest, tape } => {
                let end = prefix.is_empty() && rest.is_end_stream();
                if end {
                    // The sender may stop polling here: the recording is whole.
                    tape.lock().finish();
                    tape.settled.notify_one();
                }
                end
            }
            Kind::Failed(e) => e.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Chunks {
                chunks,
                next,
                exact: true,
                ..
            } => SizeHint::with_exact(
                (*next..chunks.len())
                    .filter_map(|i| chunks.get(i))
                    .map(|c| c.len() as u64)
                    .sum(),
            ),
            Kind::Chunks { exact: false, .. } => SizeHint::default(),
            Kind::Streaming { prefix, rest, .. } => {
                let before: u64 = prefix.iter().map(|c| c.len() as u64).sum();
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(before));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(before));
                }
                hint
            }
            Kind::Failed(_) => SizeHint::default(),
        }
    }
}
