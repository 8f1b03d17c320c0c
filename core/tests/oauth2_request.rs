//! RFC 6749 requests: client authentication (2.3.1), the token endpoint (3.2), the
//! client credentials grant (4.4.2) and the refresh grant (6).

use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use reauth_core::oauth2::{
    ClientAuth, ClientAuthMethod, ClientSecret, EndpointError, TokenEndpoint,
};
use reauth_core::{OriginError, RefreshToken};

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
