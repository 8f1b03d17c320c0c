//! Redirects followed by hand, hop by hop, so that each adapter decides for every hop
//! whether it carries the credential (only to an allowed origin). What is shared here is
//! what is not I/O: which statuses are followed, with which method and body, and where
//! the `Location` points. Each adapter keeps the method rules of the client it wraps, so
//! following by hand changes nothing for its users but where the token goes.

use http::header::LOCATION;
use http::{HeaderMap, Method, StatusCode};
use url::Url;

/// Whose rules a followed redirect uses for its method and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// ureq 3's: 301, 302 and 303 turn every method but `GET` and `HEAD` into a `GET`;
    /// 307 and 308 keep the method, and are not followed for methods that carry a body
    /// (`POST`, `PUT`, `PATCH`) or for `DELETE` (the caller gets the 3xx). No hop
    /// carries a body.
    Ureq,
    /// reqwest 0.13's (tower-http's): 301 and 302 turn a `POST` into a `GET` without a
    /// body; 303 turns every method but `HEAD` into a `GET` without a body; otherwise the
    /// method and the body are kept (so the body must be one that can be sent again).
    Reqwest,
}

/// The next request of a redirect chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Its method.
    pub method: Method,
    /// Where it goes: `http` or `https`, without a fragment.
    pub url: Url,
    /// True if it sends the request's body again; false if it goes without a body (and
    /// without the headers that describe one).
    pub keeps_body: bool,
}

/// True for the statuses [`next_hop`] may follow: 301, 302, 303, 307 and 308.
///
/// ```
/// use http::StatusCode;
/// assert!(reauth_drive::is_redirect(StatusCode::SEE_OTHER));
/// assert!(!reauth_drive::is_redirect(StatusCode::NOT_MODIFIED));
/// ```
pub fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301..=303 | 307 | 308)
}

/// The request that follows a response with `status` and `headers` to a `method`
/// request for `from`, or `None` if it is not a redirect that `rules` follow (or its
/// `Location` is missing, not text, or not an `http`/`https` URL).
///
/// ```
/// use http::{header::LOCATION, HeaderMap, HeaderValue, Method, StatusCode};
/// use reauth_drive::{next_hop, Rules};
///
/// let from = url::Url::parse("https://api.example/a/b").unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert(LOCATION, HeaderValue::from_static("../c"));
/// let hop = next_hop(Rules::Reqwest, &Method::POST, &from, StatusCode::SEE_OTHER, &headers)
///     .unwrap();
/// assert_eq!((hop.method, hop.url.as_str()), (Method::GET, "https://api.example/c"));
/// assert!(!hop.keeps_body);
/// ```
pub fn next_hop(
    rules: Rules,
    method: &Method,
    from: &Url,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Hop> {
    let (method, keeps_body) = match (rules, status.as_u16()) {
        (Rules::Ureq, 301..=303) if method == Method::GET || method == Method::HEAD => {
            (method.clone(), false)
        }
        (Rules::Ureq, 301..=303) => (Method::GET, false),
        (Rules::Ureq, 307 | 308) if carries_body(method) || method == Method::DELETE => {
            return None
        }
        (Rules::Ureq, 307 | 308) => (method.clone(), false),
        (Rules::Reqwest, 301 | 302) if method == Method::POST => (Method::GET, false),
        (Rules::Reqwest, 303) if method == Method::HEAD => (Method::HEAD, false),
        (Rules::Reqwest, 303) => (Method::GET, false),
        (Rules::Reqwest, 301 | 302 | 307 | 308) => (method.clone(), true),
        _ => return None,
    };
    let location = headers.get(LOCATION)?.to_str().ok()?;
    Some(Hop {
        method,
        url: resolve(from, location)?,
        keeps_body,
    })
}

fn carries_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// Resolves a `Location` value against the URL it answered, as browsers and reqwest do
/// (the WHATWG URL standard, which agrees with RFC 3986 on well-formed references). Only
/// `http` and `https` targets are followed; the fragment is dropped.
///
/// ```
/// let base = url::Url::parse("http://a/b/c/d;p?q").unwrap();
/// let resolved = reauth_drive::resolve(&base, "../g?y#s").unwrap();
/// assert_eq!(resolved.as_str(), "http://a/b/g?y");
/// assert!(reauth_drive::resolve(&base, "javascript:alert(1)").is_none());
/// ```
pub fn resolve(base: &Url, location: &str) -> Option<Url> {
    let mut url = base.join(location).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_fragment(None);
    Some(url)
}

/// A `url::Url` seen as a core [`Target`](reauth_core::Target), so the allow-list check
/// parses nothing.
#[derive(Clone, Copy, Debug)]
pub struct UrlTarget<'a>(pub &'a Url);

impl reauth_core::Target for UrlTarget<'_> {
    fn scheme(&self) -> Option<&str> {
        Some(self.0.scheme())
    }

    fn host(&self) -> Option<&str> {
        self.0.host_str()
    }

    fn port(&self) -> Option<u16> {
        self.0.port()
    }

    fn authority(&self) -> Option<&str> {
        Some(self.0.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn resolves_the_rfc_3986_examples() {
        let base = url("http://a/b/c/d;p?q");
        for (reference, expected) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            ("g?y#s", "http://a/b/c/g?y"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("https://other:8443/x/../y?z", "https://other:8443/y?z"),
            ("HTTP://Other/x", "http://other/x"),
            ("http://a:80/x", "http://a/x"),
        ] {
            let got = resolve(&base, reference).unwrap_or_else(|| panic!("{reference}"));
            assert_eq!(got.as_str(), expected, "{reference}");
        }
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        let base = url("https://api.test/a");
        for bad in [
            "ftp://x/y",
            "javascript:alert(1)",
            "data:text/plain,x",
            "http://exa mple.com/",
            "http://[::1/",
            "https://",
        ] {
            assert!(resolve(&base, bad).is_none(), "{bad}");
        }
        assert_eq!(
            resolve(&base, "/p:q").unwrap().as_str(),
            "https://api.test/p:q"
        );
        // As browsers do: a scheme-relative-looking `http:x` is another origin's `x`.
        assert_eq!(
            resolve(&base, "http:no-authority").unwrap().as_str(),
            "http://no-authority/"
        );
    }

    fn hops(rules: Rules, method: Method, status: u16) -> Option<(Method, bool)> {
        let from = url("http://api.test/a/b");
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_static("../c"));
        let status = StatusCode::from_u16(status).unwrap();
        let hop = next_hop(rules, &method, &from, status, &headers)?;
        assert_eq!(hop.url.as_str(), "http://api.test/c");
        Some((hop.method, hop.keeps_body))
    }

    #[test]
    fn follows_like_ureq() {
        let hop = |m, s| hops(Rules::Ureq, m, s);
        assert_eq!(hop(Method::GET, 302), Some((Method::GET, false)));
        assert_eq!(hop(Method::POST, 303), Some((Method::GET, false)));
        assert_eq!(hop(Method::PUT, 301), Some((Method::GET, false)));
        assert_eq!(hop(Method::HEAD, 301), Some((Method::HEAD, false)));
        assert_eq!(hop(Method::GET, 307), Some((Method::GET, false)));
        assert_eq!(hop(Method::OPTIONS, 308), Some((Method::OPTIONS, false)));
        assert_eq!(hop(Method::POST, 307), None);
        assert_eq!(hop(Method::PUT, 308), None);
        assert_eq!(hop(Method::DELETE, 307), None);
    }

    #[test]
    fn follows_like_reqwest() {
        let hop = |m, s| hops(Rules::Reqwest, m, s);
        assert_eq!(hop(Method::POST, 301), Some((Method::GET, false)));
        assert_eq!(hop(Method::POST, 302), Some((Method::GET, false)));
        assert_eq!(hop(Method::PUT, 302), Some((Method::PUT, true)));
        assert_eq!(hop(Method::POST, 303), Some((Method::GET, false)));
        assert_eq!(hop(Method::DELETE, 303), Some((Method::GET, false)));
        assert_eq!(hop(Method::HEAD, 303), Some((Method::HEAD, false)));
        assert_eq!(hop(Method::POST, 307), Some((Method::POST, true)));
        assert_eq!(hop(Method::DELETE, 308), Some((Method::DELETE, true)));
        assert_eq!(hop(Method::GET, 308), Some((Method::GET, true)));
    }

    #[test]
    fn only_the_five_redirect_statuses_with_a_location_are_followed() {
        for rules in [Rules::Ureq, Rules::Reqwest] {
            for status in [200, 300, 304, 305, 306, 309, 401] {
                assert_eq!(hops(rules, Method::GET, status), None, "{status}");
            }
            let from = url("http://api.test/a");
            let none = next_hop(
                rules,
                &Method::GET,
                &from,
                StatusCode::FOUND,
                &HeaderMap::new(),
            );
            assert_eq!(none, None);
            let mut binary = HeaderMap::new();
            binary.insert(LOCATION, HeaderValue::from_bytes(b"/\xff").unwrap());
            let hop = next_hop(rules, &Method::GET, &from, StatusCode::FOUND, &binary);
            assert_eq!(hop, None);
        }
    }
}
