//! A non-OAuth refresh API, the kind mobile tutorials use: `POST /auth/refresh` with
//! `{"refreshToken": "…"}` answering `{"accessToken": "…", "refreshToken": "…"}`. The
//! core's `JsonRefreshProtocol` speaks it; any other shape is one `RefreshProtocol` impl.
//!
//! ```sh
//! cargo run --example custom_protocol
//! ```

use reauth::protocol::JsonRefreshProtocol;
use reauth::{AccessToken, Config, Event, Origin, RefreshToken, TokenSet};
use reauth_testkit::{ServerConfig, TestServer};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(ServerConfig::default()).await?;
    let protocol = JsonRefreshProtocol::new(server.json_refresh_url().parse()?)?;
    let client = reauth::reqwest::Client::builder(
        reqwest::Client::builder(),
        Config::new(Origin::parse(&server.base_url())?),
    )
    .protocol(protocol)
    .build()?;
    let mut events = client.subscribe();

    let issued = server.issue_tokens();
    client.login(
        TokenSet::new(AccessToken::new(issued.access_token)?)
            .with_refresh_token(RefreshToken::new(issued.refresh_token)?)
            .with_expires_in(Duration::from_secs(issued.expires_in)),
    );
    println!("logged in: {:?}", client.snapshot().phase);

    server.expire_access_tokens();
    println!("the server expired the access token; calling the API…");
    let response = client.get(server.api_url("items/42")).send().await?;
    println!("GET /api/items/42 -> {}", response.status());
    if let Ok(Event::Refreshed { generation, .. }) = events.try_recv() {
        println!(
            "refreshed through POST /auth/refresh (token generation {})",
            generation.get()
        );
    }
    let stats = server.stats();
    println!(
        "JSON refresh calls: {}, 401s seen by the API: {}",
        stats.json_refresh_calls,
        stats.api_status(401)
    );
    server.shutdown().await;
    Ok(())
}
