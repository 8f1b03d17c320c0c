//! The copy of a request kept while it is under way: sent again after a refresh, and the
//! base of every redirect hop.

use http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION,
    TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use reauth_drive::Hop;
use reqwest::{Method, Request, Url};

/// Where a request was built, which decides how it is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Built {
    /// By our own request builder, from reqwest builder methods alone: its extensions
    /// hold at most the timeout.
    Here,
    /// Anywhere else: it may carry extensions (from an `http::Request`) that only
    /// reqwest's own `try_clone` can copy.
    Elsewhere,
}

/// A request's copy. Its body is the caller's when that can be sent again (bytes), else
/// none: then the request is neither replayed nor re-sent by a redirect that keeps the
/// body.
pub(crate) struct Template {
    request: Request,
    whole: bool,
}

impl Template {
    pub(crate) fn of(built: Built, request: &Request) -> Self {
        // reqwest's `try_clone` allocates an extension map for the timeout and then
        // overwrites it with a copy of the original's: two allocations and a rehash on
        // every request. Without a body (reqwest's body copy is private) and without
        // foreign extensions, copying the parts by hand is the same request.
        if built == Built::Elsewhere || request.body().is_some() {
            if let Some(request) = request.try_clone() {
                return Self {
                    request,
                    whole: true,
                };
            }
            // A stream: only the head is kept, for redirects that drop the body (and
            // without the foreign extensions, which only `try_clone` could copy).
            return Self {
                request: head(request),
                whole: false,
            };
        }
        Self {
            request: head(request),
            whole: true,
        }
    }

    /// Where the request goes.
    pub(crate) fn url(&self) -> &Url {
        self.request.url()
    }

    pub(crate) fn method(&self) -> &Method {
        self.request.method()
    }

    /// True if the request can be sent again, body and all.
    pub(crate) fn is_whole(&self) -> bool {
        self.whole
    }

    /// The request again, for a replay; `None` if its body was a stream.
    pub(crate) fn replay(&self) -> Option<Request> {
        self.whole.then(|| self.request.try_clone()).flatten()
    }

    /// The request of a redirect `hop`, with the caller's headers, as reqwest builds
    /// one: without the headers that describe a body when it drops the body, and without
    /// credentials and cookies when it leaves the origin the caller addressed (compared
    /// with that origin, not with the hop before, so no later hop gets them back).
    /// `None` if the hop keeps a body that cannot be sent again.
    pub(crate) fn hop(&self, hop: &Hop) -> Option<Request> {
        if hop.keeps_body && !self.whole {
            return None;
        }
        let mut request = self.request.try_clone()?;
        *request.method_mut() = hop.method.clone();
        *request.url_mut() = hop.url.clone();
        if !hop.keeps_body {
            *request.body_mut() = None;
            let headers = request.headers_mut();
            for name in [
                CONTENT_TYPE,
                CONTENT_LENGTH,
                CONTENT_ENCODING,
                TRANSFER_ENCODING,
            ] {
                headers.remove(name);
            }
        }
        if hop.url.origin() != self.request.url().origin() {
            let headers = request.headers_mut();
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                headers.remove(name);
            }
            headers.remove("cookie2");
        }
        Some(request)
    }
}

/// The request without its body: method, URL, headers, version and timeout.
fn head(request: &Request) -> Request {
    let mut copy = Request::new(request.method().clone(), request.url().clone());
    if !request.headers().is_empty() {
        *copy.headers_mut() = request.headers().clone();
    }
    *copy.version_mut() = request.version();
    if let Some(&timeout) = request.timeout() {
        *copy.timeout_mut() = Some(timeout);
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::{Built, Template};
    use reauth_drive::Hop;
    use reqwest::{Method, Request, Version};
    use std::time::Duration;

    fn parts(r: &Request) -> String {
        format!(
            "{} {} {:?} {:?} {:?} {:?}",
            r.method(),
            r.url(),
            r.version(),
            r.headers(),
            r.timeout(),
            r.body().and_then(reqwest::Body::as_bytes)
        )
    }

    #[test]
    fn a_replay_copy_is_the_same_request() {
        let http = reqwest::Client::new();
        let requests = [
            http.get("http://127.0.0.1:1/a?b=c").build().unwrap(),
            http.request(Method::DELETE, "http://127.0.0.1:1/x")
                .header("x-trace", "7")
                .header("x-trace", "8")
                .timeout(Duration::from_millis(1500))
                .version(Version::HTTP_2)
                .build()
                .unwrap(),
            http.post("http://127.0.0.1:1/p")
                .body("payload")
                .build()
                .unwrap(),
        ];
        for request in &requests {
            for built in [Built::Here, Built::Elsewhere] {
                let copy = Template::of(built, request).replay().unwrap();
                assert_eq!(parts(&copy), parts(request), "{built:?}");
            }
        }
        assert_eq!(requests[1].timeout(), Some(&Duration::from_millis(1500)));
    }

    fn upload() -> Request {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>("chunk")]);
        reqwest::Client::new()
            .post("http://127.0.0.1:1/upload")
            .header("content-type", "text/plain")
            .header("x-trace", "7")
            .body(reqwest::Body::wrap_stream(stream))
            .build()
            .unwrap()
    }

    fn hop(method: Method, url: &str, keeps_body: bool) -> Hop {
        Hop {
            method,
            url: url.parse().unwrap(),
            keeps_body,
        }
    }

    #[test]
    fn a_streaming_body_has_no_replay_copy_and_no_hop_that_keeps_it() {
        for built in [Built::Here, Built::Elsewhere] {
            let template = Template::of(built, &upload());
            assert!(!template.is_whole());
            assert!(template.replay().is_none());
            let keeps = hop(Method::POST, "http://127.0.0.1:1/other", true);
            assert!(template.hop(&keeps).is_none());
            // A 303 drops the body, so it can be followed.
            let drops = hop(Method::GET, "http://127.0.0.1:1/other", false);
            let request = template.hop(&drops).unwrap();
            assert_eq!(
                parts(&request),
                "GET http://127.0.0.1:1/other HTTP/1.1 {\"x-trace\": \"7\"} None None"
            );
        }
    }

    #[test]
    fn a_hop_off_the_first_origin_drops_credentials_and_cookies_for_good() {
        let request = reqwest::Client::new()
            .put("http://127.0.0.1:1/a")
            .header("authorization", "Basic dTpw")
            .header("cookie", "a=b")
            .header("proxy-authorization", "Basic dTpw")
            .header("cookie2", "c")
            .header("x-trace", "7")
            .body("payload")
            .build()
            .unwrap();
        let template = Template::of(Built::Here, &request);
        let same = template
            .hop(&hop(Method::PUT, "http://127.0.0.1:1/b", true))
            .unwrap();
        assert_eq!(same.headers().len(), 5);
        assert_eq!(
            same.body().and_then(reqwest::Body::as_bytes),
            Some(&b"payload"[..])
        );
        // Another port is another origin; so is the hop after it, even if it is on the
        // same origin as the one before (reqwest would give them back there).
        for other in ["http://127.0.0.1:2/b", "http://localhost:2/c"] {
            let away = template.hop(&hop(Method::PUT, other, true)).unwrap();
            let names: Vec<_> = away.headers().keys().map(|k| k.as_str()).collect();
            assert_eq!(names, ["x-trace"], "{other}");
        }
    }
}
