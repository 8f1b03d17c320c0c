//! The `/_admin/` control interface, in process.

mod common;

use common::*;
use reauth_testkit::{ServerConfig, TestServer, FAULT_NAMES};
use serde_json::Value;

async fn admin_server() -> (TestServer, String) {
    let server = TestServer::start(ServerConfig::default().with_admin(true))
        .await
        .unwrap();
    let admin = server.admin_url().unwrap();
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    (server, admin)
}

async fn call(c: &reqwest::Client, method: &str, url: &str, body: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = c
        .request(method, url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn call_json(c: &reqwest::Client, method: &str, url: &str) -> Value {
    let (status, text) = call(c, method, url, "").await;
    assert_eq!(status, 200, "{method} {url}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn admin_routes_are_404_without_admin() {
    bounded(async {
        let server = server().await;
        assert_eq!(server.admin_url(), None);
        let c = h1();
        let login = server.issue_tokens();
        let base = server.base_url();
        for (method, route) in [
            ("POST", "expire"),
            ("POST", "revoke?family=family-1"),
            ("POST", "faults?fault=500"),
            ("GET", "faults"),
            ("DELETE", "faults"),
            ("GET", "stats"),
            ("POST", "reset"),
            ("POST", "tokens"),
        ] {
            let (status, _) = call(&c, method, &format!("{base}/_admin/{route}"), "").await;
            assert_eq!(status, 404, "{method} {route}");
        }
        // Nothing happened.
        assert_eq!(server.pending_faults(), 0);
        assert_eq!(
            get_item(&c, &server, &login.access_token).await.status(),
            200
        );
        assert_eq!(server.stats().api_calls, 1);
        server.shutdown().await;

        // With admin on, the routes live on the admin port only.
        let (server, admin) = admin_server().await;
        let (status, _) = call(
            &c,
            "GET",
            &format!("{}/_admin/stats", server.base_url()),
            "",
        )
        .await;
        assert_eq!(status, 404);
        assert_ne!(server.admin_addr(), Some(server.addr()));
        assert!(admin.ends_with("/_admin"));
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn admin_tokens_expire_and_revoke() {
    bounded(async {
        let (server, admin) = admin_server().await;
        let c = h1();
        let resp = c.post(format!("{admin}/tokens")).send().await.unwrap();
        assert_eq!(header(&resp, "cache-control"), "no-store");
        let login: Value = resp.json().await.unwrap();
        assert_eq!(login["token_type"], "Bearer");
        assert_eq!(login["scope"], "read write");
        assert_eq!(login["expires_in"], 3600);
        let at = login["access_token"].as_str().unwrap();
        let rt = login["refresh_token"].as_str().unwrap();
        let family = login["family"].as_str().unwrap();
        assert_eq!(server.family_of(rt).unwrap().to_string(), family);
        assert_eq!(get_item(&c, &server, at).await.status(), 200);

        let scoped = call_json(&c, "POST", &format!("{admin}/tokens?scope=read%20admin")).await;
        assert_eq!(scoped["scope"], "read admin");

        assert_eq!(
            call_json(&c, "POST", &format!("{admin}/expire")).await,
            serde_json::json!({"expired": true})
        );
        assert_eq!(get_item(&c, &server, at).await.status(), 401);
        assert_eq!(refresh(&c, &server, rt).await.status(), 200);

        let by_family = format!("{admin}/revoke?family={family}");
        assert_eq!(call_json(&c, "POST", &by_family).await["revoked"], true);
        assert_eq!(call_json(&c, "POST", &by_family).await["revoked"], false);
        let other = server.issue_tokens();
        let by_token = format!("{admin}/revoke?token={}", other.access_token);
        assert_eq!(call_json(&c, "POST", &by_token).await["revoked"], true);
        assert_eq!(
            refresh(&c, &server, &other.refresh_token).await.status(),
            400
        );
        let bare_number = format!("{admin}/revoke?family=999");
        assert_eq!(call_json(&c, "POST", &bare_number).await["revoked"], false);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn admin_faults_are_queued_counted_and_cleared() {
    bounded(async {
        let (server, admin) = admin_server().await;
        let c = h1();
        let rt = server.issue_tokens().refresh_token;
        let v = call_json(&c, "POST", &format!("{admin}/faults?fault=503:2s&count=2")).await;
        assert_eq!(v, serde_json::json!({"queued": 2, "pending": 2}));
        let (status, text) = call(
            &c,
            "POST",
            &format!("{admin}/faults"),
            "# a comment\n500\n\n  rotate-drop \n",
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            call_json(&c, "GET", &format!("{admin}/faults")).await,
            serde_json::json!({"pending": 4})
        );
        for want in [503, 503, 500] {
            assert_eq!(refresh(&c, &server, &rt).await.status().as_u16(), want);
        }
        assert_eq!(server.pending_faults(), 1);
        assert_eq!(
            call_json(&c, "DELETE", &format!("{admin}/faults")).await,
            serde_json::json!({"cleared": 1, "pending": 0})
        );
        assert_eq!(refresh(&c, &server, &rt).await.status(), 200);

        // A bad line queues nothing and names the valid faults.
        let (status, text) = call(&c, "POST", &format!("{admin}/faults"), "500\nexplode\n").await;
        assert_eq!(status, 400);
        assert!(
            text.contains("explode") && text.contains(FAULT_NAMES),
            "{text}"
        );
        assert_eq!(server.pending_faults(), 0);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn admin_stats_report_every_counter_and_reset_clears() {
    bounded(async {
        let (server, admin) = admin_server().await;
        let c = h1();
        let login = server.issue_tokens();
        server.push_fault(reauth_testkit::Fault::ServerError);
        assert_eq!(
            refresh(&c, &server, &login.refresh_token).await.status(),
            500
        );
        assert_eq!(
            get_item(&c, &server, &login.access_token).await.status(),
            200
        );
        let before = server.stats();
        let stats = call_json(&c, "GET", &format!("{admin}/stats")).await;
        let fields = stats.as_object().unwrap();
        assert_eq!(fields.len(), 20, "{stats}");
        assert_eq!(stats["token_calls"], 1);
        assert_eq!(stats["faults_injected"]["server_error"], 1);
        assert_eq!(stats["api_by_status"]["200"], 1);
        assert_eq!(stats["api_tokens_seen"]["/api/items/{id}"], 1);
        assert_eq!(stats["answers_withheld"], 0);
        assert_eq!(stats["leaked_authorizations"], serde_json::json!([]));
        // Admin traffic is not the client's: its connections are not counted.
        assert_eq!(stats["connections_accepted"], before.connections_accepted);
        assert_eq!(
            server.stats().connections_accepted,
            before.connections_accepted
        );

        server.push_fault(reauth_testkit::Fault::Hang);
        let v = call_json(&c, "POST", &format!("{admin}/reset")).await;
        assert_eq!(v, serde_json::json!({"reset": true, "faults_cleared": 1}));
        let stats = call_json(&c, "GET", &format!("{admin}/stats")).await;
        assert_eq!(
            (stats["token_calls"].as_u64(), stats["api_calls"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(stats["faults_injected"], serde_json::json!({}));
        assert_eq!(server.pending_faults(), 0);
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn admin_bad_input_is_a_clear_4xx() {
    bounded(async {
        let (server, admin) = admin_server().await;
        let c = h1();
        let cases: [(&str, &str, &[u8], u16, &str); 15] = [
            ("POST", "faults?fault=explode", b"", 400, FAULT_NAMES),
            ("POST", "faults?fault=500&count=0", b"", 400, "count"),
            (
                "POST",
                "faults?fault=500&count=99999999999999999999",
                b"",
                400,
                "count",
            ),
            ("POST", "faults?fault=500&count=many", b"", 400, "count"),
            ("POST", "faults?count=2", b"500", 400, "fault"),
            ("POST", "faults?fault=500", b"hang", 400, "not both"),
            ("POST", "faults?fault=500&fault=hang", b"", 400, "repeated"),
            ("POST", "faults", b"", 400, FAULT_NAMES),
            ("POST", "faults", b"\xff\xfe", 400, "UTF-8"),
            ("POST", "expire?now=1", b"", 400, "unknown query parameter"),
            ("POST", "revoke", b"", 400, "exactly one"),
            ("POST", "revoke?family=family-x", b"", 400, "family-N"),
            ("GET", "expire", b"", 405, ""),
            ("PUT", "stats", b"", 405, ""),
            ("GET", "nope", b"", 404, "/_admin/stats"),
        ];
        for (method, route, body, status, needle) in cases {
            let method_ = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let resp = c
                .request(method_, format!("{admin}/{route}"))
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let got = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert_eq!(got, status, "{method} {route}: {text}");
            assert!(text.contains(needle), "{method} {route}: {text}");
        }
        assert_eq!(server.pending_faults(), 0);
        // The server still serves.
        assert_eq!(
            call_json(&c, "GET", &format!("{admin}/faults")).await["pending"],
            0
        );
        server.shutdown().await;
    })
    .await
}
