//! OAuth 2.0 (RFC 6749) token endpoint codecs: build the `refresh_token` and
//! `client_credentials` grant requests, and turn responses into a
//! [`RefreshOutcome`](crate::RefreshOutcome). Pure functions over `http` types: the
//! caller does the I/O.
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use reauth_core::oauth2::{parse_token_response, ClientAuth, ClientSecret, TokenEndpoint};
//! use reauth_core::{RefreshOutcome, RefreshToken};
//! use std::time::SystemTime;
//!
//! let endpoint = TokenEndpoint::new(
//!     "https://auth.example.com/oauth/token".parse()?,
//!     ClientAuth::secret_post("my-client", ClientSecret::new("my-secret")),
//! )?;
//! let request = endpoint.refresh_token_request(&RefreshToken::new("r-123")?);
//! assert_eq!(
//!     request.body(),
//!     b"grant_type=refresh_token&refresh_token=r-123&client_id=my-client&client_secret=my-secret"
//! );
//!
//! // ... the adapter sends `request` and reads at most MAX_TOKEN_RESPONSE_BYTES + 1 bytes ...
//! let (status, headers) = (StatusCode::OK, HeaderMap::new());
//! let body = br#"{"access_token":"a-456","token_type":"bearer","expires_in":"3600"}"#;
//! match parse_token_response(status, &headers, body, SystemTime::now()) {
//!     RefreshOutcome::Success(set) => assert_eq!(set.access_token().secret(), "a-456"),
//!     RefreshOutcome::Failed(error) => panic!("{error}"),
//!     _ => unreachable!(),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client_auth;
mod endpoint;
mod response;

pub use client_auth::{ClientAuth, ClientAuthMethod, ClientSecret};
pub use endpoint::{EndpointError, TokenEndpoint};
pub use response::{parse_token_response, MAX_TOKEN_RESPONSE_BYTES};

pub(crate) use endpoint::check_endpoint_uri;
pub(crate) use response::{is_transient_status, transient_status};
