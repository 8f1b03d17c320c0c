//! Reacting to the end of a session: the refresh token is revoked on the server, the next
//! refresh gets `invalid_grant`, every waiting request fails with a logged-out error, the
//! store is cleared, and the app hears `Event::LoggedOut` — the moment to show the login
//! screen. Nothing is sent with a token until the next login.
//!
//! ```sh
//! cargo run --example logged_out
//! ```

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{AccessToken, Config, Event, Origin, RefreshToken, TokenSet};
use reauth_testkit::{ServerConfig, TestServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(ServerConfig::default()).await?;
    let endpoint = TokenEndpoint::new(
        server.token_url().parse()?,
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )?;
    let client = reauth::reqwest::Client::builder(
        reqwest::Client::builder(),
        Config::new(Origin::parse(&server.base_url())?),
    )
    .oauth2(OAuth2Grant::refresh_token(endpoint))
    .build()?;

    // The "login screen" of this app: a task that waits for the session to end.
    let mut events = client.subscribe();
    let login_screen = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let Event::LoggedOut { reason } = event {
                return format!("show the login screen ({reason})");
            }
        }
        "event stream closed".to_string()
    });

    let issued = server.issue_tokens();
    client.login(
        TokenSet::new(AccessToken::new(issued.access_token.clone())?)
            .with_refresh_token(RefreshToken::new(issued.refresh_token.clone())?),
    );
    println!(
        "GET -> {}",
        client.get(server.api_url("items/1")).send().await?.status()
    );

    // An admin revokes the user's sessions.
    server.revoke_family(&issued);
    match client.get(server.api_url("items/1")).send().await {
        Ok(r) => println!("unexpected: {}", r.status()),
        Err(e) => println!("request failed: {e} (logged out: {})", e.is_logged_out()),
    }
    println!("{}", login_screen.await?);

    let before = server.stats().api_calls;
    let again = client.get(server.api_url("items/1")).send().await;
    println!(
        "while logged out: {} (API calls sent: {})",
        again.err().map(|e| e.to_string()).unwrap_or_default(),
        server.stats().api_calls - before
    );
    server.shutdown().await;
    Ok(())
}
