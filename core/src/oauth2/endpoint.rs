//! The token endpoint and the grant requests sent to it (RFC 6749 sections 4.4 and 6).

use super::ClientAuth;
use crate::origin::{Origin, OriginError};
use crate::token::RefreshToken;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Uri};

/// A URI that may not be used as a token endpoint (or other refresh endpoint).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not an absolute `http`/`https` URI.
    #[error("invalid endpoint URI: {0}")]
    Origin(#[from] OriginError),
    /// Plain `http://` to a host that is not loopback: the refresh token and client secret
    /// would cross the network in clear text (RFC 6749 section 3.2 requires TLS).
    #[error(
        "refusing plain http:// for a non-loopback endpoint (RFC 6749 3.2 requires TLS); \
         use https, or the explicit `new_insecure` constructor"
    )]
    InsecureHttp,
    /// The URI carries `user:password@`: credentials in a URI leak into logs and `Debug`.
    #[error("the endpoint URI must not carry user info; use ClientAuth for credentials")]
    UserInfo,
}

/// Checks an endpoint URI; `allow_http` lifts the TLS requirement.
pub(crate) fn check_endpoint_uri(uri: &Uri, allow_http: bool) -> Result<(), EndpointError> {
    let origin = Origin::from_uri(uri)?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(EndpointError::UserInfo);
    }
    if !origin.is_secure() && !origin.is_loopback() && !allow_http {
        return Err(EndpointError::InsecureHttp);
    }
    Ok(())
}

/// An OAuth2 token endpoint (RFC 6749 section 3.2): its URI, how the client
/// authenticates, and the scope to ask for.
///
/// ```
/// use reauth_core::oauth2::{ClientAuth, EndpointError, TokenEndpoint};
///
/// let auth = ClientAuth::public("my-app");
/// assert!(TokenEndpoint::new("https://auth.example.com/token".parse()?, auth.clone()).is_ok());
/// // Loopback is fine over http (development, tests)...
/// assert!(TokenEndpoint::new("http://127.0.0.1:8080/token".parse()?, auth.clone()).is_ok());
/// // ...anything else needs https, or an explicit opt-in.
/// let plain: http::Uri = "http://auth.example.com/token".parse()?;
/// assert_eq!(
///     TokenEndpoint::new(plain.clone(), auth.clone()).unwrap_err(),
///     EndpointError::InsecureHttp
/// );
/// assert!(TokenEndpoint::new_insecure(plain, auth).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    uri: Uri,
    auth: ClientAuth,
    scope: Option<String>,
}

impl TokenEndpoint {
    /// A token endpoint at `uri`, which must be `https`, or `http` on a loopback host.
    pub fn new(uri: Uri, auth: ClientAuth) -> Result<Self, EndpointError> {
        check_endpoint_uri(&uri, false)?;
        Ok(Self {
            uri,
            auth,
            scope: None,
        })
    }

    /// Like [`TokenEndpoint::new`], but also accepts plain `http` to any host. Only for
    /// networks where something else protects the traffic; secrets travel in clear text.
    pub fn new_insecure(uri: Uri, auth: ClientAuth) -> Result<Self, EndpointError> {
        check_endpoint_uri(&uri, true)?;
        Ok(Self {
            uri,
            auth,
            scope: None,
        })
    }

    /// Asks for `scope` (space-separated, RFC 6749 section 3.3) in every grant request.
    /// On a refresh it must not exceed the originally granted scope (section 6).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The endpoint URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The client authentication.
    pub fn auth(&self) -> &ClientAuth {
        &self.auth
    }

    /// The scope asked for, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The `refresh_token` grant request (RFC 6749 section 6).
    ///
    /// The body holds the refresh token (and the client secret with
    /// [`ClientAuth::secret_post`]): never `Debug`-print the returned request.
    ///
    /// ```
    /// use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
    /// use reauth_core::RefreshToken;
    ///
    /// let endpoint = TokenEndpoint::new(
    ///     "https://server.example.com/token".parse()?,
    ///     ClientAuth::secret_basic("s6BhdRkqt3", ClientSecret::new("7Fjfp0ZBr1KtDRbnfVdmIw")),
    /// )?;
    /// let request = endpoint.refresh_token_request(&RefreshToken::new("tGzv3JOkF0XG5Qx2TlKWIA")?);
    /// assert_eq!(request.method(), http::Method::POST);
    /// assert_eq!(request.headers()["content-type"], "application/x-www-form-urlencoded");
    /// assert_eq!(
    ///     request.headers()["authorization"],
    ///     "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"
    /// );
    /// assert!(request.headers()["authorization"].is_sensitive());
    /// assert_eq!(request.body(), b"grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refresh_token_request(&self, refresh_token: &RefreshToken) -> Request<Vec<u8>> {
        self.grant_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.secret()),
        ])
    }

    /// The `client_credentials` grant request (RFC 6749 section 4.4.2). With
    /// [`ClientAuth::none`]/[`ClientAuth::public`] it is sent as configured, for clients
    /// that authenticate with a TLS certificate (RFC 8705); a server that wants a secret
    /// answers `invalid_client`.
    pub fn client_credentials_request(&self) -> Request<Vec<u8>> {
        self.grant_request(&[("grant_type", "client_credentials")])
    }

    fn grant_request(&self, grant: &[(&str, &str)]) -> Request<Vec<u8>> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(grant);
        if let Some(scope) = &self.scope {
            form.append_pair("scope", scope);
        }
        form.extend_pairs(self.auth.body_fields());

        // Built field by field: nothing here can fail, so no builder `Result` to unwrap.
        let mut request = Request::new(form.finish().into_bytes());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(basic) = self.auth.basic_header() {
            headers.insert(AUTHORIZATION, basic);
        }
        request
    }
}
