//! The token transport and a refresh protocol's call over it (the rest of the refresh
//! source is `reauth_drive::tokio::Source`).

use bytes::Bytes;
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use reauth_core::protocol::{prepare_request, redirected};
use reauth_core::{RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken};
use reauth_drive::tokio::read_limited;
use std::time::SystemTime;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceExt};

/// The transport to the token endpoint, type-erased.
pub(crate) type TokenService = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<UnsyncBoxBody<Bytes, BoxError>>,
    BoxError,
>;

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

/// One refresh with `protocol` over the token transport.
pub(crate) async fn over_http(
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
    let (parts, body) = response.into_parts();
    let limit = protocol.max_response_bytes();
    let Ok(read) = read_limited(body, limit).await else {
        return RefreshOutcome::Failed(network("the token response body was cut off"));
    };
    protocol.parse_response(status, &parts.headers, &read, SystemTime::now())
}

fn network(detail: &'static str) -> RefreshError {
    RefreshError::transient(RefreshErrorKind::Network).with_detail(detail)
}
