//! Where new tokens come from: an HTTP refresh protocol (OAuth2 or custom), or a closure.

use reauth_core::protocol::{prepare_request, redirected};
use reauth_core::{
    RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken, TokenSet,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

/// A boxed future returned by a refresh closure.
pub type RefreshFuture = Pin<Box<dyn Future<Output = Result<TokenSet, RefreshError>> + Send>>;

type RefreshFn = dyn Fn(Option<RefreshToken>) -> RefreshFuture + Send + Sync;

#[derive(Clone)]
pub(crate) enum Source {
    Protocol(Arc<dyn RefreshProtocol>),
    Closure(Arc<RefreshFn>),
}

impl Source {
    pub(crate) fn closure<F, Fut>(f: F) -> Self
    where
        F: Fn(Option<RefreshToken>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<TokenSet, RefreshError>> + Send + 'static,
    {
        Source::Closure(Arc::new(move |rt| Box::pin(f(rt))))
    }

    pub(crate) fn requires_refresh_token(&self) -> Option<bool> {
        match self {
            Source::Protocol(p) => Some(p.requires_refresh_token()),
            Source::Closure(_) => None,
        }
    }

    pub(crate) async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: Option<RefreshToken>,
        allow_insecure_http: bool,
    ) -> RefreshOutcome {
        match self {
            Source::Closure(f) => match f(refresh_token).await {
                Ok(tokens) => RefreshOutcome::Success(tokens),
                Err(e) => RefreshOutcome::Failed(e),
            },
            Source::Protocol(p) => {
                over_http(p.as_ref(), http, refresh_token, allow_insecure_http).await
            }
        }
    }
}

async fn over_http(
    protocol: &dyn RefreshProtocol,
    http: &reqwest::Client,
    refresh_token: Option<RefreshToken>,
    allow_insecure_http: bool,
) -> RefreshOutcome {
    let request = match prepare_request(protocol, refresh_token.as_ref(), allow_insecure_http) {
        Ok(r) => r,
        Err(e) => return RefreshOutcome::Failed(e),
    };
    let request = match reqwest::Request::try_from(request) {
        Ok(r) => r,
        Err(_) => {
            return RefreshOutcome::Failed(
                RefreshError::permanent(RefreshErrorKind::Other)
                    .with_detail("the refresh request is not a valid reqwest request"),
            )
        }
    };
    let mut response = match http.execute(request).await {
        Ok(r) => r,
        Err(e) => return RefreshOutcome::Failed(network_error(&e)),
    };
    let status = response.status();
    // Never followed (the token client's policy is forced to none): a redirect is a
    // misconfigured endpoint, and its body is not a token response.
    if let Some(e) = redirected(status, response.headers()) {
        return RefreshOutcome::Failed(e);
    }
    let headers = response.headers().clone();
    let limit = protocol.max_response_bytes();
    // Read at most limit + 1 bytes: enough for the parser to tell "too large".
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = (limit + 1).saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() > limit {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return RefreshOutcome::Failed(network_error(&e)),
        }
    }
    protocol.parse_response(status, &headers, &body, SystemTime::now())
}

fn network_error(e: &reqwest::Error) -> RefreshError {
    // reqwest's message can name the URL; the kind is enough and never holds secrets.
    let (kind, detail) = if e.is_timeout() {
        (RefreshErrorKind::Timeout, "the token endpoint timed out")
    } else if e.is_connect() {
        (
            RefreshErrorKind::Network,
            "could not connect to the token endpoint",
        )
    } else if e.is_body() || e.is_decode() {
        (
            RefreshErrorKind::Network,
            "the token response body was cut off",
        )
    } else {
        (RefreshErrorKind::Network, "the token request failed")
    };
    RefreshError::transient(kind).with_detail(detail)
}
