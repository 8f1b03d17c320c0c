//! RFC 6749 requests: client authentication (2.3.1), the token endpoint (3.2), the
//! client credentials grant (4.4.2) and the refresh grant (6); RFC 8707 resource
//! indicators, `audience`, and extra parameters and headers on both grants.

use base64::Engine as _;
use http::header::{
    HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    TRANSFER_ENCODING,
};
use http::{Method, Request};
use reauth_core::oauth2::{
    ClientAuth, ClientAuthMethod, ClientSecret, EndpointError, TokenEndpoint,
};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{OriginError, RefreshProtocol, RefreshToken};

fn endpoint(auth: ClientAuth) -> TokenEndpoint {
    TokenEndpoint::new("https://server.example.com/token".parse().unwrap(), auth).unwrap()
}

fn rfc_client() -> ClientAuth {
    ClientAuth::secret_basic("s6BhdRkqt3", ClientSecret::new("7Fjfp0ZBr1KtDRbnfVdmIw"))
}

fn body(request: &Request<Vec<u8>>) -> &str {
    std::str::from_utf8(request.body()).unwrap()
}

fn refresh_token() -> RefreshToken {
    RefreshToken::new("tGzv3JOkF0XG5Qx2TlKWIA").unwrap()
}

#[test]
fn rfc6749_section6_refresh_request() {
    // POST /token HTTP/1.1
    // Host: server.example.com
    // Authorization: Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW
    // Content-Type: application/x-www-form-urlencoded
    //
    // grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA
    // (the RFC's header is for secret "gX1fBat3bV"; section 2.3.1's client is used here)
    let request = endpoint(rfc_client()).refresh_token_request(&refresh_token());
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "https://server.example.com/token");
    let h = request.headers();
    assert_eq!(h[CONTENT_TYPE], "application/x-www-form-urlencoded");
    assert_eq!(h[ACCEPT], "application/json");
    assert_eq!(
        h[AUTHORIZATION],
        "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"
    );
    assert!(h[AUTHORIZATION].is_sensitive());
    assert_eq!(
        body(&request),
        "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA"
    );

    let rfc6 = ClientAuth::secret_basic("s6BhdRkqt3", ClientSecret::new("gX1fBat3bV"));
    let request = endpoint(rfc6).refresh_token_request(&refresh_token());
    assert_eq!(
        request.headers()[AUTHORIZATION],
        "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"
    );
}

#[test]
fn rfc6749_section4_4_2_client_credentials_request() {
    // grant_type=client_credentials, Basic as in 2.3.1.
    let request = endpoint(rfc_client()).client_credentials_request();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(body(&request), "grant_type=client_credentials");
    assert_eq!(
        request.headers()[AUTHORIZATION],
        "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"
    );
    let scoped = endpoint(rfc_client()).with_scope("read write");
    assert_eq!(
        body(&scoped.client_credentials_request()),
        "grant_type=client_credentials&scope=read+write"
    );
}

#[test]
fn basic_encodes_id_and_secret_before_base64() {
    // Section 2.3.1: each is application/x-www-form-urlencoded first, so ':' in the id
    // cannot be mistaken for the separator.
    let auth = ClientAuth::secret_basic("my:app é", ClientSecret::new("p@ss word/+:"));
    let request = endpoint(auth).refresh_token_request(&refresh_token());
    let value = request.headers()[AUTHORIZATION].to_str().unwrap();
    let encoded = value.strip_prefix("Basic ").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "my%3Aapp+%C3%A9:p%40ss+word%2F%2B%3A"
    );
    // With Basic, nothing about the client goes in the body.
    assert!(!body(&request).contains("client"));
}

#[test]
fn secret_post_and_public_clients_use_the_body() {
    let post = ClientAuth::secret_post("id 1", ClientSecret::new("s&=+"));
    assert_eq!(post.method(), ClientAuthMethod::SecretPost);
    let request = endpoint(post)
        .with_scope("a")
        .refresh_token_request(&refresh_token());
    assert_eq!(
        body(&request),
        "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&scope=a\
         &client_id=id+1&client_secret=s%26%3D%2B"
    );
    assert!(request.headers().get(AUTHORIZATION).is_none());

    let public = ClientAuth::public("mobile-app");
    assert_eq!(public.method(), ClientAuthMethod::None);
    assert_eq!(public.client_id(), Some("mobile-app"));
    let request = endpoint(public).refresh_token_request(&refresh_token());
    assert_eq!(
        body(&request),
        "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&client_id=mobile-app"
    );
    assert!(request.headers().get(AUTHORIZATION).is_none());

    let none = endpoint(ClientAuth::none()).client_credentials_request();
    assert_eq!(body(&none), "grant_type=client_credentials");
    assert!(none.headers().get(AUTHORIZATION).is_none());
}

#[test]
fn token_text_is_form_encoded() {
    let token = RefreshToken::new("a+b/c=d&e%").unwrap();
    let request = endpoint(ClientAuth::none()).refresh_token_request(&token);
    assert_eq!(
        body(&request),
        "grant_type=refresh_token&refresh_token=a%2Bb%2Fc%3Dd%26e%25"
    );
    let parsed: Vec<(String, String)> = form_urlencoded::parse(request.body())
        .into_owned()
        .collect();
    assert_eq!(parsed[1], ("refresh_token".into(), "a+b/c=d&e%".into()));
}

#[test]
fn endpoint_requires_tls_except_on_loopback() {
    let auth = ClientAuth::none;
    let new = |uri: &str| TokenEndpoint::new(uri.parse().unwrap(), auth());
    let insecure = |uri: &str| TokenEndpoint::new_insecure(uri.parse().unwrap(), auth());

    assert!(new("https://auth.example.com/token").is_ok());
    assert!(new("https://auth.example.com:8443/t?x=1").is_ok());
    for loopback in [
        "http://127.0.0.1:9000/token",
        "http://127.8.9.10/token",
        "http://[::1]:9000/token",
        "http://localhost/token",
        "http://LOCALHOST:1/token",
    ] {
        assert!(new(loopback).is_ok(), "{loopback}");
    }
    for remote in [
        "http://auth.example.com/token",
        "http://10.0.0.1/token",
        "http://localhost.example.com/token",
        "HTTP://auth.example.com/token",
    ] {
        assert_eq!(
            new(remote).unwrap_err(),
            EndpointError::InsecureHttp,
            "{remote}"
        );
        assert!(insecure(remote).is_ok(), "{remote}");
    }
    // Opting in to http does not relax anything else.
    for uri in [
        "ftp://auth.example.com/token",
        "/token",
        "https://u:p@auth.example.com/t",
    ] {
        assert!(new(uri).is_err(), "{uri}");
        assert!(insecure(uri).is_err(), "{uri}");
    }
    assert!(matches!(
        new("ftp://auth.example.com/token").unwrap_err(),
        EndpointError::Origin(OriginError::UnsupportedScheme(_))
    ));
    assert_eq!(
        new("https://user:pw@auth.example.com/t").unwrap_err(),
        EndpointError::UserInfo
    );
    // The error explains itself.
    let message = new("http://auth.example.com/token")
        .unwrap_err()
        .to_string();
    assert!(message.contains("https"), "{message}");
}

#[test]
fn endpoint_getters() {
    let e = endpoint(rfc_client()).with_scope("openid");
    assert_eq!(e.uri(), "https://server.example.com/token");
    assert_eq!(e.scope(), Some("openid"));
    assert_eq!(e.auth().client_id(), Some("s6BhdRkqt3"));
    assert_eq!(e.auth().method(), ClientAuthMethod::SecretBasic);
}

/// Both grant requests of `endpoint`, through `OAuth2Grant` as the adapters build them.
fn both_grants(endpoint: &TokenEndpoint) -> [Request<Vec<u8>>; 2] {
    let refresh = OAuth2Grant::refresh_token(endpoint.clone())
        .build_request(Some(&refresh_token()))
        .unwrap();
    let credentials = OAuth2Grant::client_credentials(endpoint.clone())
        .build_request(None)
        .unwrap();
    [refresh, credentials]
}

fn pairs(request: &Request<Vec<u8>>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.body())
        .into_owned()
        .collect()
}

#[test]
fn rfc8707_resources_repeat_in_order_on_both_grants() {
    let e = endpoint(rfc_client())
        .with_scope("read")
        .with_resource("https://api.example.com/v1?x=1&y=2")
        .unwrap()
        .with_resource("urn:example:billing")
        .unwrap();
    assert_eq!(
        e.resources(),
        ["https://api.example.com/v1?x=1&y=2", "urn:example:billing"]
    );
    let [refresh, credentials] = both_grants(&e);
    assert_eq!(
        body(&refresh),
        "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&scope=read\
         &resource=https%3A%2F%2Fapi.example.com%2Fv1%3Fx%3D1%26y%3D2&resource=urn%3Aexample%3Abilling"
    );
    assert_eq!(
        body(&credentials),
        "grant_type=client_credentials&scope=read\
         &resource=https%3A%2F%2Fapi.example.com%2Fv1%3Fx%3D1%26y%3D2&resource=urn%3Aexample%3Abilling"
    );
}

#[test]
fn a_resource_must_be_an_absolute_uri_without_fragment() {
    for good in [
        "https://api.example.com",
        "https://api.example.com/x?y=1",
        "urn:example:api",
        "a+b-c.d:x",
    ] {
        assert!(endpoint(rfc_client()).with_resource(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "api.example.com",
        "/api",
        "//api.example.com/",
        "https:",
        ":x",
        "1https://api.example.com",
        "ht tp://api.example.com",
        "https://api.example.com/#frag",
        "https://api.example.com/#",
        "https://api.example.com/a b",
        "https://api.example.com/\u{e9}",
        "https://api.example.com/\n",
    ] {
        assert_eq!(
            endpoint(rfc_client()).with_resource(bad).unwrap_err(),
            EndpointError::InvalidResource,
            "{bad:?}"
        );
    }
}

#[test]
fn audience_is_sent_once_on_both_grants() {
    let e = endpoint(ClientAuth::secret_post("app", ClientSecret::new("s")))
        .with_audience("first")
        .with_audience("https://api.example.com");
    assert_eq!(e.audience(), Some("https://api.example.com"));
    let [refresh, credentials] = both_grants(&e);
    assert_eq!(
        body(&refresh),
        "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA\
         &audience=https%3A%2F%2Fapi.example.com&client_id=app&client_secret=s"
    );
    assert_eq!(
        body(&credentials),
        "grant_type=client_credentials&audience=https%3A%2F%2Fapi.example.com\
         &client_id=app&client_secret=s"
    );
}

#[test]
fn extra_params_follow_the_standard_ones_encoded_and_repeatable() {
    let e = endpoint(ClientAuth::secret_post("app", ClientSecret::new("s")))
        .with_scope("read")
        .with_resource("https://api.example.com/")
        .unwrap()
        .with_audience("aud")
        .with_param("tenant", "a&b=c d")
        .unwrap()
        .with_param("x", "1")
        .unwrap()
        .with_param("x", "2")
        .unwrap()
        .with_param("é name", "")
        .unwrap();
    let [refresh, credentials] = both_grants(&e);
    let tail = [
        ("scope", "read"),
        ("resource", "https://api.example.com/"),
        ("audience", "aud"),
        ("tenant", "a&b=c d"),
        ("x", "1"),
        ("x", "2"),
        ("é name", ""),
        ("client_id", "app"),
        ("client_secret", "s"),
    ];
    let expect = |head: &[(&str, &str)]| -> Vec<(String, String)> {
        head.iter()
            .chain(tail.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        pairs(&refresh),
        expect(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "tGzv3JOkF0XG5Qx2TlKWIA")
        ])
    );
    assert_eq!(
        pairs(&credentials),
        expect(&[("grant_type", "client_credentials")])
    );
    // The codec's own encoder, not a hand-written one: the same bytes.
    assert!(body(&refresh).contains("&tenant=a%26b%3Dc+d&x=1&x=2&%C3%A9+name=&client_id=app"));
}

#[test]
fn params_the_codec_owns_are_refused_in_any_case() {
    for name in [
        "grant_type",
        "refresh_token",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "scope",
        "resource",
        "audience",
        "GRANT_TYPE",
        "Client_Secret",
        "Scope",
        "",
    ] {
        for auth in [rfc_client(), ClientAuth::none(), ClientAuth::public("p")] {
            let refused = endpoint(auth).with_param(name, "v").unwrap_err();
            assert_eq!(
                refused,
                EndpointError::ReservedParameter {
                    name: name.to_owned()
                }
            );
            assert!(refused.to_string().contains("not an extra parameter"));
        }
    }
    // Near misses are ordinary parameters.
    for name in ["grant_types", "client", "scopes", "resource_id", " scope"] {
        assert!(
            endpoint(rfc_client()).with_param(name, "v").is_ok(),
            "{name:?}"
        );
    }
}

#[test]
fn extra_headers_on_both_grants_are_sensitive_and_repeatable() {
    let key = HeaderName::from_static("x-api-key");
    let tenant = HeaderName::from_static("x-tenant");
    let e = endpoint(rfc_client())
        .with_header(key.clone(), HeaderValue::from_static("k-1"))
        .unwrap()
        .with_header(tenant.clone(), HeaderValue::from_static("a"))
        .unwrap()
        .with_header(tenant.clone(), HeaderValue::from_static("b"))
        .unwrap();
    for request in both_grants(&e) {
        let h = request.headers();
        assert_eq!(h[&key], "k-1");
        assert!(h[&key].is_sensitive());
        let tenants: Vec<_> = h.get_all(&tenant).iter().collect();
        assert_eq!(tenants, ["a", "b"]);
        assert!(tenants.iter().all(|v| v.is_sensitive()));
        // The codec's own headers are still there, once each.
        assert_eq!(h.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(h.get_all(ACCEPT).iter().count(), 1);
        assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
        assert_eq!(h.len(), 6);
    }
}

#[test]
fn headers_the_request_owns_are_refused() {
    let value = || HeaderValue::from_static("v");
    for auth in [
        rfc_client(),
        ClientAuth::secret_post("a", ClientSecret::new("s")),
        ClientAuth::none(),
    ] {
        for name in [
            CONTENT_TYPE,
            ACCEPT,
            CONTENT_LENGTH,
            TRANSFER_ENCODING,
            HOST,
        ] {
            assert_eq!(
                endpoint(auth.clone())
                    .with_header(name.clone(), value())
                    .unwrap_err(),
                EndpointError::ReservedHeader { name }
            );
        }
    }
    // Authorization belongs to the codec only when it writes Basic there.
    let refused = endpoint(rfc_client())
        .with_header(AUTHORIZATION, value())
        .unwrap_err();
    assert_eq!(
        refused,
        EndpointError::ReservedHeader {
            name: AUTHORIZATION
        }
    );
    assert!(refused.to_string().contains("authorization"), "{refused}");
    for auth in [
        ClientAuth::secret_post("a", ClientSecret::new("s")),
        ClientAuth::none(),
    ] {
        let e = endpoint(auth)
            .with_header(AUTHORIZATION, HeaderValue::from_static("Gateway g-1"))
            .unwrap();
        for request in both_grants(&e) {
            assert_eq!(request.headers()[AUTHORIZATION], "Gateway g-1");
            assert!(request.headers()[AUTHORIZATION].is_sensitive());
        }
    }
}

#[test]
fn debug_names_extra_params_and_headers_but_never_their_values() {
    let e = endpoint(rfc_client())
        .with_resource("https://api.example.com/")
        .unwrap()
        .with_audience("https://aud.example.com")
        .with_param("assertion_extra", "PARAM-SECRET")
        .unwrap()
        .with_header(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("HEADER-SECRET"),
        )
        .unwrap();
    let grant = OAuth2Grant::client_credentials(e.clone());
    for shown in [format!("{e:?}"), format!("{e:#?}"), format!("{grant:?}")] {
        assert!(!shown.contains("PARAM-SECRET"), "{shown}");
        assert!(!shown.contains("HEADER-SECRET"), "{shown}");
        assert!(!shown.contains("7Fjfp0ZBr1KtDRbnfVdmIw"), "{shown}");
        assert!(shown.contains("assertion_extra"), "{shown}");
        assert!(shown.contains("x-api-key"), "{shown}");
        assert!(shown.contains("https://api.example.com/"), "{shown}");
        assert!(shown.contains("https://aud.example.com"), "{shown}");
    }
    // Nor does the error of a refused parameter carry the value.
    let refused = e.with_param("client_secret", "PARAM-SECRET").unwrap_err();
    assert!(!format!("{refused} {refused:?}").contains("PARAM-SECRET"));
}
