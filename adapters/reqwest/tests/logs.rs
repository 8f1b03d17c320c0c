//! Captures every log event at trace level, for every target (ours, reqwest's, hyper's,
//! h2's, and `log` records through the bridge), through a storm, a rotation, a fault, a
//! redirect, the middleware and a logout, with clients whose builders ask for reqwest's
//! `connection_verbose` wire dump. Then reassembles the wire dumps and searches
//! everything for the tokens, the refresh tokens and the client secret, whole or in
//! pieces.

mod common;

use common::*;
use reauth_testkit::{Fault, LogScan, ServerConfig, TestServer};
use reqwest_middleware::ClientBuilder as ChainBuilder;

/// A piece this long of a random token is the token, for anyone who reads the log.
const PIECE: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_text_in_trace_logs() {
    let capture = capture_logs(tracing::Level::TRACE);
    let (secrets, server) = bounded(async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let store = std::sync::Arc::new(reauth_core::MemoryStore::new());
        // A developer debugging the stack turns the wire dump on for both clients.
        let client = reauth_reqwest::Client::builder(
            h2c().connection_verbose(true),
            session_config(&server),
        )
        .oauth2(grant(&server))
        .token_client(reqwest::Client::builder().connection_verbose(true))
        .store(store.clone())
        .build()
        .unwrap();
        let tokens = server.issue_tokens();
        client.login(token_set(&tokens));
        let mut secrets = vec![tokens.access_token.clone(), tokens.refresh_token.clone()];
        server.expire_access_tokens();
        server.push_fault(Fault::ServerError);
        let url = server.api_url("items/1");
        assert_eq!(storm(&client, &url, 50).await, vec![Ok(200); 50]);
        let rotated = stored(&store).expect("tokens were persisted");
        secrets.push(rotated.access_token.secret().to_owned());
        secrets.push(rotated.refresh_token.expect("rotated").secret().to_owned());
        // A redirect, through the client and through the middleware.
        let moved = server.api_url("moved?to=/api/items/1");
        assert_eq!(client.get(&moved).send().await.unwrap().status(), 200);
        let chain = ChainBuilder::new(client.inner().clone())
            .with(client.middleware())
            .build();
        assert_eq!(chain.get(&moved).send().await.unwrap().status(), 200);
        server.push_fault(Fault::InvalidGrant);
        server.expire_access_tokens();
        let _ = storm(&client, &url, 5).await;
        (secrets, server)
    })
    .await;
    server.shutdown().await;
    let logs = capture.text();
    assert!(
        logs.contains("reauth token refreshed"),
        "our events were captured"
    );
    assert!(logs.contains("reauth session logged out"));
    assert!(logs.contains("reauth following a redirect"));
    assert!(logs.contains(" h2::"), "h2's trace events were captured");
    assert!(
        logs.contains(" reqwest::"),
        "reqwest's `log` records were captured through the bridge"
    );
    let scan = LogScan::new(&logs);
    for (i, secret) in secrets.iter().enumerate() {
        assert!(
            secret.len() >= 2 * PIECE,
            "the tokens are long enough to test"
        );
        if let Some(at) = scan.find(secret, PIECE) {
            panic!("a piece of token {i} is in {at} ({scan})");
        }
    }
    // The client secret, and the HTTP Basic credentials of reauth-test:s3cret.
    for secret in ["s3cret", "cmVhdXRoLXRlc3Q6czNjcmV0"] {
        if let Some(at) = scan.find(secret, 0) {
            panic!("the client secret is in {at} ({scan})");
        }
    }
}
