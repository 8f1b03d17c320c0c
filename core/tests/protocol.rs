//! Refresh protocols: the OAuth2 grants and the JSON example, through the trait object the
//! adapters hold.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;
use reauth_core::oauth2::{
    ClientAuth, ClientSecret, EndpointError, TokenEndpoint, MAX_TOKEN_RESPONSE_BYTES,
};
use reauth_core::protocol::{GrantKind, JsonRefreshProtocol, OAuth2Grant};
use reauth_core::{
    RefreshError, RefreshErrorKind, RefreshOutcome, RefreshProtocol, RefreshToken, TokenSet,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn endpoint() -> TokenEndpoint {
    TokenEndpoint::new(
        "https://auth.example.com/token".parse().unwrap(),
        ClientAuth::secret_basic("id", ClientSecret::new("secret")),
    )
    .unwrap()
}

fn json_api() -> JsonRefreshProtocol {
    JsonRefreshProtocol::new("https://api.example.com/auth/refresh".parse().unwrap()).unwrap()
}

fn token(text: &str) -> RefreshToken {
    RefreshToken::new(text).unwrap()
}

fn parse(p: &dyn RefreshProtocol, status: u16, headers: &HeaderMap, body: &[u8]) -> RefreshOutcome {
    let status = StatusCode::from_u16(status).unwrap();
    p.parse_response(status, headers, body, SystemTime::UNIX_EPOCH)
}

fn success(p: &dyn RefreshProtocol, body: &str) -> TokenSet {
    match parse(p, 200, &HeaderMap::new(), body.as_bytes()) {
        RefreshOutcome::Success(set) => set,
        other => panic!("{body}: {other:?}"),
    }
}

fn failure(p: &dyn RefreshProtocol, status: u16, body: &[u8]) -> RefreshError {
    match parse(p, status, &HeaderMap::new(), body) {
        RefreshOutcome::Failed(e) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn protocols_are_shareable_trait_objects() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn RefreshProtocol>();
    let all: Vec<Arc<dyn RefreshProtocol>> = vec![
        Arc::new(OAuth2Grant::refresh_token(endpoint())),
        Arc::new(OAuth2Grant::client_credentials(endpoint())),
        Arc::new(json_api()),
    ];
    for p in &all {
        assert_eq!(p.max_response_bytes(), MAX_TOKEN_RESPONSE_BYTES);
    }
    let needs: Vec<bool> = all.iter().map(|p| p.requires_refresh_token()).collect();
    assert_eq!(needs, [true, false, true]);
}

#[test]
fn oauth2_refresh_grant() {
    let grant = OAuth2Grant::refresh_token(endpoint().with_scope("api"));
    assert_eq!(grant.kind(), GrantKind::RefreshToken);
    assert_eq!(grant.endpoint().scope(), Some("api"));
    let request = grant.build_request(Some(&token("r1"))).unwrap();
    assert_eq!(
        request.body(),
        b"grant_type=refresh_token&refresh_token=r1&scope=api"
    );
    assert!(request.headers()[AUTHORIZATION].is_sensitive());

    let e = grant.build_request(None).unwrap_err();
    assert!(e.is_permanent());
    assert_eq!(e.kind(), &RefreshErrorKind::Other);

    let set = success(
        &grant,
        r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#,
    );
    assert_eq!(set.expires_in(), Some(Duration::from_secs(60)));
    let e = failure(&grant, 400, br#"{"error":"invalid_grant"}"#);
    assert!(e.is_permanent());
}

#[test]
fn oauth2_client_credentials_grant_ignores_refresh_tokens() {
    let grant = OAuth2Grant::client_credentials(endpoint());
    assert_eq!(grant.kind(), GrantKind::ClientCredentials);
    for rt in [None, Some(token("ignored"))] {
        let request = grant.build_request(rt.as_ref()).unwrap();
        assert_eq!(request.body(), b"grant_type=client_credentials");
    }
}

#[test]
fn json_request_shape() {
    let api = json_api();
    assert_eq!(api.uri(), "https://api.example.com/auth/refresh");
    let request = api.build_request(Some(&token("r1"))).unwrap();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "https://api.example.com/auth/refresh");
    assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(request.headers()[ACCEPT], "application/json");
    assert!(request.headers().get(AUTHORIZATION).is_none());
    assert_eq!(request.body(), br#"{"refreshToken":"r1"}"#);

    // Quotes and backslashes in a token are escaped, and round-trip.
    let request = api.build_request(Some(&token(r#"a"b\c"#))).unwrap();
    assert_eq!(request.body(), br#"{"refreshToken":"a\"b\\c"}"#);
    let back: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(back["refreshToken"], r#"a"b\c"#);

    let e = api.build_request(None).unwrap_err();
    assert!(e.is_permanent());
}

#[test]
fn json_endpoint_requires_tls_except_on_loopback() {
    let plain = "http://api.example.com/auth/refresh"
        .parse::<http::Uri>()
        .unwrap();
    assert_eq!(
        JsonRefreshProtocol::new(plain.clone()).unwrap_err(),
        EndpointError::InsecureHttp
    );
    assert!(JsonRefreshProtocol::new_insecure(plain).is_ok());
    assert!(JsonRefreshProtocol::new("http://localhost:3000/refresh".parse().unwrap()).is_ok());
    assert!(JsonRefreshProtocol::new("/refresh".parse().unwrap()).is_err());
}

#[test]
fn json_success_bodies() {
    let api = json_api();
    let set = success(
        &api,
        r#"{"accessToken":"a2","refreshToken":"r2","expiresIn":900}"#,
    );
    assert_eq!(set.access_token().secret(), "a2");
    assert_eq!(set.refresh_token().unwrap().secret(), "r2");
    assert_eq!(set.expires_in(), Some(Duration::from_secs(900)));

    let set = success(
        &api,
        r#"{"accessToken":"a2","user":{"id":7},"expiresIn":"60"}"#,
    );
    assert!(set.refresh_token().is_none());
    assert_eq!(set.expires_in(), Some(Duration::from_secs(60)));
    let set = success(
        &api,
        r#"{"accessToken":"a2","refreshToken":null,"expiresIn":-3}"#,
    );
    assert_eq!(set.expires_in(), Some(Duration::ZERO));
    // The OAuth2 names are not this protocol's.
    failure(&api, 200, br#"{"access_token":"a2"}"#);
}

#[test]
fn json_hostile_bodies_are_transient_malformed() {
    let api = json_api();
    let nested = format!(
        r#"{{"accessToken":{}"a"{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"OK".to_vec(),
        br#"{"accessToken":"a","accessToken":"b"}"#.to_vec(),
        br#"{"accessToken":null}"#.to_vec(),
        br#"{"accessToken":1}"#.to_vec(),
        br#"{"accessToken":"with space"}"#.to_vec(),
        br#"{"accessToken":"a","refreshToken":"r\u0000"}"#.to_vec(),
        br#"{"accessToken":"a","expiresIn":true}"#.to_vec(),
        br#"{"accessToken":"a","expiresIn":"later"}"#.to_vec(),
        br#"[{"accessToken":"a"}]"#.to_vec(),
        b"{\"accessToken\":\"\xff\"}".to_vec(),
        nested.into_bytes(),
    ];
    for body in cases {
        let e = failure(&api, 200, &body);
        assert_eq!(
            e.kind(),
            &RefreshErrorKind::Malformed,
            "{:?}",
            String::from_utf8_lossy(&body)
        );
        assert!(!e.is_permanent());
    }
    let e = failure(&api, 200, &vec![b' '; 10 << 20]);
    assert_eq!(
        e.kind(),
        &RefreshErrorKind::TooLarge {
            limit: MAX_TOKEN_RESPONSE_BYTES
        }
    );
}

#[test]
fn json_statuses() {
    let api = json_api();
    for status in [401, 403] {
        let e = failure(&api, status, b"");
        assert!(e.is_permanent());
        assert_eq!(e.kind(), &RefreshErrorKind::Status { status });
    }
    for status in [400, 404, 302, 408, 429, 500, 503] {
        assert!(!failure(&api, status, b"{}").is_permanent(), "{status}");
    }
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("9"));
    let RefreshOutcome::Failed(e) = parse(&api, 503, &headers, b"") else {
        panic!()
    };
    assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));

    // Opting in to more permanent statuses, but 429/5xx stay transient.
    let api = json_api()
        .with_permanent_status(StatusCode::BAD_REQUEST)
        .with_permanent_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(failure(&api, 400, b"").is_permanent());
    assert!(!failure(&api, 429, b"").is_permanent());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_responses_never_panic(
        status in 100u16..=599,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let protocols: [&dyn RefreshProtocol; 2] =
            [&OAuth2Grant::refresh_token(endpoint()), &json_api()];
        for p in protocols {
            let _ = parse(p, status, &HeaderMap::new(), &body);
        }
    }

    #[test]
    fn json_shaped_responses_never_panic(
        key in prop::sample::select(vec![
            "access_token", "token_type", "expires_in", "refresh_token", "scope",
            "accessToken", "refreshToken", "expiresIn", "error", "error_description",
        ]),
        value in r#"(null|true|-?[0-9]{0,25}(\.[0-9]{0,5})?(e-?[0-9]{1,4})?|"[ -~]{0,30}"|\{\}|\[\])"#,
        status in prop::sample::select(vec![200u16, 400, 401, 403, 404, 429, 500]),
    ) {
        let body = format!(r#"{{"access_token":"a","accessToken":"a","{key}":{value}}}"#);
        let protocols: [&dyn RefreshProtocol; 2] =
            [&OAuth2Grant::refresh_token(endpoint()), &json_api()];
        for p in protocols {
            let _ = parse(p, status, &HeaderMap::new(), body.as_bytes());
        }
    }
}

#[test]
fn check_transport_refuses_plain_http_except_loopback_or_when_allowed() {
    use reauth_core::protocol::check_transport;
    let uri = |s: &str| s.parse::<http::Uri>().unwrap();
    for ok in [
        "https://auth.example.com/token",
        "HTTPS://auth.example.com/token",
        "http://127.0.0.1:9/token",
        "http://127.1.2.3/token",
        "http://localhost:8080/token",
        "http://[::1]:8080/token",
    ] {
        assert!(check_transport(&uri(ok), false).is_ok(), "{ok}");
    }
    for refused in [
        "http://auth.example.com/token",
        "HTTP://auth.example.com/token",
        "http://10.0.0.1/token",
        "http://localhost.evil.net/token",
    ] {
        let e = check_transport(&uri(refused), false).unwrap_err();
        assert!(e.is_permanent(), "{refused}");
        assert!(e.to_string().contains("plain http"), "{e}");
        assert!(check_transport(&uri(refused), true).is_ok(), "{refused}");
    }
}
