//! A replica built while Redis is away (`RedisStoreBuilder::build`, the degraded mode):
//! it starts without tokens and says why, and once Redis is back it takes up the login
//! another replica writes, from the change notification, without a login of its own.
//! With `connect` instead, Redis away is a typed error at start.

#[path = "support/redis_server.rs"]
mod redis_server;

use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{AccessToken, Config, Event, Origin, Phase, RefreshToken, TokenSet};
use reauth_redis::{RedisStore, RedisStoreError};
use reauth_reqwest::Client;
use reauth_testkit::{ServerConfig, TestServer};
use redis_server::RedisServer;
use std::time::Duration;

fn client(server: &TestServer, store: RedisStore) -> Client {
    let endpoint = TokenEndpoint::new(
        server.token_url().parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap();
    let config = Config::new(Origin::parse(&server.base_url()).unwrap());
    Client::builder(reqwest::Client::builder(), config)
        .oauth2(OAuth2Grant::refresh_token(endpoint))
        .store(store)
        .build()
        .unwrap()
}

fn store(redis: &RedisServer) -> reauth_redis::RedisStoreBuilder {
    RedisStore::builder(redis.client(), "away-at-start")
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_while_redis_is_away_takes_up_the_fleet_s_login_when_it_is_back() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let server = TestServer::start(ServerConfig::default()).await.unwrap();
    redis.stop();

    // Redis away at start: `connect` says so, typed; `build` starts without tokens.
    let refused = store(&redis).connect().unwrap_err();
    assert!(
        matches!(refused, RedisStoreError::Unavailable { .. }),
        "{refused:?}"
    );
    let a = client(&server, store(&redis).build());
    assert!(a.store_load_error().is_some());
    assert_eq!(a.snapshot().phase, Phase::Empty);
    let mut events = a.subscribe();

    // Redis is back; another replica logs in.
    redis.restart();
    let b = client(&server, store(&redis).build());
    assert!(b.store_load_error().is_none());
    let t = server.issue_tokens();
    b.login(
        TokenSet::new(AccessToken::new(t.access_token).unwrap())
            .with_refresh_token(RefreshToken::new(t.refresh_token).unwrap())
            .with_expires_in(Duration::from_secs(t.expires_in)),
    );

    // a hears of it (its subscription, made again, or b's write) and takes it up.
    let adopted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(Event::Adopted { generation }) => return generation,
                Ok(_) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("the replica took up the login within 10 s");
    assert_eq!(a.snapshot().phase, Phase::Valid);
    assert_eq!(a.snapshot().generation, adopted);

    // It sends with the fleet's token at once: no refresh, no login of its own.
    let calls = server.stats().token_calls;
    let response = a.get(server.api_url("items/1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.stats().token_calls, calls);
    server.shutdown().await;
}
