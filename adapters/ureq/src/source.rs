//! Where new tokens come from: an HTTP refresh protocol (OAuth2 or custom) sent with ureq,
//! or a closure.

use reauth_core::protocol::{prepare_request, redirected};
use reauth_core::{
    RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken, TokenSet,
};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type RefreshFn = dyn Fn(Option<RefreshToken>) -> Result<TokenSet, RefreshError> + Send + Sync;

pub(crate) enum Source {
    Protocol(Arc<dyn RefreshProtocol>),
    Closure(Arc<RefreshFn>),
}

impl Source {
    pub(crate) fn closure<F>(f: F) -> Self
    where
        F: Fn(Option<RefreshToken>) -> Result<TokenSet, RefreshError> + Send + Sync + 'static,
    {
        Source::Closure(Arc::new(f))
    }

    pub(crate) fn requires_refresh_token(&self) -> Option<bool> {
        match self {
            Source::Protocol(p) => Some(p.requires_refresh_token()),
            Source::Closure(_) => None,
        }
    }

    /// Runs one refresh on the calling thread. An HTTP refresh is bounded by `timeout`; a
    /// closure is not (the session's refresh timeout still moves the other requests on).
    pub(crate) fn refresh(
        &self,
        agent: &ureq::Agent,
        refresh_token: Option<RefreshToken>,
        allow_insecure_http: bool,
        timeout: Duration,
    ) -> RefreshOutcome {
        match self {
            Source::Closure(f) => match f(refresh_token) {
                Ok(tokens) => RefreshOutcome::Success(tokens),
                Err(e) => RefreshOutcome::Failed(e),
            },
            Source::Protocol(p) => over_http(
                p.as_ref(),
                agent,
                refresh_token,
                allow_insecure_http,
                timeout,
            ),
        }
    }
}

fn over_http(
    protocol: &dyn RefreshProtocol,
    agent: &ureq::Agent,
    refresh_token: Option<RefreshToken>,
    allow_insecure_http: bool,
    timeout: Duration,
) -> RefreshOutcome {
    let request = match prepare_request(protocol, refresh_token.as_ref(), allow_insecure_http) {
        Ok(r) => r,
        Err(e) => return RefreshOutcome::Failed(e),
    };
    // Never follow a redirect with a refresh token in the body; hand every status to the
    // protocol's parser; give up after the refresh timeout, body included.
    let request = agent
        .configure_request(request)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build();
    // The request carries the refresh token and the client's credentials, its answer
    // the tokens: all of it out of ureq-proto's wire dump, the body read included.
    crate::quiet::quiet(|| exchange(protocol, agent, request))
}

/// Sends the token request and reads the answer.
fn exchange(
    protocol: &dyn RefreshProtocol,
    agent: &ureq::Agent,
    request: http::Request<Vec<u8>>,
) -> RefreshOutcome {
    let mut response = match agent.run(request) {
        Ok(r) => r,
        Err(e) => return RefreshOutcome::Failed(network_error(&e)),
    };
    let status = response.status();
    // Not followed (above): a redirect is a misconfigured endpoint, not a token response.
    if let Some(e) = redirected(status, response.headers()) {
        return RefreshOutcome::Failed(e);
    }
    let headers = std::mem::take(response.headers_mut());
    let limit = protocol.max_response_bytes();
    // Read at most limit + 1 bytes: enough for the parser to tell "too large".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut body = Vec::new();
    if let Err(e) = response
        .body_mut()
        .as_reader()
        .take(cap)
        .read_to_end(&mut body)
    {
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
        return RefreshOutcome::Failed(if timed_out {
            RefreshError::transient(RefreshErrorKind::Timeout)
                .with_detail("the token response body did not arrive in time")
        } else {
            RefreshError::transient(RefreshErrorKind::Network)
                .with_detail("the token response body was cut off")
        });
    }
    protocol.parse_response(status, &headers, &body, SystemTime::now())
}

fn network_error(e: &ureq::Error) -> RefreshError {
    // ureq's messages can name the URL; the kind is enough and never holds secrets.
    let (kind, detail) = match e {
        ureq::Error::Timeout(_) => (RefreshErrorKind::Timeout, "the token endpoint timed out"),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => (
            RefreshErrorKind::Network,
            "could not connect to the token endpoint",
        ),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            return RefreshError::permanent(RefreshErrorKind::Other)
                .with_detail("the refresh request is not a valid HTTP request")
        }
        ureq::Error::Protocol(_) => (
            RefreshErrorKind::Network,
            "the token endpoint broke the HTTP protocol",
        ),
        ureq::Error::Io(_) => (
            RefreshErrorKind::Network,
            "the connection to the token endpoint failed",
        ),
        _ => (RefreshErrorKind::Network, "the token request failed"),
    };
    RefreshError::transient(kind).with_detail(detail)
}
