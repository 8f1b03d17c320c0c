//! The custom JSON refresh endpoint, `POST /auth/refresh`.

mod common;

use common::*;
use reauth_testkit::{ServerConfig, TestServer};

#[tokio::test]
async fn rotates_and_detects_reuse_like_the_oauth_endpoint() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        let (status, body) =
            status_json(json_refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(status, 200, "{body}");
        let rt2 = body["refreshToken"].as_str().unwrap().to_owned();
        let at2 = body["accessToken"].as_str().unwrap();
        assert_ne!(rt2, login.refresh_token);
        assert_eq!(get_item(&c, &server, at2).await.status(), 200);

        // The families are shared with /oauth/token: rotate there, replay here.
        assert_eq!(refresh(&c, &server, &rt2).await.status(), 200);
        let (status, body) = status_json(json_refresh(&c, &server, &rt2).await).await;
        assert_eq!(status, 401);
        assert_eq!(body, serde_json::json!({"error": "invalid_refresh_token"}));
        let s = server.stats();
        assert_eq!(s.reuse_detections, 1);
        assert_eq!((s.json_refresh_calls, s.oauth_token_calls), (2, 1));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn bad_tokens_and_bad_bodies() {
    bounded(async {
        let server = server().await;
        let c = h2();
        let (status, body) = status_json(json_refresh(&c, &server, "rt_unknown").await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_refresh_token"))
        );
        for bad in [
            "",
            "{",
            "[]",
            r#"{"refreshToken": 5}"#,
            r#"{"refresh_token": "x"}"#,
        ] {
            let resp = c
                .post(server.json_refresh_url())
                .body(bad)
                .send()
                .await
                .unwrap();
            let (status, body) = status_json(resp).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_request")),
                "{bad}"
            );
        }
        assert_eq!(
            c.get(server.json_refresh_url())
                .send()
                .await
                .unwrap()
                .status(),
            405
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn without_rotation_the_same_refresh_token_comes_back() {
    bounded(async {
        let server = TestServer::start(ServerConfig::default().with_rotation(false))
            .await
            .unwrap();
        let c = h1();
        let login = server.issue_tokens();
        let (_, body) = status_json(json_refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(body["refreshToken"], login.refresh_token.as_str());
        server.shutdown().await;
    })
    .await
}
