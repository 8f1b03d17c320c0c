//! The token endpoint and the grant requests sent to it (RFC 6749 sections 4.4 and 6).

use super::{ClientAuth, ClientAuthMethod};
use crate::origin::{Origin, OriginError};
use crate::token::RefreshToken;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use std::fmt;

/// Form parameters the codec writes itself, or that have their own setting: an extra
/// parameter by one of these names would be sent twice, or fight the setting.
const RESERVED_PARAMS: [&str; 9] = [
    "grant_type",
    "refresh_token",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "resource",
    "audience",
];

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
    /// [`TokenEndpoint::with_param`] named a parameter the codec writes itself or that has
    /// its own setting (`grant_type`, `refresh_token`, `client_id`, `client_secret`,
    /// `client_assertion`, `client_assertion_type`, `scope`, `resource`, `audience`; any
    /// case), or an empty name.
    #[error(
        "the token-request parameter `{name}` is not an extra parameter: the grant and \
         ClientAuth write their own, and scope, resource and audience have their own setting"
    )]
    ReservedParameter {
        /// The name as given.
        name: String,
    },
    /// [`TokenEndpoint::with_header`] named a header the codec or the HTTP client writes:
    /// `Content-Type`, `Accept`, `Content-Length`, `Transfer-Encoding`, `Host`, and
    /// `Authorization` when the client authenticates with HTTP Basic.
    #[error("the header `{name}` is written by the token request itself; refusing a second one")]
    ReservedHeader {
        /// The header's name.
        name: HeaderName,
    },
    /// [`TokenEndpoint::with_resource`] was given something other than an absolute URI
    /// without a fragment (RFC 8707 section 2).
    #[error(
        "a resource indicator must be an absolute URI without a fragment (RFC 8707 section 2)"
    )]
    InvalidResource,
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
/// authenticates, the scope to ask for, and whatever else the server wants in every grant
/// request (RFC 8707 resource indicators, an Auth0-style `audience`, extra form parameters
/// and headers).
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
///
/// `Debug` shows the names of extra parameters and headers, never their values (an API
/// key in a header is as secret as the client secret).
#[derive(Clone)]
pub struct TokenEndpoint {
    uri: Uri,
    auth: ClientAuth,
    scope: Option<String>,
    resources: Vec<String>,
    audience: Option<String>,
    params: Vec<(String, String)>,
    headers: HeaderMap,
}

impl TokenEndpoint {
    /// A token endpoint at `uri`, which must be `https`, or `http` on a loopback host.
    pub fn new(uri: Uri, auth: ClientAuth) -> Result<Self, EndpointError> {
        check_endpoint_uri(&uri, false)?;
        Ok(Self::unchecked(uri, auth))
    }

    /// Like [`TokenEndpoint::new`], but also accepts plain `http` to any host. Only for
    /// networks where something else protects the traffic; secrets travel in clear text.
    pub fn new_insecure(uri: Uri, auth: ClientAuth) -> Result<Self, EndpointError> {
        check_endpoint_uri(&uri, true)?;
        Ok(Self::unchecked(uri, auth))
    }

    fn unchecked(uri: Uri, auth: ClientAuth) -> Self {
        Self {
            uri,
            auth,
            scope: None,
            resources: Vec::new(),
            audience: None,
            params: Vec::new(),
            headers: HeaderMap::new(),
        }
    }

    /// Asks for `scope` (space-separated, RFC 6749 section 3.3) in every grant request.
    /// On a refresh it must not exceed the originally granted scope (section 6).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Adds a `resource` parameter (RFC 8707 resource indicator) to every grant request:
    /// the API the token is for. Call it again for more resources; each is sent, in order.
    /// Servers that issue a token only for a named resource server (node `oidc-provider`
    /// with resource indicators enabled, among others) otherwise issue one the API
    /// refuses. The value must be an absolute URI without a fragment.
    ///
    /// ```
    /// use reauth_core::oauth2::{ClientAuth, ClientSecret, EndpointError, TokenEndpoint};
    ///
    /// let endpoint = TokenEndpoint::new(
    ///     "https://auth.example.com/token".parse()?,
    ///     ClientAuth::secret_basic("service-a", ClientSecret::new("s3cr3t")),
    /// )?
    /// .with_resource("https://api.example.com/")?
    /// .with_resource("urn:example:billing")?;
    /// assert_eq!(
    ///     endpoint.client_credentials_request().body(),
    ///     b"grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F\
    ///       &resource=urn%3Aexample%3Abilling"
    /// );
    /// assert_eq!(endpoint.clone().with_resource("/relative").unwrap_err(), EndpointError::InvalidResource);
    /// assert_eq!(endpoint.with_resource("https://api.example.com/#top").unwrap_err(), EndpointError::InvalidResource);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_resource(mut self, resource: impl Into<String>) -> Result<Self, EndpointError> {
        let resource = resource.into();
        if !is_resource_indicator(&resource) {
            return Err(EndpointError::InvalidResource);
        }
        self.resources.push(resource);
        Ok(self)
    }

    /// Sends `audience` in every grant request, as Auth0 (and servers modelled on it)
    /// require to issue an access token for an API rather than an opaque one for their
    /// own user-info endpoint. A second call replaces the first.
    ///
    /// ```
    /// use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
    ///
    /// let endpoint = TokenEndpoint::new(
    ///     "https://tenant.auth0.example/oauth/token".parse()?,
    ///     ClientAuth::secret_post("service-a", ClientSecret::new("s3cr3t")),
    /// )?
    /// .with_audience("https://api.example.com");
    /// assert_eq!(
    ///     endpoint.client_credentials_request().body(),
    ///     b"grant_type=client_credentials&audience=https%3A%2F%2Fapi.example.com\
    ///       &client_id=service-a&client_secret=s3cr3t"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Adds a form parameter to every grant request, after the standard ones, for servers
    /// that want more than RFC 6749 defines. Repeating a name sends it repeatedly. The
    /// value may be a secret: it is form-encoded like the rest and never shown by `Debug`.
    ///
    /// Names the grant or [`ClientAuth`] write (`grant_type`, `refresh_token`,
    /// `client_id`, `client_secret`, `client_assertion`, `client_assertion_type`) and the
    /// ones with their own setting (`scope`, `resource`, `audience`) are refused in any
    /// case, as is an empty name: [`EndpointError::ReservedParameter`].
    ///
    /// ```
    /// use reauth_core::oauth2::{ClientAuth, EndpointError, TokenEndpoint};
    /// use reauth_core::RefreshToken;
    ///
    /// let endpoint = TokenEndpoint::new("https://auth.example.com/token".parse()?, ClientAuth::public("app"))?
    ///     .with_param("tenant", "acme & co")?;
    /// assert_eq!(
    ///     endpoint.refresh_token_request(&RefreshToken::new("r1")?).body(),
    ///     b"grant_type=refresh_token&refresh_token=r1&tenant=acme+%26+co&client_id=app"
    /// );
    /// assert!(matches!(
    ///     endpoint.with_param("Client_Secret", "x"),
    ///     Err(EndpointError::ReservedParameter { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, EndpointError> {
        let name = name.into();
        if name.is_empty()
            || RESERVED_PARAMS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&name))
        {
            return Err(EndpointError::ReservedParameter { name });
        }
        self.params.push((name, value.into()));
        Ok(self)
    }

    /// Adds a header to every grant request (an API gateway's key, a tenant header).
    /// Repeating a name sends each value. Values are marked
    /// [sensitive](HeaderValue::set_sensitive) and never shown by `Debug`.
    ///
    /// Headers the request writes itself are refused
    /// ([`EndpointError::ReservedHeader`]): `Content-Type`, `Accept`, `Content-Length`,
    /// `Transfer-Encoding`, `Host`, and `Authorization` when the client authenticates
    /// with HTTP Basic.
    ///
    /// ```
    /// use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
    /// use reauth_core::oauth2::{ClientAuth, ClientSecret, EndpointError, TokenEndpoint};
    ///
    /// let endpoint = TokenEndpoint::new(
    ///     "https://auth.example.com/token".parse()?,
    ///     ClientAuth::secret_basic("service-a", ClientSecret::new("s3cr3t")),
    /// )?
    /// .with_header(HeaderName::from_static("x-api-key"), HeaderValue::from_static("k-123"))?;
    /// let request = endpoint.client_credentials_request();
    /// assert_eq!(request.headers()["x-api-key"], "k-123");
    /// assert!(request.headers()["x-api-key"].is_sensitive());
    /// assert!(!format!("{endpoint:?}").contains("k-123"));
    /// assert_eq!(
    ///     endpoint.with_header(AUTHORIZATION, HeaderValue::from_static("Bearer x")).unwrap_err(),
    ///     EndpointError::ReservedHeader { name: AUTHORIZATION }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_header(
        mut self,
        name: HeaderName,
        mut value: HeaderValue,
    ) -> Result<Self, EndpointError> {
        let basic = self.auth.method() == ClientAuthMethod::SecretBasic;
        let reserved = [
            CONTENT_TYPE,
            ACCEPT,
            CONTENT_LENGTH,
            TRANSFER_ENCODING,
            HOST,
        ];
        if reserved.contains(&name) || (basic && name == AUTHORIZATION) {
            return Err(EndpointError::ReservedHeader { name });
        }
        value.set_sensitive(true);
        self.headers.append(name, value);
        Ok(self)
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

    /// The resource indicators sent, in order.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The audience sent, if any.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
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
        for resource in &self.resources {
            form.append_pair("resource", resource);
        }
        if let Some(audience) = &self.audience {
            form.append_pair("audience", audience);
        }
        form.extend_pairs(&self.params);
        form.extend_pairs(self.auth.body_fields());

        // Built field by field: nothing here can fail, so no builder `Result` to unwrap.
        let mut request = Request::new(form.finish().into_bytes());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
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

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<&str> = self.params.iter().map(|(name, _)| name.as_str()).collect();
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("TokenEndpoint")
            .field("uri", &self.uri)
            .field("auth", &self.auth)
            .field("scope", &self.scope)
            .field("resources", &self.resources)
            .field("audience", &self.audience)
            .field("param_names", &params)
            .field("header_names", &headers)
            .finish()
    }
}

/// RFC 8707 section 2: an absolute URI (RFC 3986 section 4.3: a scheme, then something)
/// without a fragment. Only visible ASCII, as in any URI.
fn is_resource_indicator(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}
