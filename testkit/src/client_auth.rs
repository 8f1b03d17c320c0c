//! Client authentication at the token endpoint (RFC 6749 §2.3.1): HTTP Basic with
//! form-urlencoded id and secret, or `client_id` / `client_secret` form fields.

use std::collections::HashMap;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::config::ServerConfig;

/// A parsed `application/x-www-form-urlencoded` body.
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    /// Parses a form body. Parameters must not repeat (RFC 6749 §3.2); a repeat is the
    /// name of the offending parameter.
    pub(crate) fn parse(body: &[u8]) -> Result<Form, String> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(k.into_owned());
            }
        }
        Ok(Form(map))
    }

    /// A parameter's value; an empty value counts as absent (RFC 6749 §3.1).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Why client authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuthError {
    /// 401 `invalid_client`.
    Invalid(&'static str),
    /// 400 `invalid_request`: Basic and `client_secret` in the body at once (§2.3).
    MultipleMethods,
}

/// Checks the client against the configured id and secret.
pub(crate) fn authenticate(
    headers: &HeaderMap,
    form: &Form,
    config: &ServerConfig,
) -> Result<(), ClientAuthError> {
    let basic = basic_credentials(headers)?;
    if basic.is_some() && form.get("client_secret").is_some() {
        return Err(ClientAuthError::MultipleMethods);
    }
    let (id, secret) = match &basic {
        Some((id, secret)) => {
            // A client_id in the body alongside Basic is allowed, but must agree.
            if form.get("client_id").is_some_and(|b| b != id) {
                return Err(ClientAuthError::Invalid("client_id does not match"));
            }
            (
                Some(id.as_str()),
                Some(secret.as_str()).filter(|s| !s.is_empty()),
            )
        }
        None => (form.get("client_id"), form.get("client_secret")),
    };
    if id.is_some_and(|id| id != config.client_id) {
        return Err(ClientAuthError::Invalid("unknown client"));
    }
    match (&config.client_secret, secret) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(ClientAuthError::Invalid("public client sent a secret")),
        (Some(_), _) if id.is_none() => Err(ClientAuthError::Invalid("missing client credentials")),
        (Some(_), None) => Err(ClientAuthError::Invalid("missing client secret")),
        (Some(expected), Some(got)) if expected == got => Ok(()),
        (Some(_), Some(_)) => Err(ClientAuthError::Invalid("wrong client secret")),
    }
}

/// Base64 as clients really send it: padding optional.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `Authorization: Basic ...` decoded to (id, secret); `None` if no Basic header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ClientAuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = ClientAuthError::Invalid("malformed Basic credentials");
    let value = value.to_str().map_err(|_| malformed)?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        // Some other scheme is not client authentication; fall back to the body.
        return Ok(None);
    }
    let decoded = LENIENT_B64.decode(rest.trim()).map_err(|_| malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or(malformed)?;
    Ok(Some((
        form_decode(id).ok_or(malformed)?,
        form_decode(secret).ok_or(malformed)?,
    )))
}

/// Undoes application/x-www-form-urlencoded encoding of one component.
fn form_decode(s: &str) -> Option<String> {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn basic(raw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        h.insert(AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        h
    }

    fn form(s: &str) -> Form {
        Form::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn basic_and_body_variants() {
        let c = ServerConfig::default();
        assert_eq!(
            authenticate(&basic("reauth-test:s3cret"), &form(""), &c),
            Ok(())
        );
        assert_eq!(
            authenticate(
                &HeaderMap::new(),
                &form("client_id=reauth-test&client_secret=s3cret"),
                &c
            ),
            Ok(())
        );
        assert!(authenticate(&basic("reauth-test:nope"), &form(""), &c).is_err());
        assert!(authenticate(&HeaderMap::new(), &form(""), &c).is_err());
        assert_eq!(
            authenticate(
                &basic("reauth-test:s3cret"),
                &form("client_secret=s3cret"),
                &c
            ),
            Err(ClientAuthError::MultipleMethods)
        );
    }

    #[test]
    fn basic_components_are_form_urlencoded() {
        let c = ServerConfig::default().with_client("my app", Some("p@ss:w+rd"));
        assert_eq!(
            authenticate(&basic("my+app:p%40ss%3Aw%2Brd"), &form(""), &c),
            Ok(())
        );
        // Unencoded would be wrong: '+' decodes to a space.
        assert!(authenticate(&basic("my app:p@ss:w+rd"), &form(""), &c).is_err());
    }

    #[test]
    fn garbage_basic_is_invalid_client_not_panic() {
        let c = ServerConfig::default();
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic %%%not-base64"),
        );
        assert!(matches!(
            authenticate(&h, &form(""), &c),
            Err(ClientAuthError::Invalid(_))
        ));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic"));
        assert!(matches!(
            authenticate(&h, &form(""), &c),
            Err(ClientAuthError::Invalid(_))
        ));
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert_eq!(Form::parse(b"a=1&a=2").err(), Some("a".to_owned()));
    }
}
