//! `challenge`: arbitrary `WWW-Authenticate` values into [`parse_challenges`],
//! [`bearer_challenge`] and [`should_refresh`]. The input is a list of field values, one
//! per line (`\n` or `\r\n`).
//!
//! Checked on every input, besides "no panic":
//! - **caps**: at most [`MAX_CHALLENGES`] challenges and [`MAX_PARAMS`] parameters, values
//!   over [`MAX_VALUE_LEN`] refused as `TooLong`, a syntax error points inside the value;
//! - **shape**: schemes and parameter names are non-empty tokens, names lower-cased, a
//!   token68 challenge has no parameters, values hold no control character but tab;
//! - **round trip**: writing the parsed challenges back in a canonical form (parameters
//!   quoted) and parsing that gives the same challenges;
//! - **classes only**: rotating every letter and digit of the value gives the same
//!   result with rotated text, or the same error: the parser decides on character classes
//!   alone, and its errors never show the value;
//! - **should_refresh**: false for every status but 401; for 401, true unless the first
//!   valid bearer challenge says `insufficient_scope` or `invalid_request`; and that
//!   challenge is the first one found by reading the first [`MAX_FIELDS`] fields in order.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, StatusCode};
use reauth_core::challenge::{
    bearer_challenge, parse_challenges, should_refresh, BearerChallenge, BearerError, Challenge,
    ChallengeError, MAX_CHALLENGES, MAX_FIELDS, MAX_PARAMS, MAX_VALUE_LEN,
};

/// Lines read from one input; a few more than [`MAX_FIELDS`] so the cap is exercised.
pub const MAX_LINES: usize = MAX_FIELDS + 4;

type Parts = (String, Option<String>, Vec<(String, String)>);

fn parts(c: &Challenge) -> Parts {
    (
        c.scheme().to_owned(),
        c.token68().map(str::to_owned),
        c.params().to_vec(),
    )
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// The challenges written back: `scheme`, `scheme token68` or
/// `scheme name="value", …`, joined by `, `.
pub fn canonical(list: &[Challenge]) -> String {
    list.iter()
        .map(|c| {
            let mut out = c.scheme().to_owned();
            if let Some(t) = c.token68() {
                out.push(' ');
                out.push_str(t);
            } else if !c.params().is_empty() {
                let params: Vec<String> = c
                    .params()
                    .iter()
                    .map(|(n, v)| {
                        let v = v.replace('\\', "\\\\").replace('"', "\\\"");
                        format!("{n}=\"{v}\"")
                    })
                    .collect();
                out.push(' ');
                out.push_str(&params.join(", "));
            }
            out
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_list(value: &str, list: &[Challenge]) {
    assert!(value.len() <= MAX_VALUE_LEN);
    assert!(list.len() <= MAX_CHALLENGES);
    let params: usize = list.iter().map(|c| c.params().len()).sum();
    assert!(params <= MAX_PARAMS);
    for c in list {
        assert!(is_token(c.scheme()), "scheme {:?}", c.scheme());
        if let Some(t) = c.token68() {
            assert!(c.params().is_empty());
            let body = t.trim_end_matches('=');
            assert!(!body.is_empty(), "token68 {t:?}");
            assert!(body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
        }
        for (name, v) in c.params() {
            assert!(is_token(name), "name {name:?}");
            assert_eq!(name, &name.to_ascii_lowercase());
            assert!(
                !v.chars().any(|ch| ch.is_ascii_control() && ch != '\t'),
                "value {v:?}"
            );
            assert!(c.param(&name.to_ascii_uppercase()).is_some());
        }
    }
}

/// Checks one field value.
pub fn check_value(value: &str) {
    let result = parse_challenges(value);
    match &result {
        Ok(list) => {
            check_list(value, list);
            let text = canonical(list);
            if text.len() <= MAX_VALUE_LEN {
                let again = parse_challenges(&text)
                    .unwrap_or_else(|e| panic!("canonical form {text:?} refused: {e}"));
                assert_eq!(
                    list.iter().map(parts).collect::<Vec<_>>(),
                    again.iter().map(parts).collect::<Vec<_>>(),
                    "round trip through {text:?}"
                );
            }
        }
        Err(ChallengeError::TooLong { limit }) => {
            assert_eq!(*limit, MAX_VALUE_LEN);
            assert!(value.len() > MAX_VALUE_LEN);
        }
        Err(ChallengeError::Syntax { position }) => assert!(*position <= value.len()),
        Err(_) => {}
    }
    // The result depends on character classes only.
    let rotated = crate::rotate_str(value);
    let again = parse_challenges(&rotated);
    match (&result, &again) {
        (Ok(a), Ok(b)) => {
            let a: Vec<Parts> = a
                .iter()
                .map(|c| {
                    let (s, t, p) = parts(c);
                    (
                        crate::rotate_str(&s),
                        t.map(|t| crate::rotate_str(&t)),
                        p.iter()
                            .map(|(n, v)| (crate::rotate_str(n), crate::rotate_str(v)))
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(a, b.iter().map(parts).collect::<Vec<_>>());
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert_eq!(format!("{a} {a:?}"), format!("{b} {b:?}"));
        }
        _ => panic!("rotation changed the verdict: {result:?} vs {again:?}"),
    }
}

fn first_bearer(headers: &HeaderMap) -> Option<BearerChallenge> {
    for value in headers.get_all(WWW_AUTHENTICATE).iter().take(MAX_FIELDS) {
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            continue;
        };
        let Ok(list) = parse_challenges(text) else {
            continue;
        };
        if let Some(b) = list.iter().find_map(BearerChallenge::from_challenge) {
            return Some(b);
        }
    }
    None
}

/// Checks the decisions over a whole header map.
pub fn check_headers(headers: &HeaderMap, extra_status: StatusCode) {
    let bearer = bearer_challenge(headers);
    assert_eq!(bearer, first_bearer(headers));
    if let Some(b) = &bearer {
        assert!(b.scopes().all(|s| !s.is_empty() && !s.contains(' ')));
    }
    let refuses = matches!(
        bearer.as_ref().and_then(BearerChallenge::error),
        Some(BearerError::InsufficientScope | BearerError::InvalidRequest)
    );
    assert_eq!(
        should_refresh(StatusCode::UNAUTHORIZED, headers),
        !refuses,
        "401 with {bearer:?}"
    );
    for status in [
        100, 200, 204, 302, 400, 402, 403, 404, 407, 419, 440, 498, 500, 503,
    ]
    .into_iter()
    .map(|s| StatusCode::from_u16(s).expect("valid"))
    .chain([extra_status])
    .filter(|s| *s != StatusCode::UNAUTHORIZED)
    {
        assert!(!should_refresh(status, headers), "HTTP {status} refreshes");
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(MAX_LINES) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Ok(text) = std::str::from_utf8(line) {
            check_value(text);
        }
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(WWW_AUTHENTICATE, v);
        }
    }
    let extra = u16::try_from(100 + data.len() % 900).expect("below 1000");
    check_headers(
        &headers,
        StatusCode::from_u16(extra).expect("100..=999 is valid"),
    );
}
