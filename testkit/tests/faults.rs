//! Every fault kind, the FIFO queue, and that hanging requests never leak.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reauth_testkit::Fault;

#[tokio::test]
async fn status_faults_answer_with_their_status_and_headers() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let rt = server.issue_tokens().refresh_token;
        server.push_fault(Fault::ServerError);
        server.push_fault(Fault::Unavailable {
            retry_after: Some(Duration::from_millis(4500)),
        });
        server.push_fault(Fault::Unavailable { retry_after: None });
        server.push_fault(Fault::TooManyRequests {
            retry_after: Some(Duration::from_secs(2)),
        });
        server.push_fault(Fault::TooManyRequests { retry_after: None });
        assert_eq!(server.pending_faults(), 5);
        let expected = [(500, ""), (503, "5"), (503, ""), (429, "2"), (429, "")];
        for (status, retry_after) in expected {
            let resp = refresh(&c, &server, &rt).await;
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(header(&resp, "retry-after"), retry_after);
        }
        assert_eq!(server.pending_faults(), 0);
        // The queue is drained: the (never rotated) token works now.
        assert_eq!(refresh(&c, &server, &rt).await.status(), 200);
        let s = server.stats();
        assert_eq!(s.token_calls, 6);
        assert_eq!(s.token_ok, 1);
        assert_eq!(
            (
                s.faults("server_error"),
                s.faults("unavailable"),
                s.faults("too_many_requests")
            ),
            (1, 2, 2)
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn push_faults_queues_n_and_clear_drops_them() {
    bounded(async {
        let server = server().await;
        let c = h2();
        let rt = server.issue_tokens().refresh_token;
        server.push_faults(Fault::ServerError, 3);
        for _ in 0..3 {
            assert_eq!(refresh(&c, &server, &rt).await.status(), 500);
        }
        assert_eq!(refresh(&c, &server, &rt).await.status(), 200);
        server.push_faults(Fault::Hang, 10);
        server.clear_faults();
        assert_eq!(server.pending_faults(), 0);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn invalid_grant_and_invalid_client_faults_revoke_nothing() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        server.push_fault(Fault::InvalidGrant);
        server.push_fault(Fault::InvalidClient);
        let (status, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let resp = refresh(&c, &server, &login.refresh_token).await;
        assert_eq!(
            header(&resp, "www-authenticate"),
            "Basic realm=\"reauth-testkit\""
        );
        let (status, body) = status_json(resp).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        // Injected, not real: the family is alive.
        assert_eq!(
            get_item(&c, &server, &login.access_token).await.status(),
            200
        );
        assert_eq!(
            refresh(&c, &server, &login.refresh_token).await.status(),
            200
        );
        let s = server.stats();
        assert_eq!(
            (s.faults("invalid_grant"), s.faults("invalid_client")),
            (1, 1)
        );
        assert_eq!((s.token_invalid_grant, s.token_invalid_client), (0, 0));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let rt = server.issue_tokens().refresh_token;
        server.push_fault(Fault::MalformedJson);
        server.push_fault(Fault::Oversized);
        server.push_fault(Fault::MalformedJson);
        server.push_fault(Fault::Oversized);

        let resp = refresh(&c, &server, &rt).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_err(),
            "{text}"
        );

        let resp = refresh(&c, &server, &rt).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().await.unwrap().len() > 1024 * 1024);

        let resp = json_refresh(&c, &server, &rt).await;
        assert_eq!(resp.status(), 200);
        assert!(serde_json::from_slice::<serde_json::Value>(&resp.bytes().await.unwrap()).is_err());
        let resp = json_refresh(&c, &server, &rt).await;
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["padding"].as_str().unwrap().len() > 1024 * 1024);

        let s = server.stats();
        assert_eq!((s.faults("malformed_json"), s.faults("oversized")), (2, 2));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn delay_then_answers_normally() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let rt = server.issue_tokens().refresh_token;
        server.push_fault(Fault::Delay(Duration::from_millis(200)));
        let started = Instant::now();
        let resp = refresh(&c, &server, &rt).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(resp.status(), 200);
        let s = server.stats();
        assert_eq!((s.faults("delay"), s.token_ok), (1, 1));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn connection_reset_gives_no_response_over_both_protocols() {
    bounded(async {
        let server = server().await;
        for c in [h1(), h2()] {
            let rt = server.issue_tokens().refresh_token;
            server.push_fault(Fault::ConnectionReset);
            let err = token_request(
                &c,
                &server,
                &format!("grant_type=refresh_token&refresh_token={rt}"),
            )
            .send()
            .await
            .unwrap_err();
            assert!(!err.is_status(), "{err}");
            // The server (and for h2 the same client) keeps working.
            assert_eq!(refresh(&c, &server, &rt).await.status(), 200);
        }
        assert_eq!(server.stats().faults("connection_reset"), 2);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn hang_ends_when_the_client_gives_up() {
    bounded(async {
        let server = server().await;
        for c in [h1(), h2()] {
            let rt = server.issue_tokens().refresh_token;
            server.push_fault(Fault::Hang);
            let request = token_request(
                &c,
                &server,
                &format!("grant_type=refresh_token&refresh_token={rt}"),
            );
            let pending = tokio::spawn(request.send());
            eventually(|| server.stats().hangs_in_flight == 1).await;
            // Dropping the request future closes the connection (h1) or resets the stream (h2).
            pending.abort();
            eventually(|| server.stats().hangs_in_flight == 0).await;
            assert_eq!(
                refresh(&c, &server, &rt).await.status(),
                200,
                "server still serves"
            );
            server.revoke_family(rt.as_str());
        }
        // A client-side timeout has the same effect.
        let c = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        server.push_fault(Fault::Hang);
        let err = refresh_err(&c, &server).await;
        assert!(err.is_timeout(), "{err}");
        eventually(|| server.stats().hangs_in_flight == 0).await;
        assert_eq!(server.stats().faults("hang"), 3);
        server.shutdown().await;
    })
    .await
}

async fn refresh_err(c: &reqwest::Client, server: &reauth_testkit::TestServer) -> reqwest::Error {
    token_request(c, server, "grant_type=refresh_token&refresh_token=x")
        .send()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn hang_ends_at_shutdown() {
    bounded(async {
        let server = server().await;
        let c = h2();
        server.push_faults(Fault::Hang, 3);
        let url = server.token_url();
        let pending: Vec<_> = (0..3)
            .map(|_| {
                let req = c
                    .post(&url)
                    .basic_auth("reauth-test", Some("s3cret"))
                    .header("content-type", FORM)
                    .body("grant_type=client_credentials");
                tokio::spawn(req.send())
            })
            .collect();
        eventually(|| server.stats().hangs_in_flight == 3).await;
        let probe = server.stats();
        server.shutdown().await;
        for p in pending {
            assert!(
                p.await.unwrap().is_err(),
                "hung requests fail, they do not succeed"
            );
        }
        assert_eq!(probe.faults("hang"), 3);
    })
    .await
}

#[tokio::test]
async fn faults_apply_to_the_json_endpoint_too() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let rt = server.issue_tokens().refresh_token;
        server.push_fault(Fault::InvalidGrant);
        server.push_fault(Fault::TooManyRequests {
            retry_after: Some(Duration::from_secs(1)),
        });
        let (status, body) = status_json(json_refresh(&c, &server, &rt).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_refresh_token"))
        );
        let resp = json_refresh(&c, &server, &rt).await;
        assert_eq!(
            (resp.status().as_u16(), header(&resp, "retry-after")),
            (429, "1".into())
        );
        assert_eq!(json_refresh(&c, &server, &rt).await.status(), 200);
        let s = server.stats();
        assert_eq!((s.json_refresh_calls, s.token_calls, s.token_ok), (3, 3, 1));
        server.shutdown().await;
    })
    .await
}

#[test]
fn parse_names_and_errors() {
    assert_eq!(Fault::parse("500"), Ok(Fault::ServerError));
    assert_eq!(
        Fault::parse("503"),
        Ok(Fault::Unavailable { retry_after: None })
    );
    assert_eq!(
        Fault::parse("429"),
        Ok(Fault::TooManyRequests { retry_after: None })
    );
    assert_eq!(
        Fault::parse("delay:500ms"),
        Ok(Fault::Delay(Duration::from_millis(500)))
    );
    assert_eq!(Fault::parse("invalid_grant"), Ok(Fault::InvalidGrant));
    assert_eq!(Fault::parse("malformed"), Ok(Fault::MalformedJson));
    assert_eq!(Fault::parse("oversized"), Ok(Fault::Oversized));
    assert_eq!(Fault::parse("reset"), Ok(Fault::ConnectionReset));
    assert_eq!(Fault::parse("hang"), Ok(Fault::Hang));
    assert_eq!("invalid_client".parse::<Fault>(), Ok(Fault::InvalidClient));
    let err = Fault::parse("boom").unwrap_err();
    let msg = err.to_string();
    for name in [
        "delay:",
        "500",
        "503",
        "429",
        "invalid_grant",
        "malformed",
        "oversized",
        "reset",
        "hang",
    ] {
        assert!(msg.contains(name), "{msg} lacks {name}");
    }
}
