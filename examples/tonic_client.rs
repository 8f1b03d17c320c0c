//! A tonic client under the tower layer, against the embedded testkit and a small tonic
//! server in this process. The server's `Items` service asks the testkit's API whether a
//! call's bearer token is good and answers `UNAUTHENTICATED` (trailers-only) when it is
//! not. The client is the generated `ItemsClient` over a tonic `Channel` wrapped by
//! `reauth::tower::AuthLayer` with the gRPC trigger. After the testkit expires the access
//! token, 100 concurrent unary calls all succeed with one token-endpoint call; the run
//! exits non-zero if either fact fails.
//!
//! ```sh
//! cargo run --release --example tonic_client --features tonic
//! ```

// Generated from the tower crate's test proto (`items.proto`) with protox and
// tonic-prost-build and checked in there (its `tests/generated.rs` keeps it current); a
// project would generate its own in a build script.
#[allow(clippy::all, missing_docs)]
mod pb {
    include!("../adapters/tower/tests/grpc/reauth.test.rs");
}

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use pb::items_client::ItemsClient;
use pb::items_server::{Items, ItemsServer};
use pb::{Item, ItemRequest};
use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::tower::AuthLayer;
use reauth::{AccessToken, Config, Origin, RefreshToken, TokenSet};
use reauth_testkit::{ServerConfig, TestServer};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Concurrent unary calls sent after the access token expired.
pub const CALLS: u32 = 100;

/// What the run saw (for the closing lines, and for `tests/tonic_client.rs`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Calls after expiry that returned their item.
    pub ok: u32,
    /// Calls to the token endpoint during them.
    pub token_calls: u64,
    /// `UNAUTHENTICATED` answers the gRPC server gave during them (each one replayed).
    pub unauthenticated: u64,
}

impl Summary {
    /// The promise: every call succeeded, and the expiry cost one refresh.
    pub fn kept(&self) -> bool {
        self.ok == CALLS && self.token_calls == 1
    }
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run()) {
        Ok(s) => {
            println!("{CALLS} unary calls after expiry: {} ok", s.ok);
            println!("token-endpoint calls: {} (expected 1)", s.token_calls);
            println!(
                "UNAUTHENTICATED answers replayed after the refresh: {}",
                s.unauthenticated
            );
            if s.kept() {
                ExitCode::SUCCESS
            } else {
                eprintln!("tonic_client: the promise failed: {s:?}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("tonic_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The gRPC API: each call's token is checked by the testkit's API.
struct Api {
    http: Client<HttpConnector, Empty<Bytes>>,
    check_url: String,
    unauthenticated: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl Items for Api {
    async fn get(&self, request: Request<ItemRequest>) -> Result<Response<Item>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("no token"))?;
        let check = http::Request::get(&self.check_url)
            .header(http::header::AUTHORIZATION, token.as_bytes())
            .body(Empty::new())
            .map_err(|_| Status::internal("the token check could not be built"))?;
        let answer = self
            .http
            .request(check)
            .await
            .map_err(|_| Status::unavailable("the token check failed"))?;
        if answer.status() != http::StatusCode::OK {
            self.unauthenticated.fetch_add(1, Ordering::Relaxed);
            return Err(Status::unauthenticated("token refused"));
        }
        let id = request.get_ref().id;
        Ok(Response::new(Item {
            id,
            name: format!("item {id}"),
        }))
    }

    type ListStream = tokio_stream::Empty<Result<Item, Status>>;

    async fn list(&self, _: Request<ItemRequest>) -> Result<Response<Self::ListStream>, Status> {
        Err(Status::unimplemented("not in this example"))
    }

    type ListThenRefuseStream = tokio_stream::Empty<Result<Item, Status>>;

    async fn list_then_refuse(
        &self,
        _: Request<ItemRequest>,
    ) -> Result<Response<Self::ListThenRefuseStream>, Status> {
        Err(Status::unimplemented("not in this example"))
    }
}

/// Starts the testkit and the gRPC server, sends the calls, stops both.
pub async fn run() -> Result<Summary, Box<dyn std::error::Error + Send + Sync>> {
    let server = TestServer::start(ServerConfig::default()).await?;
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse()?)?;
    let origin = Origin::parse(&format!("http://{}", incoming.local_addr()?))?;
    let unauthenticated = Arc::new(AtomicU64::new(0));
    let mut checker = Client::builder(hyper_util::rt::TokioExecutor::new());
    checker.http2_only(true);
    let api = Api {
        http: checker.build_http(),
        check_url: server.api_url("items/1"),
        unauthenticated: unauthenticated.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ItemsServer::new(api))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );

    // The token endpoint is the testkit's; the token goes only to the gRPC server.
    let mut config = Config::new(origin.clone());
    config.waiter_timeout = Duration::from_secs(30);
    let endpoint = TokenEndpoint::new(
        server.token_url().parse()?,
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )?;
    let auth = AuthLayer::builder(config)
        .oauth2(OAuth2Grant::refresh_token(endpoint))
        .grpc()
        // The generated client sends bare paths (`/reauth.test.Items/Get`).
        .default_origin(origin.clone())
        .build()?;
    let login = server.issue_tokens();
    auth.login(
        TokenSet::new(AccessToken::new(login.access_token)?)
            .with_refresh_token(RefreshToken::new(login.refresh_token)?)
            .with_expires_in(Duration::from_secs(login.expires_in)),
    );
    let channel = tonic::transport::Endpoint::from_shared(origin.to_string())?
        .connect()
        .await?;
    let service = tower::ServiceBuilder::new()
        .layer(auth.with_body::<tonic::body::Body>())
        .service(channel);
    let client = ItemsClient::new(service);

    server.expire_access_tokens();
    server.reset_stats();
    unauthenticated.store(0, Ordering::Relaxed);
    let calls: Vec<_> = (0..CALLS)
        .map(|id| {
            let mut client = client.clone();
            tokio::spawn(async move { client.get(ItemRequest { id, count: 0 }).await })
        })
        .collect();
    let mut ok = 0;
    for (id, call) in (0..CALLS).zip(calls) {
        match call.await? {
            Ok(item) if item.get_ref().id == id => ok += 1,
            Ok(item) => eprintln!("call {id} got item {}", item.get_ref().id),
            Err(status) => eprintln!("call {id} failed: {:?}", status.code()),
        }
    }
    let summary = Summary {
        ok,
        token_calls: server.stats().token_calls,
        unauthenticated: unauthenticated.load(Ordering::Relaxed),
    };

    drop(client);
    let _ = stop.send(());
    grpc.await??;
    server.shutdown().await;
    Ok(summary)
}
