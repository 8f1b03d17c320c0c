//! Accept loops: HTTP/1.1 and h2c (prior knowledge) on the same port.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::respond::{self, Abort, Reply};
use crate::shutdown::{ShutdownExecutor, ShutdownSignal};
use crate::state::Shared;
use crate::{api, token_endpoint};

/// The hyper service of the main listener: routes to the token endpoints and the API.
#[derive(Clone)]
pub(crate) struct MainService(pub(crate) Arc<Shared>);

impl hyper::service::Service<Request<Incoming>> for MainService {
    type Response = respond::Resp;
    type Error = Abort;
    type Future = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            let path = req.uri().path();
            if path == "/oauth/token" {
                token_endpoint::oauth(&shared, req).await
            } else if path == "/auth/refresh" {
                token_endpoint::json_refresh(&shared, req).await
            } else if path.starts_with("/api/") {
                api::handle(&shared, req).await
            } else {
                Ok(respond::not_found())
            }
        })
    }
}

/// Serves `listener` until `shutdown` fires, then closes it and every connection.
pub(crate) fn spawn_accept_loop<S>(
    listener: TcpListener,
    service: S,
    shutdown: ShutdownSignal,
    http2_max_concurrent_streams: u32,
    on_accept: impl Fn() + Send + 'static,
) -> JoinHandle<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = respond::Resp, Error = Abort>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(ShutdownExecutor(shutdown.clone()));
    builder.http1().timer(TokioTimer::new());
    // Tests cancel thousands of requests at once; on the internet that pattern looks like
    // a reset flood and hyper would answer GOAWAY. Here it is the point, so allow it.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(http2_max_concurrent_streams as usize)
        .max_local_error_reset_streams(None);
    let builder = Arc::new(builder);
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                // Reap finished connections so the set does not grow without bound.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        on_accept();
                        let _ = stream.set_nodelay(true);
                        let builder = builder.clone();
                        let service = service.clone();
                        let shutdown = shutdown.clone();
                        connections.spawn(async move {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            tokio::select! {
                                _ = conn => {}
                                _ = shutdown.wait() => {}
                            }
                        });
                    }
                    // Out of file descriptors or similar: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
        drop(listener);
        connections.shutdown().await;
    })
}
