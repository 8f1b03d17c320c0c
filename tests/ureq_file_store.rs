//! The blocking adapter over a `FileStore`: a session that survives a restart, two agents
//! (as two processes would) sharing one file with one refresh, and a corrupt file that
//! starts the agent logged out instead of panicking.
#![cfg(all(feature = "file-store", feature = "ureq"))]

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::ureq::Agent;
use reauth::{AccessToken, Config, FileStore, Origin, Phase, RefreshToken, TokenSet};
use reauth_testkit::{ServerConfig, TestServer};
use std::path::Path;
use std::time::Duration;

fn agent(server: &TestServer, file: &Path) -> Agent {
    let endpoint = TokenEndpoint::new(
        server.token_url().parse().unwrap(),
        ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
    )
    .unwrap();
    let mut config = Config::new(Origin::parse(&server.base_url()).unwrap());
    config.refresh_timeout = Duration::from_secs(5);
    Agent::builder(ureq::Agent::new_with_defaults(), config)
        .oauth2(OAuth2Grant::refresh_token(endpoint))
        .store(FileStore::new(file))
        .build()
        .unwrap()
}

/// The testkit runs on a runtime this test owns; the agents block on plain threads.
fn with_server(f: impl FnOnce(&TestServer)) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    f(&server);
    rt.block_on(server.shutdown());
}

#[test]
fn two_agents_on_one_file_refresh_once_and_survive_a_restart() {
    with_server(|server| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        let first = agent(server, &file);
        let issued = server.issue_tokens();
        first.login(
            TokenSet::new(AccessToken::new(issued.access_token).unwrap())
                .with_refresh_token(RefreshToken::new(issued.refresh_token).unwrap())
                .with_expires_in(Duration::from_secs(issued.expires_in)),
        );
        // A second "process" starts from the file the first one wrote.
        let second = agent(server, &file);
        assert_eq!(second.snapshot().phase, Phase::Valid);
        server.expire_access_tokens();
        let url = server.api_url("items/1");
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (a, url) = (
                    if i % 2 == 0 {
                        first.clone()
                    } else {
                        second.clone()
                    },
                    url.clone(),
                );
                std::thread::spawn(move || a.get(&url).call().map(|r| r.status().as_u16()))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), 200);
        }
        let stats = server.stats();
        assert_eq!(stats.token_calls, 1, "{stats:?}");
        assert_eq!(stats.reuse_detections, 0);
        // A restart: a third agent picks the rotated tokens up from the file.
        let third = agent(server, &file);
        assert_eq!(third.get(&url).call().unwrap().status().as_u16(), 200);
        assert_eq!(server.stats().token_calls, 1);
    });
}

#[test]
fn a_corrupt_token_file_starts_the_agent_logged_out() {
    with_server(|server| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        std::fs::write(&file, b"{\"format\":\"reauth-tokens\",\"vers").unwrap();
        let a = agent(server, &file);
        assert!(a.store_load_error().is_some());
        assert_eq!(a.snapshot().phase, Phase::Empty);
        let err = a.get(server.api_url("items/1")).call().unwrap_err();
        assert!(err.to_string().contains("not authenticated"), "{err}");
        // The bad file was set aside for inspection, not overwritten.
        let kept = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
        assert!(kept);
    });
}
