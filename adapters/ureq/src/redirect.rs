//! Following redirects by hand, so the credential goes only where the allow-list says.
//!
//! ureq strips `Authorization` on every redirect by default, but its `SameHost` policy keeps
//! it for another port on the same host, which is another origin. So authorized requests are
//! sent with ureq's redirects off, and the wrapper follows each hop itself: the same method
//! rules as ureq, and the credential only on hops whose origin is allowed.

use http::header::LOCATION;
use http::{HeaderMap, Method, StatusCode, Uri};

/// Where a redirect response sends the request next (ureq's rules), or `None` if it is not
/// a redirect that is followed. 301, 302 and 303 turn any method but `GET` and `HEAD` into
/// a `GET` without a body; 307 and 308 keep the method, and are not followed for methods
/// that carry a body or for `DELETE` (the caller gets the 3xx, as with ureq).
pub(crate) fn next_hop(
    method: &Method,
    from: &Uri,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<(Method, Uri)> {
    if !is_redirect(status) {
        return None;
    }
    let method = match status.as_u16() {
        301..=303 if method == Method::GET || method == Method::HEAD => method.clone(),
        301..=303 => Method::GET,
        307 | 308 if !has_body(method) && method != Method::DELETE => method.clone(),
        _ => return None,
    };
    let location = headers.get(LOCATION)?.to_str().ok()?;
    Some((method, resolve(from, location)?))
}

/// True for the statuses [`next_hop`] may follow: 301, 302, 303, 307 and 308.
pub(crate) fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301..=303 | 307 | 308)
}

fn has_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// Resolves a `Location` value against the URI it answered (RFC 3986, section 5.2). Only
/// `http` and `https` targets are followed; the fragment is dropped.
pub(crate) fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
    let reference = reference.split_once('#').map_or(reference, |(r, _)| r);
    let r = Parts::split(reference);
    let (scheme, authority, path, query) = if let Some(scheme) = r.scheme {
        (
            scheme.to_owned(),
            r.authority?.to_owned(),
            remove_dot_segments(r.path),
            r.query,
        )
    } else {
        let scheme = base.scheme_str()?.to_owned();
        if let Some(authority) = r.authority {
            (
                scheme,
                authority.to_owned(),
                remove_dot_segments(r.path),
                r.query,
            )
        } else {
            let authority = base.authority()?.as_str().to_owned();
            if r.path.is_empty() {
                let query = r.query.or(base.query());
                (scheme, authority, base.path().to_owned(), query)
            } else if r.path.starts_with('/') {
                (scheme, authority, remove_dot_segments(r.path), r.query)
            } else {
                (
                    scheme,
                    authority,
                    remove_dot_segments(&merge(base, r.path)),
                    r.query,
                )
            }
        }
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let path = if path.is_empty() { "/" } else { &path };
    let text = match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    };
    text.parse().ok()
}

/// A reference split as in RFC 3986, appendix B (without the fragment).
struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(text: &'a str) -> Self {
        let (rest, query) = match text.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (text, None),
        };
        let (scheme, rest) = match rest.find(':') {
            Some(i) if is_scheme(&rest[..i]) && !rest[..i].contains('/') => {
                (Some(&rest[..i]), &rest[i + 1..])
            }
            _ => (None, rest),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                (Some(&after[..end]), &after[end..])
            }
            None => (None, rest),
        };
        Self {
            scheme,
            authority,
            path,
            query,
        }
    }
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// RFC 3986, section 5.2.3.
fn merge(base: &Uri, path: &str) -> String {
    let base_path = base.path();
    match base_path.rfind('/') {
        Some(i) => format!("{}{path}", &base_path[..=i]),
        None => format!("/{path}"),
    }
}

/// RFC 3986, section 5.2.4: resolves `.` and `..` segments.
fn remove_dot_segments(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut segments = path.split('/').peekable();
    if absolute {
        segments.next();
    }
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => trailing_slash = last,
            ".." => {
                out.pop();
                trailing_slash = last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    if absolute {
        result.push('/');
    }
    result.push_str(&out.join("/"));
    if trailing_slash && !out.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn resolves_the_rfc_3986_examples() {
        let base: Uri = "http://a/b/c/d;p?q".parse().unwrap();
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
        ] {
            let got = resolve(&base, reference).unwrap_or_else(|| panic!("{reference}"));
            assert_eq!(got, expected.parse::<Uri>().unwrap(), "{reference}");
        }
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        let base: Uri = "https://api.test/a".parse().unwrap();
        assert!(resolve(&base, "ftp://x/y").is_none());
        assert!(resolve(&base, "javascript:alert(1)").is_none());
        assert!(resolve(&base, "http://exa mple.com/").is_none());
        assert!(resolve(&base, "http:no-authority").is_none());
        assert_eq!(
            resolve(&base, "/p:q").unwrap(),
            "https://api.test/p:q".parse::<Uri>().unwrap()
        );
    }

    #[test]
    fn follows_like_ureq() {
        let from: Uri = "http://api.test/a/b".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_static("../c"));
        let hop =
            |m: Method, s: u16| next_hop(&m, &from, StatusCode::from_u16(s).unwrap(), &headers);
        assert_eq!(
            hop(Method::GET, 302),
            Some((Method::GET, "http://api.test/c".parse().unwrap()))
        );
        assert_eq!(hop(Method::POST, 303).unwrap().0, Method::GET);
        assert_eq!(hop(Method::HEAD, 301).unwrap().0, Method::HEAD);
        assert_eq!(hop(Method::GET, 307).unwrap().0, Method::GET);
        assert_eq!(hop(Method::OPTIONS, 308).unwrap().0, Method::OPTIONS);
        assert_eq!(hop(Method::POST, 307), None);
        assert_eq!(hop(Method::PUT, 308), None);
        assert_eq!(hop(Method::DELETE, 307), None);
        assert_eq!(hop(Method::GET, 300), None);
        assert_eq!(hop(Method::GET, 304), None);
        assert_eq!(hop(Method::GET, 200), None);
        assert_eq!(
            next_hop(&Method::GET, &from, StatusCode::FOUND, &HeaderMap::new()),
            None
        );
    }
}
