//! Client authentication at the token endpoint (RFC 6749 section 2.3).

use base64::Engine as _;
use http::HeaderValue;
use std::fmt;

/// A client secret (RFC 6749 section 2.3.1). Never printed by `Debug`; it has no
/// `Display`.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret. Any text is accepted: it is always form-encoded before sending.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret text. Handle with care: never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// How the client proves its identity to the token endpoint. The names follow the
/// OpenID Connect registry (`client_secret_basic`, `client_secret_post`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// No secret: a public client (RFC 6749 section 2.1), or one that authenticates
    /// outside the request body, e.g. with a TLS client certificate (RFC 8705). A
    /// `client_id`, if any, goes in the body.
    None,
    /// HTTP Basic with the form-encoded id and secret (section 2.3.1).
    SecretBasic,
    /// `client_id` and `client_secret` in the form body (section 2.3.1, "NOT
    /// RECOMMENDED" but widely required).
    SecretPost,
}

/// Client authentication: a [`ClientAuthMethod`] and the credentials it needs.
///
/// ```
/// use reauth_core::oauth2::{ClientAuth, ClientSecret};
///
/// let auth = ClientAuth::secret_basic("s6BhdRkqt3", ClientSecret::new("7Fjfp0ZBr1KtDRbnfVdmIw"));
/// assert!(!format!("{auth:?}").contains("7Fjfp0ZBr1KtDRbnfVdmIw"));
/// ```
#[derive(Clone)]
pub struct ClientAuth {
    method: ClientAuthMethod,
    client_id: Option<String>,
    secret: Option<ClientSecret>,
}

impl ClientAuth {
    /// No client authentication and no `client_id`.
    pub fn none() -> Self {
        Self {
            method: ClientAuthMethod::None,
            client_id: None,
            secret: None,
        }
    }

    /// A client without a secret that names itself with `client_id` in the body.
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            method: ClientAuthMethod::None,
            client_id: Some(client_id.into()),
            secret: None,
        }
    }

    /// HTTP Basic authentication (`client_secret_basic`).
    pub fn secret_basic(client_id: impl Into<String>, secret: ClientSecret) -> Self {
        Self {
            method: ClientAuthMethod::SecretBasic,
            client_id: Some(client_id.into()),
            secret: Some(secret),
        }
    }

    /// Credentials in the form body (`client_secret_post`).
    pub fn secret_post(client_id: impl Into<String>, secret: ClientSecret) -> Self {
        Self {
            method: ClientAuthMethod::SecretPost,
            client_id: Some(client_id.into()),
            secret: Some(secret),
        }
    }

    /// The method.
    pub fn method(&self) -> ClientAuthMethod {
        self.method
    }

    /// The client identifier, if any.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The `Authorization` header value for Basic authentication, marked sensitive; `None`
    /// for the other methods. Per section 2.3.1 the id and the secret are each
    /// form-encoded *before* base64, so a `:` in the id cannot split it.
    pub(crate) fn basic_header(&self) -> Option<HeaderValue> {
        if self.method != ClientAuthMethod::SecretBasic {
            return None;
        }
        let id = form(self.client_id.as_deref().unwrap_or(""));
        let secret = form(self.secret.as_ref().map_or("", ClientSecret::secret));
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        // Base64 output is visible ASCII, always a valid header value.
        let mut value = HeaderValue::try_from(format!("Basic {encoded}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The form fields this method adds to the body.
    pub(crate) fn body_fields(&self) -> Vec<(&'static str, &str)> {
        let mut fields = Vec::new();
        match self.method {
            ClientAuthMethod::SecretBasic => {}
            ClientAuthMethod::None | ClientAuthMethod::SecretPost => {
                if let Some(id) = &self.client_id {
                    fields.push(("client_id", id.as_str()));
                }
                if let Some(secret) = &self.secret {
                    fields.push(("client_secret", secret.secret()));
                }
            }
        }
        fields
    }
}

fn form(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ClientAuth");
        s.field("method", &self.method)
            .field("client_id", &self.client_id);
        if self.secret.is_some() {
            s.field("client_secret", &"<redacted>");
        }
        s.finish()
    }
}
