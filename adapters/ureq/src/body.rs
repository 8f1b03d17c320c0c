//! Request bodies: bytes, which can be sent again after a refresh, or a reader, which can
//! be sent once.

use crate::error::Error;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE};
use http::{HeaderValue, Method, Uri};
use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::time::Duration;
use ureq::http::{request, Extensions, Request, Response};
use ureq::{AsSendBody, Body, SendBody};

/// The body of a request sent through [`Agent`](crate::Agent).
///
/// Bytes (`&str`, `String`, `&[u8]`, `Vec<u8>`, …) can be sent again, so a request
/// that meets a 401 is replayed after the refresh. A [`reader`](Self::reader) is consumed
/// by the first send: such a request is still authorized, but never replayed. On a 401
/// the session refreshes (for the next call) and the caller gets the 401.
///
/// ```
/// use reauth_ureq::RequestBody;
///
/// assert!(RequestBody::from("name=value").is_replayable());
/// assert!(!RequestBody::reader(std::io::Cursor::new(vec![1, 2, 3])).is_replayable());
/// ```
pub struct RequestBody<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Empty,
    Bytes(Cow<'a, [u8]>),
    /// `None` once sent.
    Reader(Option<Box<dyn Read + 'a>>),
}

impl<'a> RequestBody<'a> {
    /// No body at all (what `call()` sends).
    pub fn empty() -> Self {
        Self {
            inner: Inner::Empty,
        }
    }

    /// A body streamed from `reader` (sent chunked). It can be sent only once, so the
    /// request is never replayed.
    ///
    /// Consider sending such a request with `Expect: 100-continue`: the server's 401 then
    /// arrives before any of the body is sent. Without it, a server that rejects the token
    /// before reading the body may close the connection while the body is still being
    /// written; the call then fails with an I/O error, and the session does not see the
    /// 401 either.
    pub fn reader(reader: impl Read + 'a) -> Self {
        Self {
            inner: Inner::Reader(Some(Box::new(reader))),
        }
    }

    /// True if the body can be sent again (it is not a reader).
    pub fn is_replayable(&self) -> bool {
        !matches!(self.inner, Inner::Reader(_))
    }

    /// Sends one request with this body through `agent`. A send `by_hand` turns ureq's
    /// redirects and `http_status_as_error` off for this request: the wrapper follows
    /// redirects itself and needs to see a 401.
    pub(crate) fn send(
        &mut self,
        agent: &ureq::Agent,
        head: Head<'_>,
        tweak: Tweak<'_>,
    ) -> Result<Response<Body>, Error> {
        match &mut self.inner {
            Inner::Empty => run(agent, head, (), tweak),
            Inner::Bytes(bytes) => run(agent, head, &bytes[..], tweak),
            Inner::Reader(reader) => {
                // Unreachable: a request with a reader body is never told to send twice.
                let mut reader = reader.take().ok_or(Error::Disconnected)?;
                let body = SendBody::from_reader(&mut reader);
                run(agent, head, body, tweak)
            }
        }
    }
}

/// The head of one send, by reference: the caller's, and what this send changes in it. Why
/// not a changed clone handed down: a head is 224 bytes and every move of one (into each
/// function on the way, into the `Request`) is a copy; this way the one clone is made
/// where the request is built.
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    /// The caller's request.
    pub(crate) parts: &'a request::Parts,
    /// For a followed redirect, its method and target: the caller's `Authorization`,
    /// `Cookie` and `Content-Length` are dropped.
    pub(crate) hop: Option<(&'a Method, &'a Uri)>,
    /// The session's credential, replacing any `Authorization`.
    pub(crate) credential: Option<&'a HeaderValue>,
}

impl Head<'_> {
    /// Applies the changes to `request`, made with a clone of the caller's head.
    fn fill<B>(self, request: &mut Request<B>) {
        if let Some((method, uri)) = self.hop {
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            let headers = request.headers_mut();
            for name in [AUTHORIZATION, COOKIE, CONTENT_LENGTH] {
                headers.remove(name);
            }
        }
        if let Some(credential) = self.credential {
            request
                .headers_mut()
                .insert(AUTHORIZATION, credential.clone());
        }
    }
}

/// What a send `by_hand` needs on top of the agent's configuration, worked out once per
/// agent (a `ureq::Agent`'s configuration never changes).
pub(crate) struct ByHand {
    /// The agent already follows no redirects and reports every status: nothing to change.
    fits: bool,
    /// A request's extensions holding ureq's request-level configuration: the agent's, with
    /// redirects and `http_status_as_error` off. Why: cloning it into a request costs a
    /// fraction of `configure_request(..).max_redirects(0).http_status_as_error(false)` per
    /// request (the same configuration clone, but no map insert, no lookups per setting,
    /// and none of the builder's moves of the whole request).
    extensions: Extensions,
}

impl ByHand {
    pub(crate) fn new(agent: &ureq::Agent) -> Self {
        let config = agent.config();
        let fits = config.max_redirects() == 0 && !config.http_status_as_error();
        let (parts, ()) = agent
            .configure_request(Request::new(()))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into_parts();
        Self {
            fits,
            extensions: parts.extensions,
        }
    }
}

/// Per-request settings layered on the agent's configuration.
#[derive(Clone, Copy)]
pub(crate) struct Tweak<'a> {
    /// The wrapper follows redirects and applies `http_status_as_error` itself (for a
    /// request sent with the session's credential, and each of its redirect hops).
    pub(crate) by_hand: Option<&'a ByHand>,
    /// `timeout_global` for this request.
    pub(crate) timeout: Option<Duration>,
}

/// Sends `body` with the head `head`.
fn run<B: AsSendBody>(
    agent: &ureq::Agent,
    head: Head<'_>,
    body: B,
    tweak: Tweak<'_>,
) -> Result<Response<Body>, Error> {
    let mut request = Request::from_parts(head.parts.clone(), body);
    head.fill(&mut request);
    // Only pay for a request-level configuration when the agent's differs, or when the
    // request may carry one of its own (ureq keeps it in the extensions).
    let mut configure = false;
    if let Some(by_hand) = tweak.by_hand {
        if !request.extensions().is_empty() {
            configure = true;
        } else if !by_hand.fits {
            // Exactly what `configure` below would set up, prebuilt.
            *request.extensions_mut() = by_hand.extensions.clone();
        }
    }
    let request = if configure || tweak.timeout.is_some() {
        let mut config = agent.configure_request(request);
        if configure {
            config = config.max_redirects(0).http_status_as_error(false);
        }
        if let Some(timeout) = tweak.timeout {
            config = config.timeout_global(Some(timeout));
        }
        config.build()
    } else {
        request
    };
    if head.credential.is_some() {
        // The request carries the session's credential: out of ureq-proto's wire dump.
        return Ok(crate::quiet::quiet(|| agent.run(request))?);
    }
    Ok(agent.run(request)?)
}

impl Default for RequestBody<'_> {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the content: a body may hold secrets.
        match &self.inner {
            Inner::Empty => f.write_str("RequestBody::Empty"),
            Inner::Bytes(b) => write!(f, "RequestBody::Bytes({} bytes)", b.len()),
            Inner::Reader(_) => f.write_str("RequestBody::Reader"),
        }
    }
}

impl From<()> for RequestBody<'_> {
    fn from(_: ()) -> Self {
        Self::empty()
    }
}

impl<'a> From<&'a [u8]> for RequestBody<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self {
            inner: Inner::Bytes(Cow::Borrowed(bytes)),
        }
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for RequestBody<'a> {
    fn from(bytes: &'a [u8; N]) -> Self {
        Self::from(&bytes[..])
    }
}

impl<'a> From<&'a str> for RequestBody<'a> {
    fn from(text: &'a str) -> Self {
        Self::from(text.as_bytes())
    }
}

impl<'a> From<&'a String> for RequestBody<'a> {
    fn from(text: &'a String) -> Self {
        Self::from(text.as_bytes())
    }
}

impl<'a> From<&'a Vec<u8>> for RequestBody<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        Self::from(&bytes[..])
    }
}

impl From<String> for RequestBody<'_> {
    fn from(text: String) -> Self {
        Self::from(text.into_bytes())
    }
}

impl From<Vec<u8>> for RequestBody<'_> {
    fn from(bytes: Vec<u8>) -> Self {
        Self {
            inner: Inner::Bytes(Cow::Owned(bytes)),
        }
    }
}

impl<'a> From<Cow<'a, [u8]>> for RequestBody<'a> {
    fn from(bytes: Cow<'a, [u8]>) -> Self {
        Self {
            inner: Inner::Bytes(bytes),
        }
    }
}
