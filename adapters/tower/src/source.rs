//! Where new tokens come from: an HTTP refresh protocol (OAuth2 or custom) sent through
//! the layer's own token transport, or a closure.
//!
//! `Source` and `RefreshFuture` are a minimal copy of reauth-reqwest's `source.rs` with
//! the HTTP call taken out (marked for reauth-drive: the enum, `closure`,
//! `requires_refresh_token`, and the body-limit loop over `http_body` are the same in
//! both). Only [`over_http`] is this adapter's own.

use bytes::Bytes;
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use reauth_core::protocol::{prepare_request, redirected};
use reauth_core::{
    RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken, TokenSet,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceExt};

/// A boxed future returned by a refresh closure.
pub type RefreshFuture = Pin<Box<dyn Future<Output = Result<TokenSet, RefreshError>> + Send>>;

type RefreshFn = dyn Fn(Option<RefreshToken>) -> RefreshFuture + Send + Sync;

/// The transport to the token endpoint, type-erased.
pub(crate) type TokenService = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<UnsyncBoxBody<Bytes, BoxError>>,
    BoxError,
>;

// Marked for reauth-drive: the same enum as reauth-reqwest's, over another transport.
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
        http: &TokenService,
        refresh_token: Option<RefreshToken>,
        allow_insecure_http: bool,
    ) -> RefreshOutcome {
        match self {
            Source::Closure(f) => match f(refresh_token).await {
                Ok(tokens) => RefreshOutcome::Success(tokens),
                Err(e) => RefreshOutcome::Failed(e),
            },
            Source::Protocol(p) => {
                over_http(p.as_ref(), http.clone(), refresh_token, allow_insecure_http).await
            }
        }
    }
}

/// Boxes any token service: a hyper-util client with TLS, a tower stack, a test double.
pub(crate) fn token_service<S, B>(service: S) -> TokenService
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneSyncService::new(
        service
            .map_err(Into::into)
            .map_response(|r: http::Response<B>| r.map(|b| b.map_err(Into::into).boxed_unsync())),
    )
}

/// The default: hyper-util's client over plain TCP (loopback and `allow_insecure_http`;
/// for TLS hand the builder a client with an HTTPS connector). hyper-util's client never
/// follows redirects.
pub(crate) fn default_token_service() -> TokenService {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    token_service(client)
}

async fn over_http(
    protocol: &dyn RefreshProtocol,
    http: TokenService,
    refresh_token: Option<RefreshToken>,
    allow_insecure_http: bool,
) -> RefreshOutcome {
    let request = match prepare_request(protocol, refresh_token.as_ref(), allow_insecure_http) {
        Ok(r) => r.map(|body| Full::new(Bytes::from(body))),
        Err(e) => return RefreshOutcome::Failed(e),
    };
    let response = match http.oneshot(request).await {
        Ok(r) => r,
        // The transport's message can name the URL; the kind is enough.
        Err(_) => return RefreshOutcome::Failed(network("the token request failed")),
    };
    let status = response.status();
    // Never followed: a redirect is a misconfigured endpoint, and its body is not a token
    // response.
    if let Some(e) = redirected(status, response.headers()) {
        return RefreshOutcome::Failed(e);
    }
    let (parts, mut body) = response.into_parts();
    let limit = protocol.max_response_bytes();
    // Read at most limit + 1 bytes: enough for the parser to tell "too large".
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return RefreshOutcome::Failed(network("the token response body was cut off"));
        };
        if let Ok(chunk) = frame.into_data() {
            let room = (limit + 1).saturating_sub(read.len());
            read.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if read.len() > limit {
                break;
            }
        }
    }
    protocol.parse_response(status, &parts.headers, &read, SystemTime::now())
}

fn network(detail: &'static str) -> RefreshError {
    RefreshError::transient(RefreshErrorKind::Network).with_detail(detail)
}
