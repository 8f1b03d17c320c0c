//! Service-to-service calls with the OAuth2 client-credentials grant: no user, no refresh
//! token. The first request acquires a token (once, however many requests start at the
//! same moment) and an expired one is replaced the same way.
//!
//! ```sh
//! cargo run --example client_credentials
//! ```

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::{Config, Origin};
use reauth_testkit::{ServerConfig, TestServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(ServerConfig::default()).await?;
    let endpoint = TokenEndpoint::new(
        server.token_url().parse()?,
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )?
    .with_scope("read");
    let client = reauth::reqwest::Client::builder(
        reqwest::Client::builder(),
        Config::new(Origin::parse(&server.base_url())?),
    )
    .oauth2(OAuth2Grant::client_credentials(endpoint))
    .build()?;

    // Twenty calls at once, no login: one token request serves them all.
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let (client, url) = (client.clone(), server.api_url(&format!("items/{i}")));
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for call in calls {
        call.await??;
    }
    println!(
        "20 calls, {} client-credentials grant(s)",
        server.stats().client_credentials_grants
    );

    server.expire_access_tokens();
    let status = client.get(server.api_url("items/1")).send().await?.status();
    println!(
        "after expiry: {status}, {} grant(s) in total",
        server.stats().client_credentials_grants
    );
    server.shutdown().await;
    Ok(())
}
