//! The protected API: RFC 6750 answers, routes, the redirect and the leak recorder.

mod common;

use common::*;
use reqwest::redirect::Policy;

const REALM: &str = "Bearer realm=\"reauth-testkit\"";

#[tokio::test]
async fn bearer_failures_follow_rfc_6750() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let url = server.api_url("items/1");

        let resp = c.get(&url).send().await.unwrap();
        assert_eq!(
            (resp.status().as_u16(), header(&resp, "www-authenticate")),
            (401, REALM.into())
        );

        // Another scheme is no bearer credential either.
        let resp = c.get(&url).basic_auth("u", Some("p")).send().await.unwrap();
        assert_eq!(
            (resp.status().as_u16(), header(&resp, "www-authenticate")),
            (401, REALM.into())
        );

        let resp = get_item(&c, &server, "at_unknown").await;
        assert_eq!(resp.status(), 401);
        assert_eq!(
            header(&resp, "www-authenticate"),
            format!("{REALM}, error=\"invalid_token\", error_description=\"unknown access token\"")
        );
        let (_, body) = status_json(resp).await;
        assert_eq!(body["error"], "invalid_token");

        let resp = c
            .get(&url)
            .header("authorization", "Bearer bad token!")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert!(header(&resp, "www-authenticate").contains("error=\"invalid_request\""));
        let resp = c
            .get(&url)
            .header("authorization", "Bearer")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn expire_access_tokens_kills_existing_ones_only() {
    bounded(async {
        let server = server().await;
        let c = h2();
        let login = server.issue_tokens();
        assert_eq!(
            get_item(&c, &server, &login.access_token).await.status(),
            200
        );
        server.expire_access_tokens();
        let resp = get_item(&c, &server, &login.access_token).await;
        assert_eq!(resp.status(), 401);
        assert!(header(&resp, "www-authenticate")
            .contains("error_description=\"access token expired\""));
        // The refresh token still works and yields a live access token.
        let (status, body) = status_json(refresh(&c, &server, &login.refresh_token).await).await;
        assert_eq!(status, 200);
        let at = body["access_token"].as_str().unwrap();
        assert_eq!(get_item(&c, &server, at).await.status(), 200);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn revoked_family_tokens_are_invalid() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let login = server.issue_tokens();
        assert!(server.revoke_family(login.access_token.as_str()));
        let resp = get_item(&c, &server, &login.access_token).await;
        assert_eq!(resp.status(), 401);
        assert!(header(&resp, "www-authenticate").contains("access token revoked"));
        assert!(!server.revoke_family("no-such-token"));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn routes_answer() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let at = server.issue_tokens().access_token;

        let (status, item) = status_json(
            c.get(server.api_url("/items/42"))
                .bearer_auth(&at)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(item["id"], "42");

        let resp = c
            .post(server.api_url("echo"))
            .bearer_auth(&at)
            .header("content-type", "text/x-test")
            .body("hello, echo")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&resp, "content-type"), "text/x-test");
        assert_eq!(resp.text().await.unwrap(), "hello, echo");

        assert_eq!(
            c.get(server.api_url("nope"))
                .bearer_auth(&at)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            c.get(server.api_url("items/"))
                .bearer_auth(&at)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            c.get(format!("{}/elsewhere", server.base_url()))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let resp = c
            .get(server.api_url("echo"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (resp.status().as_u16(), header(&resp, "allow")),
            (405, "POST".into())
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn scoped_route_needs_admin() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let reader = server.issue_tokens();
        let resp = c
            .get(server.api_url("scoped"))
            .bearer_auth(&reader.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(
            header(&resp, "www-authenticate"),
            "Bearer realm=\"reauth-testkit\", error=\"insufficient_scope\", scope=\"admin\""
        );
        let admin = server.issue_tokens_with_scope("read admin");
        let (status, body) = status_json(
            c.get(server.api_url("scoped"))
                .bearer_auth(&admin.access_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, body["ok"].as_bool()), (200, Some(true)));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn redirect_goes_cross_origin_and_the_leak_listener_records_authorization() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let at = server.issue_tokens().access_token;
        assert_ne!(server.leak_url(), server.base_url());
        assert!(server.leak_url().starts_with("http://127.0.0.1:"));

        let resp = c
            .get(server.api_url("redirect?to=%2Flanding%3Fx%3D1"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 307);
        let location = header(&resp, "location");
        assert_eq!(location, format!("{}/landing?x=1", server.leak_url()));

        // A careless client forwards the token: recorded.
        let leaked = c.get(&location).bearer_auth(&at).send().await.unwrap();
        assert_eq!(leaked.status(), 200);
        assert_eq!(server.leaked_authorizations(), vec![format!("Bearer {at}")]);

        // reqwest's own redirect policy strips Authorization across origins: nothing new.
        let following = reqwest::Client::builder()
            .no_proxy()
            .redirect(Policy::limited(3))
            .build()
            .unwrap();
        let resp = following
            .get(server.api_url("redirect?to=/x"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let s = server.stats();
        assert_eq!(s.leak_requests, 2);
        assert_eq!(s.leaked_authorizations.len(), 1);

        let bad = c
            .get(server.api_url("redirect?to=http://evil"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let unauthenticated = c
            .get(server.api_url("redirect?to=/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status(), 401);
        server.shutdown().await;
    })
    .await
}

/// The routes for redirect chains: same-origin moves (any status, any method, no token
/// needed), an endless loop, and a hop inside the leak listener. With reqwest's own
/// redirect policy, A → B → B′ hands the token to B′: reqwest strips `Authorization`
/// only on a hop that changes origin from the one before, and starts every hop from the
/// original request's headers. This is why the adapter follows redirects itself.
#[tokio::test]
async fn moved_loop_and_hop_routes() {
    bounded(async {
        let server = server().await;
        let c = h1();
        let resp = c
            .post(server.api_url("moved?to=/api/items/1&status=303"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        assert_eq!(header(&resp, "location"), "/api/items/1");
        let resp = c
            .delete(server.api_url("moved?to=/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 307);
        for bad in ["moved?to=/x&status=300", "moved?to=x", "moved"] {
            let resp = c.get(server.api_url(bad)).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{bad}");
        }
        let resp = c.get(server.api_url("loop")).send().await.unwrap();
        assert_eq!(
            (resp.status().as_u16(), header(&resp, "location")),
            (302, "loop".into())
        );
        let resp = c
            .get(format!("{}/hop?to=/next", server.leak_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&resp, "location"),
            format!("{}/next", server.leak_url())
        );

        let at = server.issue_tokens().access_token;
        let following = reqwest::Client::builder()
            .no_proxy()
            .redirect(Policy::limited(5))
            .build()
            .unwrap();
        let resp = following
            .get(server.api_url("redirect?to=/hop%3Fto%3D/landing"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.url().as_str().ends_with("/landing"));
        assert_eq!(
            server.leaked_authorizations(),
            vec![format!("Bearer {at}")],
            "reqwest's own policy sends the token to B′ (fixed? then the adapter could trust it)"
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn api_counters_and_reset() {
    bounded(async {
        let server = server().await;
        let c = h2();
        let a = server.issue_tokens().access_token;
        let b = server.issue_tokens().access_token;
        for at in [&a, &a, &b] {
            assert_eq!(get_item(&c, &server, at).await.status(), 200);
        }
        get_item(&c, &server, "at_forged").await;
        c.get(server.api_url("scoped"))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        c.get(server.api_url("items/1")).send().await.unwrap();

        let s = server.stats();
        assert_eq!(s.api_calls, 6);
        assert_eq!(
            (s.api_status(200), s.api_status(401), s.api_status(403)),
            (3, 2, 1)
        );
        assert_eq!(
            s.tokens_seen("/api/items/{id}"),
            3,
            "a, b and the forged one"
        );
        assert_eq!(s.tokens_seen("/api/scoped"), 1);

        server.reset_stats();
        assert_eq!(server.stats(), reauth_testkit::Stats::default());
        get_item(&c, &server, &a).await;
        assert_eq!(server.stats().tokens_seen("/api/items/{id}"), 1);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn reject_refuses_every_token_and_delay_checks_the_token_late() {
    let server = reauth_testkit::TestServer::start(
        reauth_testkit::ServerConfig::default().with_access_revoked_on_rotation(true),
    )
    .await
    .unwrap();
    let issued = server.issue_tokens();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(server.api_url(&path))
            .bearer_auth(&issued.access_token);
        async move { req.send().await.unwrap() }
    };
    let r = get("reject".into()).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(get("items/1".into()).await.status(), 200);
    // A delayed request is checked after its delay: a refresh meanwhile revokes the
    // access token it carries.
    let slow = tokio::spawn(get("items/1?delay_ms=300".into()));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let refreshed = http
        .post(server.token_url())
        .basic_auth("reauth-test", Some("s3cret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", &issued.refresh_token)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    assert_eq!(slow.await.unwrap().status(), 401);
    server.shutdown().await;
}
