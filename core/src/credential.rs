//! Credentials handed out by the session, and the attempts that carry them.

use crate::ids::Generation;
use crate::token::AccessToken;
use http::HeaderValue;
use std::fmt;

/// A prepared `Authorization` header value (`Bearer …`, marked sensitive) and the token
/// generation it belongs to. Cloning is cheap (a reference count).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    header: HeaderValue,
    generation: Generation,
}

impl Credential {
    pub(crate) fn new(token: &AccessToken, generation: Generation) -> Self {
        let mut text = Vec::with_capacity(7 + token.secret().len());
        text.extend_from_slice(b"Bearer ");
        text.extend_from_slice(token.secret().as_bytes());
        // AccessToken guarantees visible ASCII, which is always a valid header value.
        let mut header = HeaderValue::from_bytes(&text)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        header.set_sensitive(true);
        Self { header, generation }
    }

    /// The `Authorization` header value. Its `Debug` shows `Sensitive`, not the token.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// The token generation this credential belongs to.
    pub fn generation(&self) -> Generation {
        self.generation
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({:?}, <redacted>)", self.generation)
    }
}

/// One try of a request: the credential to send and whether this is already the replay
/// after a 401. Hand it back to [`Session::handle_response`](crate::Session::handle_response)
/// with the response status and headers.
#[derive(Clone, PartialEq, Eq)]
pub struct Attempt {
    credential: Credential,
    replay: bool,
}

impl Attempt {
    pub(crate) fn new(credential: Credential, replay: bool) -> Self {
        Self { credential, replay }
    }

    /// The credential to attach.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Shortcut for `credential().header_value()`.
    pub fn header_value(&self) -> &HeaderValue {
        self.credential.header_value()
    }

    /// The token generation the credential belongs to.
    pub fn generation(&self) -> Generation {
        self.credential.generation
    }

    /// True if this try replays a request that already got a 401. A replay that gets 401
    /// again fails with [`Error::Unauthorized`](crate::Error::Unauthorized).
    pub fn is_replay(&self) -> bool {
        self.replay
    }
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("generation", &self.credential.generation)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}
