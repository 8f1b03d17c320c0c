//! `/oauth/token`: grants, client authentication, rotation, reuse detection, errors.

mod common;

use std::time::Duration;

use common::*;
use reauth_testkit::{ServerConfig, TestServer};

#[tokio::test]
async fn refresh_grant_rotates_and_new_access_token_works() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        let resp = refresh(&c, &server, &login.refresh_token).await;
        assert_eq!(header(&resp, "cache-control"), "no-store");
        assert_eq!(header(&resp, "pragma"), "no-cache");
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "read write");
        let rt2 = body["refresh_token"].as_str().unwrap();
        assert_ne!(rt2, login.refresh_token);
        let at2 = body["access_token"].as_str().unwrap();
        assert_ne!(at2, login.access_token);
        assert_eq!(server.family_of(rt2), Some(login.family));
        assert_eq!(get_item(&c, &server, at2).await.status(), 200);
        // The old access token stays valid until it expires: rotation is about refresh tokens.
        assert_eq!(
            get_item(&c, &server, &login.access_token).await.status(),
            200
        );
        // The rotated token chain goes on.
        let (status, _) = status_json(refresh(&c, &server, rt2).await).await;
        assert_eq!(status, 200);
        let s = server.stats();
        assert_eq!((s.token_calls, s.token_ok, s.refresh_grants), (2, 2, 2));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_family() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        let (_, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
        let at2 = body["access_token"].as_str().unwrap().to_owned();

        // Replay of the rotated token: theft assumed, whole family revoked.
        let (status, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .contains("reuse"));
        // The legitimate successor is dead too, and so are the family's access tokens.
        let (status, body) = status_json(refresh(&c, &server, &rt2).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        for at in [&login.access_token, &at2] {
            let resp = get_item(&c, &server, at).await;
            assert_eq!(resp.status(), 401);
            assert!(header(&resp, "www-authenticate").contains("revoked"));
        }
        // Other families are untouched.
        let other = server.issue_tokens();
        assert_eq!(
            status_json(refresh(&c, &server, &other.refresh_token).await)
                .await
                .0,
            200
        );

        let s = server.stats();
        assert_eq!(s.reuse_detections, 1);
        assert_eq!(s.token_invalid_grant, 2);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn reuse_inside_grace_window_is_tolerated_and_converges() {
    bounded(async {
        let config = ServerConfig::default().with_reuse_grace(Duration::from_secs(60));
        let server = TestServer::start(config).await.unwrap();
        let c = h2();
        let login = server.issue_tokens();
        let (_, first) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        let (status, second) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(status, 200, "{second}");
        // Both racers end up holding the same (current) refresh token.
        assert_eq!(first["refresh_token"], second["refresh_token"]);
        assert_ne!(first["access_token"], second["access_token"]);
        let s = server.stats();
        assert_eq!((s.grace_reuses, s.reuse_detections), (1, 0));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn reuse_after_grace_window_is_detected() {
    bounded(async {
        let config = ServerConfig::default().with_reuse_grace(Duration::from_millis(50));
        let server = TestServer::start(config).await.unwrap();
        let c = h1();
        let login = server.issue_tokens();
        assert_eq!(
            status_json(refresh(&c, &server, &login.refresh_token).await)
                .await
                .0,
            200
        );
        // Time must pass here: the window is measured by the server's clock.
        tokio::time::sleep(Duration::from_millis(120)).await;
        let (status, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(server.stats().reuse_detections, 1);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn without_rotation_the_refresh_token_is_kept() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default().with_rotation(false))
            .await
            .unwrap();
        let c = h1();
        let login = server.issue_tokens();
        for _ in 0..3 {
            let (status, body) =
                status_json(refresh(&c, &server, &login.refresh_token).await).await;
            assert_eq!(status, 200);
            assert!(body.get("refresh_token").is_none(), "{body}");
        }
        assert_eq!(server.stats().reuse_detections, 0);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn unknown_and_revoked_refresh_tokens_are_invalid_grant() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let (status, body) = status_json(refresh(&c, &server, "rt_nope").await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );

        let login = server.issue_tokens();
        assert!(server.revoke_family(&login.refresh_token));
        assert!(!server.revoke_family(&login), "already revoked");
        let (status, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(server.stats().reuse_detections, 0);

        let by_id = server.issue_tokens();
        assert!(server.revoke_family(by_id.family));
        assert_eq!(
            get_item(&c, &server, &by_id.access_token).await.status(),
            401
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn client_credentials_grant() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default().with_scope("read write admin"))
            .await
            .unwrap();
        let c = h1();
        let (status, body) = status_json(
            token_request(&c, &server, "grant_type=client_credentials")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "RFC 6749 §4.4.3");
        assert_eq!(body["scope"], "read write admin");
        let at = body["access_token"].as_str().unwrap();
        assert_eq!(get_item(&c, &server, at).await.status(), 200);

        let narrowed = token_request(&c, &server, "grant_type=client_credentials&scope=read")
            .send()
            .await
            .unwrap();
        let (status, body) = status_json(narrowed).await;
        assert_eq!((status, body["scope"].as_str()), (200, Some("read")));
        let at = body["access_token"].as_str().unwrap();
        let scoped = c
            .get(server.api_url("scoped"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap();
        assert_eq!(scoped.status(), 403, "a narrowed token has no admin");

        let wider = token_request(&c, &server, "grant_type=client_credentials&scope=root")
            .send()
            .await
            .unwrap();
        let (status, body) = status_json(wider).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope"))
        );
        let s = server.stats();
        assert_eq!(
            (s.client_credentials_grants, s.token_invalid_request),
            (2, 1)
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn client_authentication_variants() {
    bounded(async {
        // Special characters: Basic must carry them form-urlencoded (RFC 6749 §2.3.1).
        let config = ServerConfig::default().with_client("app:1", Some("p@ss w+rd"));
        let server = TestServer::start(config).await.unwrap();
        let c = h1();
        let post = |body: String| {
            c.post(server.token_url())
                .header("content-type", FORM)
                .body(body)
        };
        let grant = "grant_type=client_credentials";

        let ok = post(grant.into()).basic_auth("app%3A1", Some("p%40ss+w%2Brd"));
        assert_eq!(ok.send().await.unwrap().status(), 200);

        let ok = post(format!(
            "{grant}&client_id=app%3A1&client_secret=p%40ss+w%2Brd"
        ));
        assert_eq!(ok.send().await.unwrap().status(), 200);

        let failures = [
            post(grant.into()),
            post(grant.into()).basic_auth("app%3A1", Some("wrong")),
            post(grant.into()).basic_auth("other", Some("p%40ss+w%2Brd")),
            post(format!("{grant}&client_id=app%3A1&client_secret=wrong")),
            post(format!("{grant}&client_id=app%3A1")),
            post(grant.into()).header("authorization", "Basic !!!"),
        ];
        for req in failures {
            let resp = req.send().await.unwrap();
            assert_eq!(
                header(&resp, "www-authenticate"),
                "Basic realm=\"reauth-testkit\""
            );
            let (status, body) = status_json(resp).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_client")),
                "{body}"
            );
        }

        // Two methods at once is a malformed request (RFC 6749 §2.3).
        let both = post(format!("{grant}&client_secret=p%40ss+w%2Brd"))
            .basic_auth("app%3A1", Some("p%40ss+w%2Brd"));
        let (status, body) = status_json(both.send().await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request"))
        );

        let s = server.stats();
        assert_eq!(
            (s.token_ok, s.token_invalid_client, s.token_invalid_request),
            (2, 6, 1)
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn public_client_needs_no_secret() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default().with_client("mobile", None))
            .await
            .unwrap();
        let c = h1();
        let login = server.issue_tokens();
        let body = format!(
            "grant_type=refresh_token&client_id=mobile&refresh_token={}",
            login.refresh_token
        );
        let resp = c
            .post(server.token_url())
            .header("content-type", FORM)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = c
            .post(server.token_url())
            .header("content-type", FORM)
            .body("grant_type=client_credentials&client_id=someone-else")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn malformed_requests_get_400_not_a_crash() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (FORM, b"".to_vec(), "invalid_request"),
            (
                FORM,
                b"grant_type=password&username=a&password=b".to_vec(),
                "unsupported_grant_type",
            ),
            (
                FORM,
                b"grant_type=refresh_token".to_vec(),
                "invalid_request",
            ),
            (
                FORM,
                b"grant_type=client_credentials&grant_type=refresh_token".to_vec(),
                "invalid_request",
            ),
            (
                FORM,
                vec![0xff, 0xfe, b'=', 0x00, b'&', b'%', b'z'],
                "invalid_request",
            ),
            (
                "application/json",
                br#"{"grant_type":"client_credentials"}"#.to_vec(),
                "invalid_request",
            ),
        ];
        for (content_type, body, error) in cases {
            let resp = c
                .post(server.token_url())
                .basic_auth("reauth-test", Some("s3cret"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, json) = status_json(resp).await;
            assert_eq!(
                (status, json["error"].as_str()),
                (400, Some(error)),
                "{json}"
            );
        }
        // Oversized request body.
        let huge = format!(
            "grant_type=refresh_token&refresh_token={}&pad={}",
            login.refresh_token,
            "x".repeat(100_000)
        );
        let (status, _) =
            status_json(token_request(&c, &server, &huge).send().await.unwrap()).await;
        assert_eq!(status, 413);
        // Wrong method.
        let resp = c.get(server.token_url()).send().await.unwrap();
        assert_eq!(
            (resp.status().as_u16(), header(&resp, "allow")),
            (405, "POST".into())
        );
        // The token survived all of that.
        assert_eq!(
            status_json(refresh(&c, &server, &login.refresh_token).await)
                .await
                .0,
            200
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn sub_second_lifetime_is_rounded_up_and_enforced() {
    bounded(async {
        let config = ServerConfig::default().with_access_token_lifetime(Duration::ZERO);
        let server = TestServer::start(config).await.unwrap();
        let c = h1();
        let login = server.issue_tokens();
        assert_eq!(login.expires_in, 0);
        let resp = get_item(&c, &server, &login.access_token).await;
        assert_eq!(resp.status(), 401);
        assert!(header(&resp, "www-authenticate").contains("expired"));
        server.shutdown().await;

        let config =
            ServerConfig::default().with_access_token_lifetime(Duration::from_millis(1500));
        let server = TestServer::start(config).await.unwrap();
        let (_, body) =
            status_json(refresh(&c, &server, &server.issue_tokens().refresh_token).await).await;
        assert_eq!(body["expires_in"], 2);
        server.shutdown().await;
    })
    .await
}
