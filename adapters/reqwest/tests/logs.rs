//! Captures every tracing event at trace level (ours, reqwest's, hyper's) through a storm,
//! a rotation, a fault and a logout, and checks that no token text appears anywhere.

mod common;

use common::*;
use reauth_testkit::{Fault, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_text_in_trace_logs() {
    let capture = capture_logs(tracing::Level::TRACE);
    bounded(async {
        let s = setup(ServerConfig::default(), |_| {}).await;
        let mut secrets = vec![
            s.tokens.access_token.clone(),
            s.tokens.refresh_token.clone(),
        ];
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::ServerError);
        assert_eq!(
            storm(&s.client, &s.server.api_url("items/1"), 50).await,
            vec![Ok(200); 50]
        );
        let rotated = stored(&s.store).expect("tokens were persisted");
        secrets.push(rotated.access_token.secret().to_owned());
        secrets.push(rotated.refresh_token.expect("rotated").secret().to_owned());
        s.server.push_fault(Fault::InvalidGrant);
        s.server.expire_access_tokens();
        let _ = storm(&s.client, &s.server.api_url("items/1"), 5).await;
        s.server.shutdown().await;
        let logs = capture.text();
        assert!(
            logs.contains("reauth token refreshed"),
            "our events were captured"
        );
        assert!(logs.contains("reauth session logged out"));
        assert!(
            logs.lines().count() > 100,
            "trace output from the whole stack was captured"
        );
        for secret in &secrets {
            assert!(
                !logs.contains(secret.as_str()),
                "a token appears in the logs"
            );
        }
        assert!(
            !logs.contains("s3cret"),
            "the client secret appears in the logs"
        );
        // HTTP Basic of reauth-test:s3cret.
        assert!(
            !logs.contains("cmVhdXRoLXRlc3Q6czNjcmV0"),
            "the client credentials appear in the logs"
        );
    })
    .await;
}
