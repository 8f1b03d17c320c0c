//! The layer's fast path (a valid token, no refresh) against the raw client with a static
//! `Authorization` header, in the same process, in interleaved rounds:
//!
//! - `--part hyper`: hyper-util's client over h2c against the testkit's API;
//! - `--part grpc`: a tonic `Channel` (the tests' generated client) against a tonic server
//!   in this process that checks the bearer token; the raw side adds the header with a
//!   tonic interceptor.
//!
//! Both sides of a comparison share one connection (the raw side uses the very service the
//! layer wraps), 64 concurrent workers, every response read. The goal is a ratio >= 0.98.
//!
//! `cargo bench -p reauth-tower --bench fast_path` (`-- --quick` for fewer rounds).
//! `REAUTH_BENCH_ONLY=raw|ours` runs one side alone (for callgrind), `REAUTH_BENCH_ROUNDS`
//! sets the rounds (of 6,400 requests).

#[allow(clippy::all, missing_docs)]
mod pb {
    include!("../tests/grpc/reauth.test.rs");
}

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use pb::items_client::ItemsClient;
use pb::items_server::{Items, ItemsServer};
use pb::{Item, ItemRequest};
use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth_core::protocol::OAuth2Grant;
use reauth_core::{AccessToken, Config, Origin, RefreshToken, TokenSet};
use reauth_testkit::{ServerConfig, TestServer};
use reauth_tower::{AuthLayer, ReplayBody};
use std::future::Future;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const WORKERS: usize = 64;
/// Short rounds, many of them: adjacent rounds of the two sides see the same load.
const PER_WORKER: usize = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Requests per second of `WORKERS` workers each sending `PER_WORKER` requests in turn.
async fn throughput<F, Fut>(send: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let send = send.clone();
            tokio::spawn(async move {
                for _ in 0..PER_WORKER {
                    assert!(send().await, "a request failed");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    (WORKERS * PER_WORKER) as f64 / start.elapsed().as_secs_f64()
}

/// Interleaved rounds of both sides (or one side alone under `REAUTH_BENCH_ONLY`), and
/// the `BENCH-JSON` line.
async fn compare<A, AF, B, BF>(bench: &str, rounds: usize, ours_once: A, raw_once: B)
where
    A: Fn() -> AF,
    AF: Future<Output = f64>,
    B: Fn() -> BF,
    BF: Future<Output = f64>,
{
    let rounds = std::env::var("REAUTH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(rounds);
    if let Ok(side) = std::env::var("REAUTH_BENCH_ONLY") {
        for _ in 0..rounds {
            let rps = if side == "raw" {
                raw_once().await
            } else {
                ours_once().await
            };
            println!("{bench} {side} {rps:.0} req/s");
        }
        return;
    }
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds + 1 {
        // Alternate which side goes first, so drift favours neither.
        let (a, b) = if round % 2 == 0 {
            let a = ours_once().await;
            (a, raw_once().await)
        } else {
            let b = raw_once().await;
            (ours_once().await, b)
        };
        // Round 0 warms connections and caches.
        if round > 0 {
            ours.push(a);
            theirs.push(b);
            ratios.push(a / b);
        }
    }
    let (a, b, per_round) = (median(ours), median(theirs), median(ratios));
    println!("{bench}, {WORKERS} concurrent, {rounds} rounds (median):");
    println!("  raw + static header   {b:>10.0} req/s");
    println!("  reauth-tower          {a:>10.0} req/s");
    println!("  ratio of medians      {:>10.3}   goal >= 0.98", a / b);
    println!("  median of per-round   {per_round:>10.3}");
    println!(
        "BENCH-JSON {}",
        serde_json::json!({"bench": bench, "concurrency": WORKERS, "rounds": rounds,
            "requests_per_round": WORKERS * PER_WORKER, "raw_rps": b, "reauth_rps": a,
            "ratio": a / b, "ratio_per_round": per_round})
    );
}

fn grant(server: &TestServer) -> OAuth2Grant {
    OAuth2Grant::refresh_token(
        TokenEndpoint::new(
            server.token_url().parse().unwrap(),
            ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
        )
        .unwrap(),
    )
}

/// A logged-in layer for `origin`, and the access token it holds.
fn layer(server: &TestServer, origin: &str, grpc: bool) -> (AuthLayer, String) {
    let mut config = Config::new(Origin::parse(&server.base_url()).unwrap());
    config.allowed_origins = vec![Origin::parse(origin).unwrap()];
    config.waiter_timeout = Duration::from_secs(60);
    let mut builder = AuthLayer::builder(config)
        .oauth2(grant(server))
        .default_origin(Origin::parse(origin).unwrap());
    if grpc {
        builder = builder.grpc();
    }
    let layer = builder.build().unwrap();
    let t = server.issue_tokens();
    layer.login(
        TokenSet::new(AccessToken::new(t.access_token.clone()).unwrap())
            .with_refresh_token(RefreshToken::new(t.refresh_token).unwrap())
            .with_expires_in(Duration::from_secs(t.expires_in)),
    );
    (layer, t.access_token)
}

/// The header both sides send, marked sensitive as the layer marks its own.
fn bearer(access: &str) -> http::HeaderValue {
    let mut header = http::HeaderValue::from_str(&format!("Bearer {access}")).unwrap();
    header.set_sensitive(true);
    header
}

async fn hyper_part(rounds: usize) {
    let server = TestServer::start(ServerConfig::default()).await.unwrap();
    let (layer, access) = layer(&server, &server.base_url(), false);
    // One client, so one shared h2c connection: its body type is the layer's, and the raw
    // side sends an empty one (in memory, as an `Empty` or `Full` is).
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(true);
    let raw: Client<HttpConnector, ReplayBody> = builder.build_http();
    let ours = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(raw.clone());
    let url: http::Uri = server.api_url("items/1").parse().unwrap();
    let header = bearer(&access);
    let ours_once = || {
        let (s, u) = (ours.clone(), url.clone());
        throughput(move || {
            let (s, u) = (s.clone(), u.clone());
            async move {
                let request = http::Request::get(u).body(Empty::<Bytes>::new()).unwrap();
                let response = s.oneshot(request).await.unwrap();
                let ok = response.status() == 200;
                response.into_body().collect().await.unwrap();
                ok
            }
        })
    };
    let raw_once = || {
        let (c, u, h) = (raw.clone(), url.clone(), header.clone());
        throughput(move || {
            let (c, u, h) = (c.clone(), u.clone(), h.clone());
            async move {
                let request = http::Request::get(u)
                    .header(http::header::AUTHORIZATION, h)
                    .body(ReplayBody::from(Bytes::new()))
                    .unwrap();
                let response = c.request(request).await.unwrap();
                let ok = response.status() == 200;
                response.into_body().collect().await.unwrap();
                ok
            }
        })
    };
    compare("tower_hyper_fast_path", rounds, ours_once, raw_once).await;
    server.shutdown().await;
}

/// The gRPC API: a call succeeds if it carries the expected bearer header.
struct Api {
    expected: http::HeaderValue,
}

#[tonic::async_trait]
impl Items for Api {
    async fn get(
        &self,
        request: tonic::Request<ItemRequest>,
    ) -> Result<tonic::Response<Item>, tonic::Status> {
        let token = request.metadata().get("authorization");
        if token.map(|t| t.as_bytes()) != Some(self.expected.as_bytes()) {
            return Err(tonic::Status::unauthenticated("token refused"));
        }
        let id = request.get_ref().id;
        Ok(tonic::Response::new(Item {
            id,
            name: format!("item {id}"),
        }))
    }

    type ListStream = futures_util::stream::Empty<Result<Item, tonic::Status>>;

    async fn list(
        &self,
        _: tonic::Request<ItemRequest>,
    ) -> Result<tonic::Response<Self::ListStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not benchmarked"))
    }

    type ListThenRefuseStream = futures_util::stream::Empty<Result<Item, tonic::Status>>;

    async fn list_then_refuse(
        &self,
        _: tonic::Request<ItemRequest>,
    ) -> Result<tonic::Response<Self::ListThenRefuseStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not benchmarked"))
    }
}

async fn grpc_part(rounds: usize) {
    let server = TestServer::start(ServerConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (layer, access) = layer(&server, &origin, true);
    let header = bearer(&access);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let api = Api {
        expected: header.clone(),
    };
    let grpc_server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ItemsServer::new(api))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
    });
    let channel = tonic::transport::Endpoint::from_shared(origin)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ours = ItemsClient::new(
        tower::ServiceBuilder::new()
            .layer(layer.with_body::<tonic::body::Body>())
            .service(channel.clone()),
    );
    let mut metadata = tonic::metadata::MetadataValue::try_from(header.as_bytes()).unwrap();
    // Never indexed by HPACK, as the layer's header: the same bytes on the wire.
    metadata.set_sensitive(true);
    let raw = ItemsClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", metadata.clone());
        Ok(request)
    });
    let ours_once = || {
        let c = ours.clone();
        throughput(move || {
            let mut c = c.clone();
            async move { c.get(ItemRequest { id: 1, count: 0 }).await.is_ok() }
        })
    };
    let raw_once = || {
        let c = raw.clone();
        throughput(move || {
            let mut c = c.clone();
            async move { c.get(ItemRequest { id: 1, count: 0 }).await.is_ok() }
        })
    };
    compare("tower_grpc_fast_path", rounds, ours_once, raw_once).await;
    drop((ours, raw));
    let _ = stop.send(());
    grpc_server.await.unwrap();
    server.shutdown().await;
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let part = std::env::args().skip_while(|a| a != "--part").nth(1);
    let rounds = if quick { 7 } else { 31 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if part.as_deref() != Some("grpc") {
            hyper_part(rounds).await;
        }
        if part.as_deref() != Some("hyper") {
            grpc_part(rounds).await;
        }
    });
}
