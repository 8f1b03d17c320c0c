//! Start, shutdown, drop: loopback only, ports released, no tasks left behind.

mod common;

use std::net::{SocketAddr, TcpStream};

use common::*;
use reauth_testkit::{Fault, ServerConfig, TestServer};

fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).is_err()
}

#[tokio::test]
async fn binds_loopback_only_and_serves_both_protocols() {
    bounded(async {
        let server = server().await;
        assert!(server.addr().ip().is_loopback());
        assert!(server.leak_addr().ip().is_loopback());
        assert_ne!(server.addr().port(), server.leak_addr().port());
        let at = server.issue_tokens().access_token;
        for c in [h1(), h2()] {
            let resp = get_item(&c, &server, &at).await;
            let version = resp.version();
            assert_eq!(resp.status(), 200, "{version:?}");
        }
        assert_eq!(
            get_item(&h2(), &server, &at).await.version(),
            reqwest::Version::HTTP_2
        );
        assert_eq!(
            get_item(&h1(), &server, &at).await.version(),
            reqwest::Version::HTTP_11
        );
        server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn shutdown_releases_both_ports() {
    bounded(async {
        let server = server().await;
        let (addr, leak) = (server.addr(), server.leak_addr());
        // Leave a keep-alive connection open on each listener.
        let c = h1();
        get_item(&c, &server, "x").await;
        c.get(server.leak_url()).send().await.unwrap();
        server.shutdown().await;
        assert!(refused(addr) && refused(leak));
        // The ports can be bound again at once.
        drop(std::net::TcpListener::bind(addr).unwrap());
        drop(std::net::TcpListener::bind(leak).unwrap());
    })
    .await
}

#[tokio::test]
async fn dropping_the_handle_shuts_down() {
    bounded(async {
        let server = server().await;
        let (addr, leak) = (server.addr(), server.leak_addr());
        drop(server);
        eventually(|| refused(addr) && refused(leak)).await;
    })
    .await
}

#[tokio::test]
async fn fixed_port_from_config() {
    bounded(async {
        // Find a free port, release it, then ask for it explicitly.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = TestServer::start(ServerConfig::default().with_port(port))
            .await
            .unwrap();
        assert_eq!(server.addr().port(), port);
        assert_eq!(server.base_url(), format!("http://127.0.0.1:{port}"));
        assert_eq!(
            server.token_url(),
            format!("http://127.0.0.1:{port}/oauth/token")
        );
        // A second server cannot take the same port.
        assert!(TestServer::start(ServerConfig::default().with_port(port))
            .await
            .is_err());
        server.shutdown().await;
    })
    .await
}

#[test]
fn no_task_outlives_shutdown() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bounded(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let baseline = metrics.num_alive_tasks();
        let server = server().await;
        let login = server.issue_tokens();
        {
            let (c1, c2) = (h1(), h2());
            for c in [&c1, &c2] {
                get_item(c, &server, &login.access_token).await;
                c.get(server.leak_url()).send().await.unwrap();
            }
            // Park requests in Hang faults over both protocols, then shut down under them.
            server.push_faults(Fault::Hang, 2);
            let hung: Vec<_> = [&c1, &c2]
                .into_iter()
                .map(|c| {
                    tokio::spawn(token_request(c, &server, "grant_type=client_credentials").send())
                })
                .collect();
            eventually(|| server.stats().hangs_in_flight == 2).await;
            server.shutdown().await;
            for h in hung {
                assert!(h.await.unwrap().is_err());
            }
        }
        // The clients' own connection tasks wind down once the sockets are closed.
        eventually(|| metrics.num_alive_tasks() <= baseline).await;
    }));
}
