//! No type added by the codecs prints a secret: not `Debug`, not `Display`, not errors.

use http::{HeaderMap, StatusCode};
use reauth_core::oauth2::{parse_token_response, ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::{JsonRefreshProtocol, OAuth2Grant};
use reauth_core::{RefreshOutcome, RefreshProtocol, RefreshToken};
use std::time::SystemTime;

const SECRET: &str = "SUPER-SECRET-VALUE";

fn assert_clean(shown: &str) {
    assert!(!shown.contains(SECRET), "leaked: {shown}");
    assert!(!shown.contains("SUPER"), "leaked: {shown}");
}

fn all_auths() -> Vec<ClientAuth> {
    vec![
        ClientAuth::none(),
        ClientAuth::public("app"),
        ClientAuth::secret_basic("app", ClientSecret::new(SECRET)),
        ClientAuth::secret_post("app", ClientSecret::new(SECRET)),
    ]
}

#[test]
fn debug_of_credentials_and_endpoints_is_redacted() {
    let secret = ClientSecret::new(SECRET);
    assert_eq!(secret.secret(), SECRET);
    assert_clean(&format!("{secret:?} {secret:#?}"));
    for auth in all_auths() {
        let endpoint =
            TokenEndpoint::new("https://auth.example.com/t".parse().unwrap(), auth.clone())
                .unwrap();
        let grant = OAuth2Grant::refresh_token(endpoint.clone());
        let shown = format!("{auth:?} {endpoint:?} {grant:?} {grant:#?}");
        assert_clean(&shown);
        if auth.method() != reauth_core::oauth2::ClientAuthMethod::None {
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
    assert_clean(&format!(
        "{:?}",
        JsonRefreshProtocol::new("https://a.example/r".parse().unwrap())
    ));
}

#[test]
fn prepared_authorization_header_is_sensitive() {
    let endpoint = TokenEndpoint::new(
        "https://auth.example.com/t".parse().unwrap(),
        ClientAuth::secret_basic("app", ClientSecret::new(SECRET)),
    )
    .unwrap();
    let request = endpoint.refresh_token_request(&RefreshToken::new("r").unwrap());
    // Headers alone (what a logging middleware prints) hold no secret.
    let shown = format!("{:?}", request.headers());
    assert!(shown.contains("Sensitive"), "{shown}");
    assert!(!shown.contains("Basic"), "{shown}");
}

#[test]
fn outcomes_and_errors_never_show_token_text() {
    let bodies = [
        format!(
            r#"{{"access_token":"{SECRET}","refresh_token":"{SECRET}-R","token_type":"bearer"}}"#
        ),
        format!(r#"{{"access_token":"{SECRET} x"}}"#),
        format!(r#"{{"access_token":"{SECRET}","refresh_token":"{SECRET}\n"}}"#),
        format!(r#"{{"access_token":"{SECRET}","token_type":"{SECRET}"}}"#),
        format!(r#"{{"access_token":"{SECRET}","expires_in":"{SECRET}"}}"#),
        format!(r#"{{"access_token":"{SECRET}","scope":7}}"#),
        format!(r#"{{"access_token":"{SECRET}","access_token":"{SECRET}"}}"#),
        format!(r#"{{"access_token":"{SECRET}""#),
        format!(r#"["{SECRET}"]"#),
        format!(r#""{SECRET}""#),
    ];
    let api = JsonRefreshProtocol::new("https://a.example/r".parse().unwrap()).unwrap();
    for body in &bodies {
        for status in [200, 400, 401, 500] {
            let status = StatusCode::from_u16(status).unwrap();
            let outcome = parse_token_response(
                status,
                &HeaderMap::new(),
                body.as_bytes(),
                SystemTime::now(),
            );
            let camel = body
                .replace("access_token", "accessToken")
                .replace("refresh_token", "refreshToken");
            let json = api.parse_response(
                status,
                &HeaderMap::new(),
                camel.as_bytes(),
                SystemTime::now(),
            );
            for outcome in [outcome, json] {
                let shown = match &outcome {
                    RefreshOutcome::Failed(e) => format!("{outcome:?} {e}"),
                    _ => format!("{outcome:?}"),
                };
                assert_clean(&shown);
            }
        }
    }
}
