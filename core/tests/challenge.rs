//! RFC 9110 section 11.6.1 challenge parsing and RFC 6750 section 3 bearer challenges.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use reauth_core::challenge::{
    bearer_challenge, parse_challenges, should_refresh, BearerChallenge, BearerError,
    ChallengeError, MAX_VALUE_LEN,
};
use reauth_core::RefreshTrigger;

fn headers(values: &[&[u8]]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(WWW_AUTHENTICATE, HeaderValue::from_bytes(v).unwrap());
    }
    h
}

fn bearer(value: &str) -> Option<BearerChallenge> {
    bearer_challenge(&headers(&[value.as_bytes()]))
}

fn params(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    parse_challenges(value)
        .unwrap()
        .into_iter()
        .map(|c| (c.scheme().to_owned(), c.params().to_vec()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

// ---- RFC 6750 section 3 examples ---------------------------------------------------

#[test]
fn rfc6750_section3_examples() {
    let b = bearer(r#"Bearer realm="example""#).unwrap();
    assert_eq!(b.realm(), Some("example"));
    assert_eq!(b.error(), None);

    let b = bearer(
        r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
    )
    .unwrap();
    assert_eq!(b.realm(), Some("example"));
    assert_eq!(b.error(), Some(&BearerError::InvalidToken));
    assert_eq!(b.error_description(), Some("The access token expired"));
    assert_eq!(b.error_uri(), None);
    assert_eq!(b.scope(), None);
}

#[test]
fn rfc6750_section3_1_codes_and_scope() {
    let b = bearer(
        r#"Bearer realm="example", error="insufficient_scope", scope="read write  admin", error_uri="https://example.com/help""#,
    )
    .unwrap();
    assert_eq!(b.error(), Some(&BearerError::InsufficientScope));
    assert_eq!(b.scopes().collect::<Vec<_>>(), ["read", "write", "admin"]);
    assert_eq!(b.error_uri(), Some("https://example.com/help"));
    assert_eq!(
        bearer(r#"Bearer error="invalid_request""#).unwrap().error(),
        Some(&BearerError::InvalidRequest)
    );
    let other = bearer(r#"Bearer error="use_dpop_nonce""#).unwrap();
    assert_eq!(
        other.error(),
        Some(&BearerError::Other("use_dpop_nonce".into()))
    );
    assert_eq!(other.error().unwrap().as_str(), "use_dpop_nonce");
    assert_eq!(
        BearerError::InsufficientScope.as_str(),
        "insufficient_scope"
    );
}

// ---- RFC 9110 section 11.6.1 grammar -------------------------------------------------

#[test]
fn rfc9110_example_with_two_challenges() {
    assert_eq!(
        params(r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#),
        vec![
            (
                "Newauth".to_string(),
                pairs(&[
                    ("realm", "apps"),
                    ("type", "1"),
                    ("title", r#"Login to "apps""#)
                ])
            ),
            ("Basic".to_string(), pairs(&[("realm", "simple")])),
        ]
    );
}

#[test]
fn token68_and_bare_schemes() {
    let list = parse_challenges("Basic dXNlcjpwYXNz==, Negotiate, NTLM ,Bearer").unwrap();
    let schemes: Vec<_> = list.iter().map(|c| c.scheme()).collect();
    assert_eq!(schemes, ["Basic", "Negotiate", "NTLM", "Bearer"]);
    assert_eq!(list[0].token68(), Some("dXNlcjpwYXNz=="));
    assert_eq!(list[1].token68(), None);
    assert!(list[3].params().is_empty());
    // A token68 then a parameter list in the next challenge.
    let list = parse_challenges(r#"Negotiate a/b+c=, Bearer realm="x""#).unwrap();
    assert_eq!(list[0].token68(), Some("a/b+c="));
    assert_eq!(list[1].param("realm"), Some("x"));
    // A lone name (with or without '=') is a token68 by the grammar.
    assert_eq!(
        parse_challenges("Bearer realm=").unwrap()[0].token68(),
        Some("realm=")
    );
    assert_eq!(
        parse_challenges("Bearer realm").unwrap()[0].token68(),
        Some("realm")
    );
    // The token68 form is not a valid bearer challenge (RFC 6750 uses auth-params).
    assert_eq!(bearer("Bearer abcdef=="), None);
}

#[test]
fn case_whitespace_and_empty_elements() {
    let b = bearer("  ,, bEaReR   REALM = \"x\" ,\t,  Error=insufficient_scope  , ").unwrap();
    assert_eq!(b.realm(), Some("x"));
    assert_eq!(b.error(), Some(&BearerError::InsufficientScope));
    // Codes are matched case-insensitively.
    assert_eq!(
        bearer(r#"Bearer error="Insufficient_Scope""#)
            .unwrap()
            .error(),
        Some(&BearerError::InsufficientScope)
    );
    assert_eq!(parse_challenges("").unwrap(), vec![]);
    assert_eq!(parse_challenges(" , ,,, ").unwrap(), vec![]);
    let list = parse_challenges("Bearer realm=x, charset=UTF-8").unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].param("CHARSET"), Some("UTF-8"));
}

#[test]
fn quoted_strings_unescape() {
    let list = parse_challenges(r#"X a="\"q\" \\ \z", b="", c="tab	in", d="ünï""#).unwrap();
    let c = &list[0];
    assert_eq!(c.param("a"), Some(r#""q" \ z"#));
    assert_eq!(c.param("b"), Some(""));
    assert_eq!(c.param("c"), Some("tab\tin"));
    assert_eq!(c.param("d"), Some("ünï"));
}

#[test]
fn several_header_fields_and_challenges() {
    let h = headers(&[
        br#"Basic realm="legacy""#,
        br#"Negotiate, Bearer realm="api", error="insufficient_scope""#,
    ]);
    let b = bearer_challenge(&h).unwrap();
    assert_eq!(b.realm(), Some("api"));
    assert!(!should_refresh(StatusCode::UNAUTHORIZED, &h));
    // A broken field does not hide a good one.
    let h = headers(&[
        br#"Bearer realm="unterminated"#,
        br#"Bearer error="insufficient_scope""#,
    ]);
    assert_eq!(
        bearer_challenge(&h).unwrap().error(),
        Some(&BearerError::InsufficientScope)
    );
    // Nor does a field that is not UTF-8.
    let h = headers(&[
        b"Bearer realm=\"\xff\"",
        br#"Bearer error="invalid_request""#,
    ]);
    assert_eq!(
        bearer_challenge(&h).unwrap().error(),
        Some(&BearerError::InvalidRequest)
    );
}

#[test]
fn duplicate_bearer_attributes_void_the_challenge() {
    // RFC 6750 section 3: each attribute at most once. Which copy to believe would be a
    // guess, so the challenge is ignored, and a 401 then refreshes.
    let value = r#"Bearer error="insufficient_scope", error="invalid_token""#;
    assert_eq!(bearer(value), None);
    assert!(should_refresh(
        StatusCode::UNAUTHORIZED,
        &headers(&[value.as_bytes()])
    ));
    assert_eq!(bearer(r#"Bearer realm="a", REALM="b""#), None);
    // Unknown attributes may repeat and are ignored.
    assert!(bearer(r#"Bearer x=1, x=2, realm="a""#).is_some());
    // The generic parser keeps every copy.
    let list = parse_challenges(r#"Bearer realm="a", realm="b""#).unwrap();
    assert_eq!(list[0].params().len(), 2);
    assert_eq!(list[0].param("realm"), Some("a"));
}

// ---- Garbage -----------------------------------------------------------------------

#[test]
fn garbage_is_an_error_not_a_panic() {
    for garbage in [
        r#"Bearer realm="unterminated"#,
        r#"Bearer realm="ends with backslash\"#,
        r#"Bearer realm="x"y"#,
        "Bearer =x",
        r#"Bearer "x""#,
        "Bearer realm=\"a\u{1}b\"",
        "Bearer realm=\"a\\\u{1}b\"",
        "Bearer realm=x y=z",
        "Bearer realm=x;y=z",
        "=",
        "\"",
        "\\",
        "Bearer, =",
        "Bearer realm=\"x\", ,=",
        "Bearer\u{1}",
        "Bearer\"x\"",
        "Bäarer realm=x",
        "Bearer realm=x, Basic =",
        "Bearer realm=x, foo=\"",
    ] {
        assert!(parse_challenges(garbage).is_err(), "{garbage:?}");
    }
    assert_eq!(
        parse_challenges(r#"Bearer realm="x"#),
        Err(ChallengeError::Syntax { position: 13 })
    );
}

#[test]
fn size_and_count_caps() {
    let big = format!(r#"Bearer realm="{}""#, "a".repeat(100 * 1024));
    assert_eq!(
        parse_challenges(&big),
        Err(ChallengeError::TooLong {
            limit: MAX_VALUE_LEN
        })
    );
    assert!(should_refresh(
        StatusCode::UNAUTHORIZED,
        &headers(&[big.as_bytes()])
    ));
    let many_params = (0..65)
        .map(|i| format!("p{i}=v"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        parse_challenges(&format!("X {many_params}")),
        Err(ChallengeError::TooMany)
    );
    let many_challenges = vec!["Basic"; 17].join(", ");
    assert_eq!(
        parse_challenges(&many_challenges),
        Err(ChallengeError::TooMany)
    );
    assert_eq!(
        parse_challenges(&vec!["Basic"; 16].join(", "))
            .unwrap()
            .len(),
        16
    );
    // Only commas, up to the cap: fast, empty.
    assert_eq!(
        parse_challenges(&",".repeat(MAX_VALUE_LEN)).unwrap(),
        vec![]
    );
    assert!(parse_challenges(&"\\".repeat(MAX_VALUE_LEN)).is_err());
    assert!(parse_challenges(&"\"".repeat(MAX_VALUE_LEN)).is_err());
    assert!(parse_challenges(&format!("X a=\"{}", "\\\"".repeat(8000))).is_err());
}

// ---- should_refresh ----------------------------------------------------------------

#[test]
fn should_refresh_table() {
    let yes = [
        &[][..],
        &[br#"Bearer realm="example""#.as_slice()],
        &[br#"Bearer error="invalid_token""#.as_slice()],
        &[br#"Bearer error="something_else""#.as_slice()],
        &[br#"Basic realm="only basic""#.as_slice()],
        &[br#"Bearer realm="unterminated"#.as_slice()],
        &[b"\xff\xfe garbage".as_slice()],
    ];
    for h in yes {
        assert!(
            should_refresh(StatusCode::UNAUTHORIZED, &headers(h)),
            "{h:?}"
        );
    }
    for code in ["insufficient_scope", "invalid_request"] {
        let value = format!(r#"Bearer realm="example", error="{code}""#);
        assert!(!should_refresh(
            StatusCode::UNAUTHORIZED,
            &headers(&[value.as_bytes()])
        ));
    }
    // 403 never refreshes, whatever it says; nor does anything else.
    for status in [403, 200, 400, 404, 407, 500, 503] {
        let status = StatusCode::from_u16(status).unwrap();
        for value in [
            &br#"Bearer error="invalid_token""#[..],
            b"Bearer error=\"insufficient_scope\"",
        ] {
            assert!(!should_refresh(status, &headers(&[value])), "{status}");
        }
        assert!(!should_refresh(status, &HeaderMap::new()));
    }
    // The default trigger is this function.
    let h = headers(&[br#"Bearer error="insufficient_scope""#]);
    assert!(!RefreshTrigger::default().fires(StatusCode::UNAUTHORIZED, &h));
    assert!(RefreshTrigger::default().fires(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
}

#[test]
fn the_bare_403_preset_refreshes_on_a_403_that_gives_no_other_reason() {
    let bare = RefreshTrigger::Rfc6750OrBare403;
    assert_eq!(format!("{bare:?}"), "Rfc6750OrBare403");
    let forbidden = StatusCode::FORBIDDEN;
    // What django-oauth-toolkit's ProtectedResourceView sends: no challenge at all.
    assert!(bare.fires(forbidden, &HeaderMap::new()));
    assert!(!RefreshTrigger::default().fires(forbidden, &HeaderMap::new()));
    let refreshes: &[&[&[u8]]] = &[
        // Other schemes, or a field that does not parse: still no bearer reason.
        &[b"Basic realm=\"x\""],
        // Bearer's words under another scheme are no Bearer challenge (found by the
        // property below, which once said otherwise).
        &[b"Basic error=\"insufficient_scope\""],
        &[b"Negotiate"],
        &[b"\xff\xfe garbage"],
        &[b"Bearer error=\"invalid_token\""],
        &[b"bearer realm=\"r\", ERROR=\"Invalid_Token\""],
        &[b"Basic realm=\"x\"", b"Bearer error=\"invalid_token\""],
    ];
    for h in refreshes {
        assert!(bare.fires(forbidden, &headers(h)), "{h:?}");
    }
    let never: &[&[&[u8]]] = &[
        &[b"Bearer error=\"insufficient_scope\", scope=\"admin\""],
        &[b"Bearer realm=\"r\", error=\"INSUFFICIENT_SCOPE\""],
        &[b"Bearer error=\"invalid_request\""],
        &[b"Bearer error=\"quota_exceeded\""],
        // A bearer challenge without an error: the server spoke RFC 6750 and did not
        // say the token was bad.
        &[b"Bearer realm=\"r\""],
        &[b"Basic realm=\"x\"", b"Bearer error=\"insufficient_scope\""],
    ];
    for h in never {
        assert!(!bare.fires(forbidden, &headers(h)), "{h:?}");
    }
    // Every other status: exactly as RFC 6750.
    let samples: &[&[&[u8]]] = &[
        &[],
        &[b"Bearer error=\"invalid_token\""],
        &[b"Bearer error=\"insufficient_scope\""],
        &[b"Bearer error=\"invalid_request\""],
        &[b"Basic realm=\"x\""],
    ];
    for status in [200, 400, 401, 404, 407, 429, 500, 503] {
        let status = StatusCode::from_u16(status).unwrap();
        for h in samples {
            assert_eq!(
                bare.fires(status, &headers(h)),
                RefreshTrigger::Rfc6750.fires(status, &headers(h)),
                "{status} {h:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(value in "[ -~\t]{0,200}") {
        let _ = parse_challenges(&value);
    }

    #[test]
    fn challenge_alphabet_never_panics(value in "[Bearrlm =\",\\\\a-c\t]{0,120}") {
        if let Ok(list) = parse_challenges(&value) {
            for c in &list {
                let _ = BearerChallenge::from_challenge(c);
            }
        }
    }

    #[test]
    fn the_bare_403_preset_agrees_with_rfc6750_except_on_403(
        status in 100u16..600,
        value in "(Bearer|Basic|bearer)( error=\"(invalid_token|insufficient_scope|invalid_request|x)\")?",
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        let h = headers(&[value.as_bytes()]);
        let bare = RefreshTrigger::Rfc6750OrBare403.fires(status, &h);
        if status == StatusCode::FORBIDDEN {
            let bearer = bearer_challenge(&h);
            prop_assert_eq!(
                bare,
                bearer.as_ref().is_none_or(|c| c.error() == Some(&BearerError::InvalidToken))
            );
            // A Bearer challenge naming `insufficient_scope` never refreshes; the same
            // words under another scheme are no Bearer challenge, so the 403 is bare.
            if bearer.is_some() && value.contains("insufficient_scope") {
                prop_assert!(!bare);
            }
        } else {
            prop_assert_eq!(bare, RefreshTrigger::Rfc6750.fires(status, &h));
        }
    }

    #[test]
    fn arbitrary_header_bytes_never_panic(bytes in proptest::collection::vec(32u8..=255, 0..200)) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut h = HeaderMap::new();
            h.insert(WWW_AUTHENTICATE, value);
            let _ = should_refresh(StatusCode::UNAUTHORIZED, &h);
            let _ = RefreshTrigger::Rfc6750OrBare403.fires(StatusCode::FORBIDDEN, &h);
        }
    }
}

#[test]
fn the_grpc_preset_refreshes_on_unauthenticated_and_otherwise_as_rfc6750() {
    use http::header::WWW_AUTHENTICATE;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use reauth_core::RefreshTrigger;
    let grpc = |status: Option<&'static str>| {
        let mut h = HeaderMap::new();
        if let Some(s) = status {
            h.insert("grpc-status", HeaderValue::from_static(s));
        }
        h
    };
    let t = RefreshTrigger::Grpc;
    // Trailers-only UNAUTHENTICATED, whatever the HTTP status.
    assert!(t.fires(StatusCode::OK, &grpc(Some("16"))));
    assert!(t.fires(StatusCode::OK, &grpc(Some(" 16 "))));
    // Other gRPC statuses, PERMISSION_DENIED included, and lookalikes: no.
    for other in ["0", "7", "160", "1", "", "sixteen"] {
        assert!(!t.fires(StatusCode::OK, &grpc(Some(other))), "{other:?}");
    }
    assert!(!t.fires(StatusCode::OK, &grpc(None)));
    // Plain HTTP on the same client: RFC 6750.
    assert!(t.fires(StatusCode::UNAUTHORIZED, &grpc(None)));
    let mut scope = grpc(None);
    scope.insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="insufficient_scope""#),
    );
    assert!(!t.fires(StatusCode::UNAUTHORIZED, &scope));
    assert!(!t.fires(StatusCode::FORBIDDEN, &grpc(None)));
}
