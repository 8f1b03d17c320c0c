//! 10,000 truly concurrent requests from one process over h2c.
//!
//! Over HTTP/1.1 this would take 10,000 sockets on each side, more than the 20,000 open
//! files a process may have here; h2c multiplexes them over a few connections.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

const REQUESTS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_over_h2c() {
    let server = server().await;
    let at = Arc::new(server.issue_tokens().access_token);
    let client = h2();
    let url = Arc::new(server.api_url("items/1"));
    // All requests are started before any is awaited: they are in flight together.
    let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (client, url, at, start) = (client.clone(), url.clone(), at.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let resp = client
                    .get(url.as_str())
                    .bearer_auth(at.as_str())
                    .send()
                    .await?;
                Ok::<_, reqwest::Error>((resp.status(), resp.version()))
            })
        })
        .collect();
    let all = async {
        let mut ok = 0;
        for t in tasks {
            let (status, version) = t.await.unwrap().unwrap();
            assert_eq!(version, reqwest::Version::HTTP_2);
            ok += usize::from(status == 200);
        }
        ok
    };
    let ok = tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("10k requests did not finish in time");
    assert_eq!(ok, REQUESTS);
    let s = server.stats();
    assert_eq!(
        (s.api_calls, s.api_status(200)),
        (REQUESTS as u64, REQUESTS as u64)
    );
    assert_eq!(s.tokens_seen("/api/items/{id}"), 1);
    // Multiplexed: a handful of sockets, far from one per request.
    assert!(
        s.connections_accepted <= 8,
        "{} connections",
        s.connections_accepted
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_thousands_of_hung_refreshes_leaks_nothing() {
    bounded(async {
        const HUNG: usize = 2_000;
        let server = server().await;
        let client = h2();
        server.push_faults(reauth_testkit::Fault::Hang, HUNG);
        let pending: Vec<_> = (0..HUNG)
            .map(|_| {
                tokio::spawn(
                    token_request(&client, &server, "grant_type=client_credentials").send(),
                )
            })
            .collect();
        eventually(|| server.stats().hangs_in_flight == HUNG as u64).await;
        for p in &pending {
            p.abort();
        }
        eventually(|| server.stats().hangs_in_flight == 0).await;
        // The same client (and connection) still gets answers.
        let resp = token_request(&client, &server, "grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        server.shutdown().await;
    })
    .await
}
