//! tonic end to end: a real tonic server whose service checks the bearer token in the
//! metadata against the testkit (it asks the testkit's API with it) and answers
//! UNAUTHENTICATED when the testkit refuses it; a generated client over a `Channel`
//! wrapped by the layer.

mod common;

#[allow(clippy::all, missing_docs)]
mod pb {
    include!("grpc/reauth.test.rs");
}

use bytes::Bytes;
use common::{bounded, grant, session_config, token_set};
use futures_util::StreamExt;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use pb::items_client::ItemsClient;
use pb::items_server::{Items, ItemsServer};
use pb::{Item, ItemRequest};
use reauth_core::{Config, Event, Origin};
use reauth_testkit::{ServerConfig, TestServer};
use reauth_tower::{AuthLayer, AuthService};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

type ItemStream = Pin<Box<dyn futures_util::Stream<Item = Result<Item, Status>> + Send>>;

/// The gRPC API: every call's token is checked by the testkit's API.
struct Api {
    http: Client<HttpConnector, Empty<Bytes>>,
    check_url: String,
    /// Told when a delayed check begins.
    delayed: Arc<Notify>,
    /// UNAUTHENTICATED answers given.
    refused: Arc<AtomicU64>,
}

impl Api {
    async fn authorize<T>(&self, request: &Request<T>, delay_ms: u32) -> Result<(), Status> {
        let Some(token) = request.metadata().get("authorization") else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Status::unauthenticated("no token"));
        };
        if delay_ms > 0 {
            self.delayed.notify_one();
        }
        let check = http::Request::get(format!("{}?delay_ms={delay_ms}", self.check_url))
            .header(http::header::AUTHORIZATION, token.as_bytes())
            .body(Empty::new())
            .unwrap();
        let answer = self
            .http
            .request(check)
            .await
            .map_err(|_| Status::unavailable("the token check failed"))?;
        match answer.status().as_u16() {
            200 => Ok(()),
            401 => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Status::unauthenticated("token refused"))
            }
            other => Err(Status::internal(format!("token check answered {other}"))),
        }
    }
}

fn item(id: u32) -> Item {
    Item {
        id,
        name: format!("item {id}"),
    }
}

#[tonic::async_trait]
impl Items for Api {
    /// `count` is a delay here: the token is checked that many milliseconds later.
    async fn get(&self, request: Request<ItemRequest>) -> Result<Response<Item>, Status> {
        self.authorize(&request, request.get_ref().count).await?;
        Ok(Response::new(item(request.get_ref().id)))
    }

    type ListStream = ItemStream;

    async fn list(&self, request: Request<ItemRequest>) -> Result<Response<ItemStream>, Status> {
        self.authorize(&request, 0).await?;
        let ItemRequest { id, count } = *request.get_ref();
        let items = (id..id + count).map(|i| Ok(item(i)));
        Ok(Response::new(Box::pin(futures_util::stream::iter(items))))
    }

    type ListThenRefuseStream = ItemStream;

    async fn list_then_refuse(
        &self,
        request: Request<ItemRequest>,
    ) -> Result<Response<ItemStream>, Status> {
        self.authorize(&request, 0).await?;
        let answers = [
            Ok(item(request.get_ref().id)),
            Err(Status::unauthenticated("refused after a message")),
        ];
        Ok(Response::new(Box::pin(futures_util::stream::iter(answers))))
    }
}

struct Grpc {
    server: TestServer,
    layer: AuthLayer,
    client: ItemsClient<AuthService<Channel, tonic::body::Body>>,
    delayed: Arc<Notify>,
    /// UNAUTHENTICATED answers the gRPC server gave.
    refused: Arc<AtomicU64>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn setup() -> Grpc {
    setup_with(ServerConfig::default(), |_| {}).await
}

/// A gRPC server and a logged-in layer, the testkit started with `server_config` and the
/// session's config adjusted by `tweak`.
async fn setup_with(server_config: ServerConfig, tweak: impl FnOnce(&mut Config)) -> Grpc {
    let server = TestServer::start(server_config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let mut checker = Client::builder(hyper_util::rt::TokioExecutor::new());
    checker.http2_only(true);
    let delayed = Arc::new(Notify::new());
    let refused = Arc::new(AtomicU64::new(0));
    let api = Api {
        http: checker.build_http(),
        check_url: server.api_url("items/1"),
        delayed: delayed.clone(),
        refused: refused.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
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
    // The token endpoint is the testkit's; the gRPC API is another origin, the allowed one.
    let mut config = session_config(&server);
    config.allowed_origins = vec![Origin::parse(&origin).unwrap()];
    tweak(&mut config);
    let layer = AuthLayer::builder(config)
        .oauth2(grant(&server))
        .grpc()
        .default_origin(Origin::parse(&origin).unwrap())
        .jitter_seed(7)
        .build()
        .unwrap();
    layer.login(token_set(&server.issue_tokens()));
    let channel = tonic::transport::Endpoint::from_shared(origin)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(layer.with_body::<tonic::body::Body>())
        .service(channel);
    Grpc {
        server,
        layer,
        client: ItemsClient::new(service),
        delayed,
        refused,
        stop,
        task,
    }
}

impl Grpc {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        drop(self.client);
        self.task.await.unwrap();
        self.server.shutdown().await;
    }
}

async fn get(
    mut client: ItemsClient<AuthService<Channel, tonic::body::Body>>,
    id: u32,
) -> Result<u32, Code> {
    client
        .get(ItemRequest { id, count: 0 })
        .await
        .map(|r| r.into_inner().id)
        .map_err(|s| s.code())
}

/// 1,000 concurrent unary calls after expiry: one token-endpoint call, all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_1000_unary_calls_refreshes_once() {
    bounded(async {
        let g = setup().await;
        assert_eq!(get(g.client.clone(), 7).await, Ok(7));
        g.server.expire_access_tokens();
        g.server.reset_stats();
        let started = Instant::now();
        let calls: Vec<_> = (0..1000)
            .map(|i| tokio::spawn(get(g.client.clone(), i)))
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Ok(i as u32));
        }
        let took = started.elapsed();
        let stats = g.server.stats();
        assert_eq!(stats.token_calls, 1, "{stats:?}");
        // The storm was real: calls met the expired token (the API's check said 401).
        assert!(stats.api_status(401) >= 1, "{stats:?}");
        assert_eq!(g.layer.snapshot().generation.get(), 2);
        eprintln!(
            "gRPC storm n=1000: {took:?}, token calls {}, UNAUTHENTICATED {}",
            stats.token_calls,
            stats.api_status(401)
        );
        g.shutdown().await;
    })
    .await;
}

/// A server-streaming call whose token expired gets a trailers-only UNAUTHENTICATED,
/// is replayed after the refresh, and streams every item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_call_is_replayed_after_a_trailers_only_unauthenticated() {
    bounded(async {
        let g = setup().await;
        g.server.expire_access_tokens();
        g.server.reset_stats();
        let mut client = g.client.clone();
        let stream = client
            .list(ItemRequest { id: 10, count: 5 })
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<u32> = stream.map(|r| r.unwrap().id).collect().await;
        assert_eq!(ids, [10, 11, 12, 13, 14]);
        let stats = g.server.stats();
        assert_eq!(
            (stats.token_calls, stats.api_status(401)),
            (1, 1),
            "{stats:?}"
        );
        g.shutdown().await;
    })
    .await;
}

/// UNAUTHENTICATED in the trailers after a message cannot be replayed: the caller gets
/// it, and the session refreshes for the next call, which succeeds with one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_in_trailers_refreshes_for_the_next_call() {
    bounded(async {
        let g = setup().await;
        g.server.reset_stats();
        let mut events = g.layer.subscribe();
        let mut client = g.client.clone();
        let mut stream = client
            .list_then_refuse(ItemRequest { id: 3, count: 0 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stream.next().await.unwrap().unwrap().id, 3);
        assert_eq!(
            stream.next().await.unwrap().unwrap_err().code(),
            Code::Unauthenticated
        );
        loop {
            if let reauth_core::Event::Refreshed { .. } = events.recv().await.unwrap() {
                break;
            }
        }
        assert_eq!(g.layer.snapshot().generation.get(), 2);
        assert_eq!(get(g.client.clone(), 4).await, Ok(4));
        let stats = g.server.stats();
        assert_eq!(stats.token_calls, 1, "{stats:?}");
        g.shutdown().await;
    })
    .await;
}

/// A call sent with a token that was replaced while it was in flight (a stale
/// UNAUTHENTICATED) is replayed with the new token, without a second refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_unauthenticated_is_replayed_without_a_refresh() {
    bounded(async {
        let g = setup().await;
        g.server.expire_access_tokens();
        g.server.reset_stats();
        // The slow call's token is checked 400 ms after it arrives...
        let mut slow_client = g.client.clone();
        let slow = tokio::spawn(async move {
            slow_client
                .get(ItemRequest { id: 1, count: 400 })
                .await
                .map(|r| r.into_inner().id)
                .map_err(|s| s.code())
        });
        tokio::time::timeout(Duration::from_secs(10), g.delayed.notified())
            .await
            .expect("the slow call reached the API");
        // ...meanwhile a fast call meets the expired token and refreshes.
        assert_eq!(get(g.client.clone(), 2).await, Ok(2));
        assert_eq!(g.server.stats().token_calls, 1);
        assert_eq!(g.layer.snapshot().generation.get(), 2);
        // The slow call's UNAUTHENTICATED is about the old token: replayed, no refresh.
        assert_eq!(slow.await.unwrap(), Ok(1));
        let stats = g.server.stats();
        assert_eq!(
            (
                stats.token_calls,
                stats.api_status(401),
                stats.api_status(200)
            ),
            (1, 2, 2),
            "{stats:?}"
        );
        g.shutdown().await;
    })
    .await;
}

/// Proactive refresh: a token near its expiry is replaced in the background while calls
/// flow, before any call is refused. The next call carries the new token (the testkit
/// revokes the old one on rotation, so the old one would be refused) and the server never
/// answered UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_expiry_is_refreshed_before_any_unauthenticated() {
    bounded(async {
        // Tokens live 2 s: with a refresh window longer than that, the stale window opens
        // at half the lifetime (never earlier), 1 s after the login.
        let g = setup_with(
            ServerConfig::default()
                .with_access_token_lifetime(Duration::from_secs(2))
                .with_access_revoked_on_rotation(true),
            |c| {
                c.leeway = Duration::from_millis(500);
                c.refresh_window = Duration::from_secs(30);
            },
        )
        .await;
        g.server.reset_stats();
        let mut events = g.layer.subscribe();
        // A call: requests are flowing, so the stale-window timer refreshes.
        assert_eq!(get(g.client.clone(), 1).await, Ok(1));
        assert_eq!(g.layer.snapshot().generation.get(), 1);
        loop {
            match events.recv().await.unwrap() {
                Event::Refreshed { .. } => break,
                Event::RefreshFailed { .. } | Event::LoggedOut { .. } => {
                    panic!("the proactive refresh failed")
                }
                _ => {}
            }
        }
        assert_eq!(g.layer.snapshot().generation.get(), 2);
        assert_eq!(get(g.client.clone(), 2).await, Ok(2));
        let stats = g.server.stats();
        assert_eq!(stats.token_calls, 1, "{stats:?}");
        assert_eq!(
            stats.api_status(401),
            0,
            "a call met a refused token: {stats:?}"
        );
        assert_eq!(stats.api_status(200), 2, "{stats:?}");
        // Two tokens reached the API: the login's, then the refreshed one.
        assert_eq!(stats.tokens_seen("/api/items/{id}"), 2, "{stats:?}");
        assert_eq!(g.refused.load(Ordering::Relaxed), 0);
        g.shutdown().await;
    })
    .await;
}
