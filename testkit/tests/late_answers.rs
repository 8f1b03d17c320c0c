//! The `RotateThen*` faults: the server rotates, the client never (or late) hears of it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reauth_testkit::{FamilyId, Fault, ServerConfig, TestServer};

fn refresh_body(rt: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={rt}")
}

/// The server rotated `old` away: the current token (which the client may never have
/// seen) works, and a replay of `old` afterwards revokes the whole family.
async fn new_works_then_old_is_reuse(
    c: &reqwest::Client,
    server: &TestServer,
    family: FamilyId,
    old: &str,
) {
    let new = server
        .current_refresh_token(family)
        .expect("the family has a current refresh token");
    assert_ne!(new, old, "the server rotated");
    let reuses_before = server.stats().reuse_detections;

    let (status, body) = status_json(refresh(c, server, &new).await).await;
    assert_eq!(status, 200, "{body}");
    let newer = body["refresh_token"].as_str().unwrap().to_owned();

    let (status, body) = status_json(refresh(c, server, old).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("reuse"));
    assert_eq!(server.stats().reuse_detections, reuses_before + 1);
    assert_eq!(server.current_refresh_token(family), None, "family revoked");
    assert_eq!(refresh(c, server, &newer).await.status(), 400);
}

#[tokio::test]
async fn rotate_then_delay_answers_late_with_the_rotated_tokens() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        let delay = Duration::from_millis(300);
        server.push_fault(Fault::RotateThenDelay(delay));
        let started = Instant::now();
        let (status, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert!(started.elapsed() >= delay);
        assert_eq!(status, 200, "{body}");
        let current = server.current_refresh_token(login.family);
        assert_eq!(body["refresh_token"].as_str(), current.as_deref());
        let s = server.stats();
        assert_eq!(
            (
                s.faults("rotate_then_delay"),
                s.token_ok,
                s.answers_withheld
            ),
            (1, 1, 0)
        );
        new_works_then_old_is_reuse(&c, &server, login.family, &login.refresh_token).await;
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn client_giving_up_during_rotate_delay_has_lost_the_new_token() {
    bounded(async {
        let server = server().await;
        let c = h2();
        let login = server.issue_tokens();
        server.push_fault(Fault::RotateThenDelay(Duration::from_secs(3600)));
        let pending =
            tokio::spawn(token_request(&c, &server, &refresh_body(&login.refresh_token)).send());
        eventually(|| server.stats().refresh_grants == 1).await;
        pending.abort();
        assert!(pending.await.unwrap_err().is_cancelled());
        new_works_then_old_is_reuse(&c, &server, login.family, &login.refresh_token).await;
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn rotate_then_drop_gives_no_response_over_both_protocols() {
    bounded(async {
        let server = server().await;
        for (n, c) in [h1(), h2()].into_iter().enumerate() {
            let login = server.issue_tokens();
            server.push_fault(Fault::RotateThenDrop);
            let err = token_request(&c, &server, &refresh_body(&login.refresh_token))
                .send()
                .await
                .unwrap_err();
            assert!(!err.is_status() && !err.is_timeout(), "{err}");
            let s = server.stats();
            assert_eq!(s.answers_withheld, n as u64 + 1);
            assert_eq!(s.faults("rotate_then_drop"), n as u64 + 1);
            new_works_then_old_is_reuse(&c, &server, login.family, &login.refresh_token).await;
        }
        assert_eq!(server.stats().reuse_detections, 2);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn rotate_then_hang_ends_when_the_client_gives_up() {
    bounded(async {
        let server = server().await;
        for c in [h1(), h2()] {
            let login = server.issue_tokens();
            server.push_fault(Fault::RotateThenHang);
            let pending = tokio::spawn(
                token_request(&c, &server, &refresh_body(&login.refresh_token)).send(),
            );
            // The gauge goes up only after the rotation.
            eventually(|| server.stats().hangs_in_flight == 1).await;
            pending.abort();
            eventually(|| server.stats().hangs_in_flight == 0).await;
            new_works_then_old_is_reuse(&c, &server, login.family, &login.refresh_token).await;
        }
        let s = server.stats();
        assert_eq!((s.faults("rotate_then_hang"), s.answers_withheld), (2, 2));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn rotate_then_hang_ends_at_shutdown() {
    bounded(async {
        let server = server().await;
        let login = server.issue_tokens();
        server.push_fault(Fault::RotateThenHang);
        let pending =
            tokio::spawn(token_request(&h2(), &server, &refresh_body(&login.refresh_token)).send());
        eventually(|| server.stats().hangs_in_flight == 1).await;
        assert_ne!(
            server.current_refresh_token(login.family).as_deref(),
            Some(login.refresh_token.as_str())
        );
        server.shutdown().await;
        assert!(pending.await.unwrap().is_err(), "no answer, not a late one");
    })
    .await
}

#[tokio::test]
async fn late_answer_faults_apply_to_the_json_endpoint() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        server.push_fault(Fault::RotateThenDrop);
        let err = c
            .post(server.json_refresh_url())
            .json(&serde_json::json!({ "refreshToken": login.refresh_token }))
            .send()
            .await
            .unwrap_err();
        assert!(!err.is_status(), "{err}");
        let new = server.current_refresh_token(login.family).unwrap();
        assert_ne!(new, login.refresh_token);

        server.push_fault(Fault::RotateThenDelay(Duration::from_millis(100)));
        let (status, body) = status_json(json_refresh(&c, &server, &new).await).await;
        assert_eq!(status, 200, "{body}");
        let newer = server.current_refresh_token(login.family).unwrap();
        assert_eq!(body["refreshToken"].as_str(), Some(newer.as_str()));

        let (status, body) =
            status_json(json_refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_refresh_token"))
        );
        let s = server.stats();
        assert_eq!((s.reuse_detections, s.json_refresh_calls), (1, 3));
        assert_eq!(s.answers_withheld, 1);
        assert_eq!(server.current_refresh_token(login.family), None);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn late_answer_faults_issue_client_credentials_tokens() {
    bounded(async {
        let server = server().await;
        let c = h1();
        server.push_fault(Fault::RotateThenDrop);
        let err = token_request(&c, &server, "grant_type=client_credentials")
            .send()
            .await
            .unwrap_err();
        assert!(!err.is_status(), "{err}");
        let s = server.stats();
        assert_eq!(
            (s.client_credentials_grants, s.token_ok, s.answers_withheld),
            (1, 1, 1)
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn grace_window_lets_the_old_token_recover_a_lost_answer() {
    bounded(async {
        let config = ServerConfig::default().with_reuse_grace(Duration::from_secs(60));
        let server = TestServer::start(config).await.unwrap();
        let c = h2();
        let login = server.issue_tokens();
        server.push_fault(Fault::RotateThenDrop);
        assert!(
            token_request(&c, &server, &refresh_body(&login.refresh_token))
                .send()
                .await
                .is_err()
        );
        let lost = server.current_refresh_token(login.family).unwrap();
        assert_ne!(lost, login.refresh_token);

        // The retry with the old token is tolerated and hands out the token the client lost.
        let (status, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["refresh_token"].as_str(), Some(lost.as_str()));
        assert_eq!(
            get_item(&c, &server, body["access_token"].as_str().unwrap())
                .await
                .status(),
            200
        );
        let s = server.stats();
        assert_eq!((s.grace_reuses, s.reuse_detections), (1, 0));

        // The chain goes on from there.
        assert_eq!(refresh(&c, &server, &lost).await.status(), 200);
        assert_ne!(server.current_refresh_token(login.family), Some(lost));
        server.shutdown().await;
    })
    .await
}
