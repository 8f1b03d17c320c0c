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
    /// [`Origin::parse`] was given a URL with a path or query: an origin is only scheme,
    /// host and port, so a token would also go to every other path on that host.
    /// [`Origin::from_uri`] takes the origin of a URL on purpose.
    #[error(
        "`{0}` is not an origin: it has a path or query, and tokens would go to the whole \
         host (give scheme, host and port only, or take a URL's origin with Origin::from_uri)"
    )]
    HasPath(String),
}

/// How a request's origin came close to an allowed origin without matching it: the usual
/// slip when a token is unexpectedly not sent (the request goes out anonymous and gets a
/// 401 that no refresh can fix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NearMiss {
    /// The same host and scheme on another port.
    Port,
    /// The same host over the other scheme (`http` against `https`).
    Scheme,
    /// Another name of the loopback interface (`localhost`, `127.0.0.1`, `[::1]`), on the
    /// same scheme and port.
    LoopbackName,
}

impl fmt::Display for NearMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Port => "the same host on another port",
            Self::Scheme => "the same host over another scheme",
            Self::LoopbackName => "another name of the loopback interface",
        })
    }
}

impl Origin {
    /// The origin of an absolute `http` or `https` URI. The host is compared
    /// case-insensitively; a missing port is the scheme's default.
    /// The path and query of `uri` are not part of its origin and are ignored.
    pub fn from_uri(uri: &Uri) -> Result<Self, OriginError> {
        Self::of(uri)
    }

    /// The origin a request to `target` goes to (see [`from_uri`](Self::from_uri)), for
    /// an adapter's URL type as for `http::Uri`.
    pub fn of<T: Target + ?Sized>(target: &T) -> Result<Self, OriginError> {
        let (Some(scheme), Some(host)) = (target.scheme(), target.host()) else {
            return Err(OriginError::NotAbsolute);
        };
        let secure = parse_scheme(scheme)?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(OriginError::NotAbsolute);
        }
        let port = target.port().unwrap_or(default_port(secure));
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

    /// Parses an origin given as text, e.g. `https://api.example.com` or
    /// `http://127.0.0.1:8080/` (a lone `/` is allowed). Text with a path or query, such
    /// as `https://api.example.com/v1`, is refused with [`OriginError::HasPath`] rather
    /// than silently cut down to its host: an allow-list entry covers every path of its
    /// origin, which the text would not suggest. Use [`from_uri`](Self::from_uri) to take
    /// the origin of a URL.
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        let uri: Uri = text.parse().map_err(|_| OriginError::Invalid)?;
        let origin = Self::from_uri(&uri)?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(OriginError::HasPath(text.to_owned()));
        }
        Ok(origin)
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

    /// How `target`, which this origin does not match, nearly matches it: the same host on
    /// another port or scheme, or another loopback name (`localhost` for `127.0.0.1`).
    /// `None` for a match or an unrelated origin. A pure decision, for a driver to log.
    pub fn near_miss<T: Target + ?Sized>(&self, target: &T) -> Option<NearMiss> {
        if self.matches(target) {
            return None;
        }
        let secure = parse_scheme(target.scheme()?).ok()?;
        let host = target.host()?.trim_end_matches('.');
        let port = target.port().unwrap_or(default_port(secure));
        let same_host = host.eq_ignore_ascii_case(&self.host);
        let loopback_alias = self.is_loopback() && is_loopback_host(host);
        if !(same_host || loopback_alias) {
            return None;
        }
        Some(if secure != self.secure {
            NearMiss::Scheme
        } else if port != self.port {
            NearMiss::Port
        } else {
            // Same scheme and port, and no match: the host is another loopback name.
            NearMiss::LoopbackName
        })
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
        is_loopback_host(&self.host)
    }
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    fn parse_refuses_paths_instead_of_dropping_them() {
        assert_eq!(
            Origin::parse("https://api.example.com/v1"),
            Err(OriginError::HasPath("https://api.example.com/v1".into()))
        );
        assert!(matches!(
            Origin::parse("https://api.example.com?x=1"),
            Err(OriginError::HasPath(_))
        ));
        let err = Origin::parse("https://api.example.com/v1").unwrap_err();
        assert!(err.to_string().contains("from_uri"), "{err}");
        // A lone slash is how many people write a base URL.
        assert_eq!(
            Origin::parse("http://127.0.0.1:8080/").unwrap().to_string(),
            "http://127.0.0.1:8080"
        );
        // Taking the origin of a URL is explicit.
        let o = Origin::from_uri(&uri("https://api.example.com/v1?x=1")).unwrap();
        assert_eq!(o, Origin::parse("https://api.example.com").unwrap());
    }

    #[test]
    fn near_misses() {
        let api = Origin::parse("https://api.example.com").unwrap();
        let miss = |o: &Origin, u: &str| o.near_miss(&uri(u));
        assert_eq!(miss(&api, "https://api.example.com/x"), None, "a match");
        assert_eq!(
            miss(&api, "https://api.example.com:8443/x"),
            Some(NearMiss::Port)
        );
        assert_eq!(
            miss(&api, "http://api.example.com/x"),
            Some(NearMiss::Scheme)
        );
        assert_eq!(
            miss(&api, "http://API.example.com.:8080/"),
            Some(NearMiss::Scheme)
        );
        assert_eq!(miss(&api, "https://files.example.com/"), None);
        assert_eq!(miss(&api, "https://api.example.com.evil.net/"), None);
        assert_eq!(miss(&api, "https://localhost/"), None);
        assert_eq!(miss(&api, "ftp://api.example.com/"), None);
        assert_eq!(miss(&api, "/relative"), None);

        let local = Origin::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            miss(&local, "http://localhost:8080/x"),
            Some(NearMiss::LoopbackName)
        );
        assert_eq!(
            miss(&local, "http://[::1]:8080/x"),
            Some(NearMiss::LoopbackName)
        );
        assert_eq!(miss(&local, "http://LOCALHOST:9090/"), Some(NearMiss::Port));
        assert_eq!(
            miss(&local, "https://localhost:8080/"),
            Some(NearMiss::Scheme)
        );
        assert_eq!(miss(&local, "http://127.0.0.1:8080/x"), None, "a match");
        assert_eq!(miss(&local, "http://10.0.0.1:8080/"), None);
        let named = Origin::parse("http://localhost:3000").unwrap();
        assert_eq!(
            miss(&named, "http://127.0.0.1:3000/"),
            Some(NearMiss::LoopbackName)
        );
        assert_eq!(miss(&named, "http://localhost.example:3000/"), None);
    }

    #[test]
    fn origin_of_a_target() {
        assert_eq!(
            Origin::of(&uri("https://API.example.com:443/a?b")).unwrap(),
            Origin::parse("https://api.example.com").unwrap()
        );
        assert_eq!(Origin::of(&uri("/a")), Err(OriginError::NotAbsolute));
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
