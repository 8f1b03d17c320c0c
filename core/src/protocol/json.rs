//! The refresh API of countless mobile tutorials: `POST {"refreshToken": …}` answered by
//! `{"accessToken": …, "refreshToken": …}`.

use super::{missing_refresh_token, RefreshProtocol};
use crate::command::RefreshOutcome;
use crate::error::{RefreshError, RefreshErrorKind};
use crate::json::{lifetime_field, malformed, read_object, string_field};
use crate::oauth2::{
    check_endpoint_uri, is_transient_status, transient_status, EndpointError,
    MAX_TOKEN_RESPONSE_BYTES,
};
use crate::token::{AccessToken, RefreshToken, TokenSet};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use std::time::SystemTime;

/// A JSON refresh endpoint in the common camelCase shape:
///
/// ```text
/// POST <uri>            Content-Type: application/json
/// {"refreshToken": "…"}
///
/// 200 OK
/// {"accessToken": "…", "refreshToken": "…", "expiresIn": 3600}
/// ```
///
/// `refreshToken` (rotation) and `expiresIn` (seconds; number or numeric string) are
/// optional in the answer; `null` counts as absent, other keys are ignored, a repeated
/// key is refused. A 2xx whose body is not such an object is a transient
/// [`RefreshErrorKind::Malformed`] failure. 401 and 403 mean the refresh token is dead
/// (permanent; add statuses with [`with_permanent_status`](Self::with_permanent_status)),
/// every other status is transient and carries `Retry-After`.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use reauth_core::protocol::JsonRefreshProtocol;
/// use reauth_core::{RefreshOutcome, RefreshProtocol, RefreshToken};
/// use std::time::SystemTime;
///
/// let api = JsonRefreshProtocol::new("https://api.example.com/auth/refresh".parse()?)?;
/// let request = api.build_request(Some(&RefreshToken::new("r1")?))?;
/// assert_eq!(request.body(), br#"{"refreshToken":"r1"}"#);
///
/// let body = br#"{"accessToken":"a2","refreshToken":"r2","expiresIn":900}"#;
/// let outcome = api.parse_response(StatusCode::OK, &HeaderMap::new(), body, SystemTime::now());
/// let RefreshOutcome::Success(set) = outcome else { panic!() };
/// assert_eq!(set.refresh_token().unwrap().secret(), "r2");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct JsonRefreshProtocol {
    uri: Uri,
    permanent: Vec<StatusCode>,
}

impl JsonRefreshProtocol {
    /// The endpoint at `uri`: `https`, or `http` on a loopback host.
    pub fn new(uri: Uri) -> Result<Self, EndpointError> {
        check_endpoint_uri(&uri, false)?;
        Ok(Self::unchecked(uri))
    }

    /// Like [`new`](Self::new), but also accepts plain `http` to any host; the refresh
    /// token then travels in clear text.
    pub fn new_insecure(uri: Uri) -> Result<Self, EndpointError> {
        check_endpoint_uri(&uri, true)?;
        Ok(Self::unchecked(uri))
    }

    fn unchecked(uri: Uri) -> Self {
        Self {
            uri,
            permanent: vec![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN],
        }
    }

    /// Also treats `status` as "the refresh token is dead" (e.g. 400 for APIs that answer
    /// an expired refresh token that way). 408, 429 and 5xx stay transient regardless.
    #[must_use]
    pub fn with_permanent_status(mut self, status: StatusCode) -> Self {
        self.permanent.push(status);
        self
    }

    /// The endpoint URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

impl RefreshProtocol for JsonRefreshProtocol {
    fn build_request(
        &self,
        refresh_token: Option<&RefreshToken>,
    ) -> Result<Request<Vec<u8>>, RefreshError> {
        let token = refresh_token.ok_or_else(missing_refresh_token)?;
        let body = serde_json::json!({ "refreshToken": token.secret() }).to_string();
        let mut request = Request::new(body.into_bytes());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(request)
    }

    fn parse_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> RefreshOutcome {
        let result = if status.is_success() {
            parse_tokens(body)
        } else if !is_transient_status(status) && self.permanent.contains(&status) {
            Err(RefreshError::permanent(RefreshErrorKind::Status {
                status: status.as_u16(),
            }))
        } else {
            Err(transient_status(status, headers, now))
        };
        match result {
            Ok(set) => RefreshOutcome::Success(set),
            Err(e) => RefreshOutcome::Failed(e),
        }
    }
}

fn parse_tokens(body: &[u8]) -> Result<TokenSet, RefreshError> {
    const NAMES: [&str; 3] = ["accessToken", "refreshToken", "expiresIn"];
    let [access, refresh, expires_in] =
        read_object(body, MAX_TOKEN_RESPONSE_BYTES, NAMES).map_err(|e| e.into_refresh_error())?;
    let access = string_field(access, "accessToken")?
        .ok_or_else(|| malformed("`accessToken` is missing"))?;
    let access = AccessToken::new(access)
        .map_err(|e| malformed(format!("`accessToken` is invalid: {e}")))?;
    let mut set = TokenSet::new(access);
    if let Some(refresh) = string_field(refresh, "refreshToken")?.filter(|r| !r.is_empty()) {
        let refresh = RefreshToken::new(refresh)
            .map_err(|e| malformed(format!("`refreshToken` is invalid: {e}")))?;
        set = set.with_refresh_token(refresh);
    }
    if let Some(lifetime) = lifetime_field(expires_in, "expiresIn")? {
        set = set.with_expires_in(lifetime);
    }
    Ok(set)
}
