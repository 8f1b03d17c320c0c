//! A request that goes out without the token because its origin is a near miss of the
//! allow-list says so: one warning per origin, naming both, never a token.

mod common;

use common::*;
use reauth_testkit::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_against_an_allowed_127_0_0_1_warns_once_naming_both() {
    let capture = capture_logs(tracing::Level::DEBUG);
    bounded(async {
        // The allow-list is the server's `http://127.0.0.1:PORT`.
        let s = setup(ServerConfig::default(), |_| {}).await;
        let port = s.server.addr().port();
        let allowed = format!("http://127.0.0.1:{port}");
        let near = format!("http://localhost:{port}");
        for _ in 0..3 {
            // The answer does not matter (a 401 without the token, or no connection
            // where localhost is only `::1`): what was logged does.
            let _ = s.client.get(format!("{near}/items/1")).send().await;
        }
        // An unrelated origin (a documentation address: it never answers) is no near miss.
        let _ = s
            .client
            .get("http://192.0.2.1:9/unrelated")
            .timeout(std::time::Duration::from_millis(200))
            .send()
            .await;
        s.server.shutdown().await;
        let logs = capture.text();
        let warnings: Vec<_> = logs
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains("without the token"))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning per origin: {logs}");
        assert!(warnings[0].contains(&near), "{}", warnings[0]);
        assert!(warnings[0].contains(&allowed), "{}", warnings[0]);
        assert!(warnings[0].contains("loopback"), "{}", warnings[0]);
        // Each anonymous request says why at debug level, the unrelated one included.
        let debug = logs
            .lines()
            .filter(|l| l.contains("DEBUG") && l.contains("origin not on the allow-list"))
            .count();
        assert_eq!(debug, 4, "{logs}");
        assert!(logs.contains("http://192.0.2.1:9"), "{logs}");
        assert!(
            !logs.contains(&s.tokens.access_token),
            "a token in the logs"
        );
        assert!(
            !logs.contains(&s.tokens.refresh_token),
            "a token in the logs"
        );
    })
    .await;
}
