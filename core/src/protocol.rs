//! Refresh protocols: how to ask for new tokens and how to read the answer, without I/O.
//!
//! An adapter holds an `Arc<dyn RefreshProtocol>`. On
//! [`Command::StartRefresh`](crate::Command::StartRefresh) it calls
//! [`RefreshProtocol::build_request`], sends the request, reads at most
//! [`RefreshProtocol::max_response_bytes`]` + 1` bytes of the body, and reports
//! [`RefreshProtocol::parse_response`]'s outcome to the session. A network failure is
//! reported as `RefreshError::transient(RefreshErrorKind::Network)`.
//!
//! Implemented here: [`OAuth2Grant`] (RFC 6749 `refresh_token` and `client_credentials`)
//! and [`JsonRefreshProtocol`] (a `POST {"refreshToken": …}` API).

mod json;

pub use json::JsonRefreshProtocol;

use crate::command::RefreshOutcome;
use crate::error::{RefreshError, RefreshErrorKind};
use crate::oauth2::{parse_token_response, TokenEndpoint, MAX_TOKEN_RESPONSE_BYTES};
use crate::origin::Origin;
use crate::token::RefreshToken;
use http::{HeaderMap, Request, StatusCode, Uri};
use std::time::SystemTime;

/// A way to obtain fresh tokens over HTTP, as pure functions: the adapter does the I/O.
///
/// Implementations must not panic on any response, must treat only a definitive
/// rejection of the credentials as permanent (a permanent failure logs the user out and
/// deletes the stored tokens), and must never put token text in errors.
///
/// ```
/// use http::{HeaderMap, Request, StatusCode};
/// use reauth_core::{RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken};
/// use std::time::SystemTime;
///
/// /// A made-up API: `POST /renew` with the refresh token as the body, the access token back.
/// struct Renew;
///
/// impl RefreshProtocol for Renew {
///     fn build_request(&self, refresh_token: Option<&RefreshToken>)
///         -> Result<Request<Vec<u8>>, RefreshError> {
///         let token = refresh_token.ok_or_else(|| RefreshError::permanent(RefreshErrorKind::Other))?;
///         Request::post("https://api.example.com/renew")
///             .body(token.secret().as_bytes().to_vec())
///             .map_err(|_| RefreshError::permanent(RefreshErrorKind::Other))
///     }
///
///     fn parse_response(&self, status: StatusCode, _: &HeaderMap, body: &[u8], _: SystemTime)
///         -> RefreshOutcome {
///         let token = std::str::from_utf8(body).ok()
///             .and_then(|text| reauth_core::AccessToken::new(text).ok());
///         match (status.as_u16(), token) {
///             (200, Some(token)) => RefreshOutcome::Success(reauth_core::TokenSet::new(token)),
///             (401, _) => RefreshOutcome::Failed(RefreshError::permanent(
///                 RefreshErrorKind::Status { status: 401 },
///             )),
///             _ => RefreshOutcome::Failed(RefreshError::transient(RefreshErrorKind::Malformed)),
///         }
///     }
/// }
///
/// let request = Renew.build_request(Some(&RefreshToken::new("r1")?))?;
/// assert_eq!(request.body(), b"r1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RefreshProtocol: Send + Sync {
    /// The request that exchanges `refresh_token` for new tokens. `refresh_token` is
    /// `None` when the session holds none (e.g. client credentials). The body may hold
    /// secrets: never `Debug`-print the request.
    fn build_request(
        &self,
        refresh_token: Option<&RefreshToken>,
    ) -> Result<Request<Vec<u8>>, RefreshError>;

    /// Turns the response into an outcome. `body` holds at most
    /// `max_response_bytes() + 1` bytes; `now` is the caller's wall clock, for HTTP-date
    /// `Retry-After` values.
    fn parse_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> RefreshOutcome;

    /// The largest response body this protocol parses. Default:
    /// [`MAX_TOKEN_RESPONSE_BYTES`].
    fn max_response_bytes(&self) -> usize {
        MAX_TOKEN_RESPONSE_BYTES
    }

    /// True if [`build_request`](Self::build_request) needs a refresh token; mirrors
    /// [`Config::requires_refresh_token`](crate::Config::requires_refresh_token).
    /// Default: true.
    fn requires_refresh_token(&self) -> bool {
        true
    }
}

/// The OAuth2 grant used to refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantKind {
    /// `grant_type=refresh_token` (RFC 6749 section 6).
    RefreshToken,
    /// `grant_type=client_credentials` (RFC 6749 section 4.4): needs no refresh token.
    ClientCredentials,
}

/// An RFC 6749 token endpoint used as a [`RefreshProtocol`]. Everything the endpoint
/// carries goes on both grants: its scope, RFC 8707 resource indicators, an audience, extra
/// form parameters and headers (see [`TokenEndpoint`]).
///
/// ```
/// use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
/// use reauth_core::protocol::OAuth2Grant;
/// use reauth_core::RefreshProtocol;
/// use std::sync::Arc;
///
/// let endpoint = TokenEndpoint::new(
///     "https://auth.example.com/token".parse()?,
///     ClientAuth::secret_basic("service-a", ClientSecret::new("s3cr3t")),
/// )?;
/// let protocol: Arc<dyn RefreshProtocol> = Arc::new(OAuth2Grant::client_credentials(endpoint));
/// assert!(!protocol.requires_refresh_token());
/// assert_eq!(protocol.build_request(None)?.body(), b"grant_type=client_credentials");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct OAuth2Grant {
    endpoint: TokenEndpoint,
    kind: GrantKind,
}

impl OAuth2Grant {
    /// Refreshes with the `refresh_token` grant.
    pub fn refresh_token(endpoint: TokenEndpoint) -> Self {
        Self {
            endpoint,
            kind: GrantKind::RefreshToken,
        }
    }

    /// Acquires tokens with the `client_credentials` grant.
    pub fn client_credentials(endpoint: TokenEndpoint) -> Self {
        Self {
            endpoint,
            kind: GrantKind::ClientCredentials,
        }
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// The grant.
    pub fn kind(&self) -> GrantKind {
        self.kind
    }
}

impl RefreshProtocol for OAuth2Grant {
    /// For the `refresh_token` grant, a missing refresh token is a permanent
    /// [`RefreshErrorKind::Other`] error (the session cannot refresh without one). The
    /// `client_credentials` grant ignores the refresh token.
    fn build_request(
        &self,
        refresh_token: Option<&RefreshToken>,
    ) -> Result<Request<Vec<u8>>, RefreshError> {
        match self.kind {
            GrantKind::RefreshToken => refresh_token
                .map(|t| self.endpoint.refresh_token_request(t))
                .ok_or_else(missing_refresh_token),
            GrantKind::ClientCredentials => Ok(self.endpoint.client_credentials_request()),
        }
    }

    /// See [`parse_token_response`].
    fn parse_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> RefreshOutcome {
        parse_token_response(status, headers, body, now)
    }

    fn requires_refresh_token(&self) -> bool {
        self.kind == GrantKind::RefreshToken
    }
}

/// Checks where a refresh request may go before an adapter sends it: refresh tokens
/// travel over TLS, except to a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`) or when
/// the application explicitly allowed plain `http://` (`allow_insecure_http`).
///
/// The refusal is a permanent [`RefreshErrorKind::Other`] error: retrying cannot make the
/// endpoint secure, so the session logs out instead of leaking the token on every retry.
///
/// ```
/// use reauth_core::protocol::check_transport;
///
/// assert!(check_transport(&"https://auth.example.com/token".parse()?, false).is_ok());
/// assert!(check_transport(&"http://127.0.0.1:8080/token".parse()?, false).is_ok());
/// let refused = check_transport(&"http://auth.example.com/token".parse()?, false).unwrap_err();
/// assert!(refused.is_permanent());
/// assert!(check_transport(&"http://auth.example.com/token".parse()?, true).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_transport(uri: &Uri, allow_insecure_http: bool) -> Result<(), RefreshError> {
    let insecure = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http"));
    let loopback = Origin::from_uri(uri).is_ok_and(|o| o.is_loopback());
    if insecure && !loopback && !allow_insecure_http {
        return Err(
            RefreshError::permanent(RefreshErrorKind::Other).with_detail(
                "refusing to send a refresh token over plain http to a non-loopback host \
                 (use https, or allow_insecure_http(true))",
            ),
        );
    }
    Ok(())
}

pub(crate) fn missing_refresh_token() -> RefreshError {
    RefreshError::permanent(RefreshErrorKind::Other)
        .with_detail("the session holds no refresh token to refresh with")
}

/// The refresh request an adapter should send: `protocol`'s request for `refresh_token`,
/// refused (permanently) if it would carry the token over plain `http` to a non-loopback
/// host, see [`check_transport`]. The one place both adapters build it.
pub fn prepare_request(
    protocol: &dyn RefreshProtocol,
    refresh_token: Option<&RefreshToken>,
    allow_insecure_http: bool,
) -> Result<Request<Vec<u8>>, RefreshError> {
    let request = protocol.build_request(refresh_token)?;
    check_transport(request.uri(), allow_insecure_http)?;
    Ok(request)
}

/// The answer to a refresh request that got a redirect (any 3xx), or `None` for any other
/// status. Adapters call it before [`RefreshProtocol::parse_response`] and send nothing
/// on: the request carries the refresh token and the client's credentials, and following
/// a `Location` would hand them to whatever it names. The error is a
/// [configuration](RefreshError::is_configuration) error naming the `Location` without
/// its query (see [`RefreshErrorKind::Redirected`]).
///
/// ```
/// use http::{header::LOCATION, HeaderMap, StatusCode};
/// use reauth_core::protocol::redirected;
/// use reauth_core::RefreshErrorKind;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(LOCATION, "https://evil.example/steal?refresh_token=rt".parse()?);
/// let e = redirected(StatusCode::TEMPORARY_REDIRECT, &headers).unwrap();
/// assert!(e.is_configuration() && !e.is_permanent());
/// assert_eq!(e.kind(), &RefreshErrorKind::Redirected { location: "https://evil.example/steal".into() });
/// assert!(redirected(StatusCode::OK, &headers).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn redirected(status: StatusCode, headers: &HeaderMap) -> Option<RefreshError> {
    if !status.is_redirection() {
        return None;
    }
    let location = headers.get(http::header::LOCATION).map_or_else(
        || "(none)".to_owned(),
        |v| crate::redact::location(v.as_bytes()),
    );
    Some(
        RefreshError::configuration(RefreshErrorKind::Redirected { location })
            .with_detail(format!("HTTP {}", status.as_u16())),
    )
}
