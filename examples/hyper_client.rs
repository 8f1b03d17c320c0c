//! hyper-util's client under the tower layer, against the embedded testkit: a login, a
//! storm of 100 requests after the server expired the token (one refresh), and a POST
//! whose body is replayed after the refresh.
//!
//! ```sh
//! cargo run --example hyper_client --features tower
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::tower::{AuthLayer, ReplayBody};
use reauth::{AccessToken, Config, Origin, RefreshToken, TokenSet};
use reauth_testkit::{ServerConfig, TestServer};
use std::time::Duration;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = TestServer::start(ServerConfig::default()).await?;
    let endpoint = TokenEndpoint::new(
        server.token_url().parse()?,
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )?;
    let auth = AuthLayer::builder(Config::new(Origin::parse(&server.base_url())?))
        .oauth2(OAuth2Grant::refresh_token(endpoint))
        .build()?;
    let login = server.issue_tokens();
    auth.login(
        TokenSet::new(AccessToken::new(login.access_token)?)
            .with_refresh_token(RefreshToken::new(login.refresh_token)?)
            .with_expires_in(Duration::from_secs(login.expires_in)),
    );

    // The client is built for the layer's body type; the service takes any body.
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<ReplayBody>();
    let service = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(hyper);

    server.expire_access_tokens();
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let request = http::Request::get(server.api_url(&format!("items/{i}")))
                .body(Full::<Bytes>::default())
                .unwrap();
            tokio::spawn(service.clone().oneshot(request))
        })
        .collect();
    for call in calls {
        assert_eq!(call.await??.status(), 200);
    }
    println!(
        "100 requests after expiry: all 200, {} token-endpoint call(s)",
        server.stats().token_calls
    );

    server.expire_access_tokens();
    let post = http::Request::post(server.api_url("echo"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(
            b"sent twice, once with each token",
        )))?;
    let response = service.clone().oneshot(post).await?;
    let status = response.status();
    let echoed = response.into_body().collect().await?.to_bytes();
    println!(
        "POST after expiry: {status}, echoed {:?}, {} token-endpoint call(s) in total",
        String::from_utf8_lossy(&echoed),
        server.stats().token_calls
    );
    server.shutdown().await;
    Ok(())
}
