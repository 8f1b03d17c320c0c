//! Origins (scheme, host, port) and the allow-list that decides where a token may go.

use http::Uri;
use std::fmt;

/// A web origin: scheme, host and port. Tokens are attached only to requests whose origin
/// is on the session's allow-list.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    secure: bool,
    host: String,
    port: u16,
    /// `host` or `host:port` as a URI spells it when the port is not the default: the
    /// fast path of `matches` compares a URI's authority against it in one go.
    authority: String,
}

/// A URI that cannot name an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// The text is not a URI.
    #[error("not a valid URI")]
    Invalid,
    /// The URI has no scheme or host (e.g. a relative path).
    #[error("the URI is not absolute (scheme and host are required)")]
    NotAbsolute,
    /// The scheme is neither `http` nor `https`.
    #[error("unsupported scheme `{0}`: only http and https carry bearer tokens")]
    UnsupportedScheme(String),
}

impl Origin {
    /// The origin of an absolute `http` or `https` URI. The host is compared
    /// case-insensitively; a missing port is the scheme's default.
    pub fn from_uri(uri: &Uri) -> Result<Self, OriginError> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(OriginError::NotAbsolute);
        };
        let secure = parse_scheme(scheme)?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(OriginError::NotAbsolute);
        }
        let port = uri.port_u16().unwrap_or(default_port(secure));
        let authority = if port == default_port(secure) {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            secure,
            port,
            host,
            authority,
        })
    }

    /// Parses the origin of a URI given as text, e.g. `https://api.example.com`.
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        let uri: Uri = text.parse().map_err(|_| OriginError::Invalid)?;
        Self::from_uri(&uri)
    }

    /// True if `target` (an `http::Uri`, or an adapter's URL type) belongs to this
    /// origin.
    pub fn matches<T: Target + ?Sized>(&self, target: &T) -> bool {
        let Some(Ok(secure)) = target.scheme().map(parse_scheme) else {
            return false;
        };
        if secure != self.secure {
            return false;
        }
        // Fast path: the authority as written equals ours (the common case, no parsing).
        if target
            .authority()
            .is_some_and(|a| a == self.authority || a.eq_ignore_ascii_case(&self.authority))
        {
            return true;
        }
        let Some(host) = target.host() else {
            return false;
        };
        target.port().unwrap_or(default_port(secure)) == self.port
            && host.trim_end_matches('.').eq_ignore_ascii_case(&self.host)
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    /// The lower-cased host (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True for `https`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// True if the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare == "localhost"
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Where a request goes, as far as origins are concerned. Implemented for `http::Uri`;
/// an adapter implements it for its HTTP client's URL type, so no URL is re-parsed on the
/// fast path.
pub trait Target {
    /// The scheme, e.g. `https`.
    fn scheme(&self) -> Option<&str>;
    /// The host; IPv6 addresses in brackets.
    fn host(&self) -> Option<&str>;
    /// The explicit port; `None` means the scheme's default.
    fn port(&self) -> Option<u16>;
    /// The authority as written (`host[:port]`, maybe with user info), if cheap to get.
    /// Only a shortcut: a mismatch falls back to `host` and `port`.
    fn authority(&self) -> Option<&str> {
        None
    }
}

impl Target for Uri {
    fn scheme(&self) -> Option<&str> {
        self.scheme_str()
    }

    fn host(&self) -> Option<&str> {
        Uri::host(self)
    }

    fn port(&self) -> Option<u16> {
        self.port_u16()
    }

    fn authority(&self) -> Option<&str> {
        Uri::authority(self).map(|a| a.as_str())
    }
}

fn parse_scheme(scheme: &str) -> Result<bool, OriginError> {
    // Exact lower case first: that is how every parsed URL spells it (and this runs on
    // every request).
    match scheme {
        "https" => Ok(true),
        "http" => Ok(false),
        s if s.eq_ignore_ascii_case("https") => Ok(true),
        s if s.eq_ignore_ascii_case("http") => Ok(false),
        _ => Err(OriginError::UnsupportedScheme(scheme.to_owned())),
    }
}

fn default_port(secure: bool) -> u16 {
    if secure {
        443
    } else {
        80
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme(), self.host, self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn same_origin_only() {
        let o = Origin::parse("https://API.example.com").unwrap();
        assert!(o.matches(&uri("https://api.example.com/v1/items?x=1")));
        assert!(o.matches(&uri("https://api.example.com:443/")));
        assert!(o.matches(&uri("HTTPS://api.EXAMPLE.com./")));
        assert!(!o.matches(&uri("http://api.example.com/")));
        assert!(!o.matches(&uri("https://api.example.com:8443/")));
        assert!(!o.matches(&uri("https://api.example.com.evil.net/")));
        assert!(!o.matches(&uri("https://evil.net/api.example.com")));
        assert!(!o.matches(&uri("https://api.example.com@evil.net/")));
        assert!(!o.matches(&uri("/relative")));
        assert!(!o.matches(&uri("ftp://api.example.com/")));
    }

    #[test]
    fn rejects_non_origins() {
        assert_eq!(Origin::parse("/x"), Err(OriginError::NotAbsolute));
        assert!(matches!(
            Origin::parse("ftp://h"),
            Err(OriginError::UnsupportedScheme(_))
        ));
        assert_eq!(Origin::parse("http://[::1"), Err(OriginError::Invalid));
    }

    #[test]
    fn loopback() {
        assert!(Origin::parse("http://127.0.0.1:8080")
            .unwrap()
            .is_loopback());
        assert!(Origin::parse("http://[::1]:8080").unwrap().is_loopback());
        assert!(Origin::parse("http://localhost").unwrap().is_loopback());
        assert!(!Origin::parse("http://example.com").unwrap().is_loopback());
        assert_eq!(
            Origin::parse("http://[::1]:8080").unwrap().to_string(),
            "http://[::1]:8080"
        );
    }
}
