//! The facade end to end: what a user of `reauth` (default features) writes, against the
//! real testkit server on loopback.

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::{JsonRefreshProtocol, OAuth2Grant};
use reauth::{AccessToken, Config, Event, Origin, Phase, RefreshToken, TokenSet};
use reauth_testkit::{Fault, ServerConfig, TestServer};
use std::time::Duration;

fn tokens(access: String, refresh: String) -> TokenSet {
    TokenSet::new(AccessToken::new(access).unwrap())
        .with_refresh_token(RefreshToken::new(refresh).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_through_the_facade_refreshes_once() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let endpoint = TokenEndpoint::new(
            server.token_url().parse().unwrap(),
            ClientAuth::secret_post("reauth-test", ClientSecret::new("s3cret")),
        )
        .unwrap();
        let client = reauth::reqwest::Client::builder(
            reqwest::Client::builder().http2_prior_knowledge(),
            Config::new(Origin::parse(&server.base_url()).unwrap()),
        )
        .oauth2(OAuth2Grant::refresh_token(endpoint))
        .build()
        .unwrap();
        let issued = server.issue_tokens();
        client.login(tokens(issued.access_token, issued.refresh_token));
        server.expire_access_tokens();
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let (c, url) = (client.clone(), server.api_url("items/7"));
                tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(server.stats().token_calls, 1);
        server.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_refresh_protocol_of_mobile_tutorials_plugs_in() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = TestServer::start(ServerConfig::default()).await.unwrap();
        let client = reauth::reqwest::Client::builder(
            reqwest::Client::builder(),
            Config::new(Origin::parse(&server.base_url()).unwrap()),
        )
        .protocol(JsonRefreshProtocol::new(server.json_refresh_url().parse().unwrap()).unwrap())
        .build()
        .unwrap();
        let mut events = client.subscribe();
        let issued = server.issue_tokens();
        client.login(tokens(issued.access_token, issued.refresh_token));
        server.expire_access_tokens();
        let r = client.get(server.api_url("items/1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let stats = server.stats();
        assert_eq!(stats.json_refresh_calls, 1);
        assert!(matches!(
            events.recv().await.unwrap(),
            Event::Refreshed { .. }
        ));
        // A dead refresh token: the app hears about it and shows its login screen.
        server.push_fault(Fault::InvalidGrant);
        server.expire_access_tokens();
        let err = client
            .get(server.api_url("items/1"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_logged_out(), "{err}");
        assert!(matches!(
            events.recv().await.unwrap(),
            Event::LoggedOut { .. }
        ));
        assert_eq!(client.snapshot().phase, Phase::LoggedOut);
        server.shutdown().await;
    })
    .await
    .unwrap();
}
