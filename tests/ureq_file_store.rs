//! The blocking adapter over a `FileStore`: a session that survives a restart, two agents
//! (as two processes would) sharing one file with one refresh, a corrupt file that
//! starts the agent logged out instead of panicking, a newer build's file left intact,
//! and a logout one agent writes that ends the other's session.
#![cfg(all(feature = "file-store", feature = "ureq"))]

use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
use reauth::protocol::OAuth2Grant;
use reauth::ureq::Agent;
use reauth::{
    AccessToken, Config, Entry, Event, FileStore, Origin, Phase, RefreshToken, StoreErrorKind,
    TokenSet,
};
use reauth_testkit::{ServerConfig, TestServer};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn agent(server: &TestServer, file: &Path) -> Agent {
    agent_with_events(server, file, |_| {})
}

fn agent_with_events(
    server: &TestServer,
    file: &Path,
    on_event: impl Fn(&Event) + Send + Sync + 'static,
) -> Agent {
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
        .on_event(on_event)
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
        // The agent writes on the calling thread: the login is in the file already.
        let lineage = first.snapshot().lineage;
        let saved = FileStore::new(&file).read_record().unwrap().unwrap();
        assert_eq!((Some(saved.lineage), saved.version), (lineage, 1));
        // A second "process" starts from the file the first one wrote.
        let second = agent(server, &file);
        assert_eq!(second.snapshot().phase, Phase::Valid);
        assert_eq!(second.snapshot().lineage, lineage);
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
        let saved = FileStore::new(&file).read_record().unwrap().unwrap();
        assert_eq!((Some(saved.lineage), saved.version), (lineage, 2));
        let third = agent(server, &file);
        assert_eq!(third.snapshot().version, Some(2));
        assert_eq!(third.get(&url).call().unwrap().status().as_u16(), 200);
        assert_eq!(server.stats().token_calls, 1);
    });
}

fn login_set(issued: &reauth_testkit::IssuedTokens) -> TokenSet {
    TokenSet::new(AccessToken::new(issued.access_token.clone()).unwrap())
        .with_refresh_token(RefreshToken::new(issued.refresh_token.clone()).unwrap())
        .with_expires_in(Duration::from_secs(issued.expires_in))
}

#[test]
fn a_logout_by_one_agent_ends_the_other_at_its_next_refresh() {
    with_server(|server| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        let first = agent(server, &file);
        first.login(login_set(&server.issue_tokens()));
        let second = agent(server, &file);
        first.logout();
        let saved = FileStore::new(&file).read_record().unwrap().unwrap();
        assert!(matches!(saved.entry, Entry::LoggedOut(_)), "a tombstone");
        // The second agent's token still works until it expires; then the tombstone
        // ends its session instead of a refresh.
        let url = server.api_url("items/1");
        assert_eq!(second.get(&url).call().unwrap().status().as_u16(), 200);
        server.expire_access_tokens();
        let err = second.get(&url).call().unwrap_err();
        assert!(err.is_logged_out(), "{err}");
        assert_eq!(second.snapshot().phase, Phase::LoggedOut);
        assert_eq!(server.stats().token_calls, 0);
        let after = FileStore::new(&file).read_record().unwrap().unwrap();
        assert_eq!(after, saved, "the tombstone stays");
    });
}

/// A file as a newer build (format version 3) might write it.
const FUTURE: &[u8] =
    br#"{"format":"reauth-tokens","version":3,"checksum":"crc32:00000000","record":{}}"#;

#[test]
fn a_newer_builds_file_is_left_intact_by_the_agent_and_its_login() {
    with_server(|server| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        std::fs::write(&file, FUTURE).unwrap();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let a = agent_with_events(server, &file, move |e| {
            if let Event::StoreFailed { error } = e {
                seen.lock().unwrap().push(error.kind());
            }
        });
        let err = a.store_load_error().expect("the load error is kept");
        assert_eq!(err.kind(), StoreErrorKind::NewerFormat);
        assert_eq!(a.snapshot().phase, Phase::Empty);
        a.login(login_set(&server.issue_tokens()));
        // The write is refused (on this thread, so already), the session goes on in memory.
        assert_eq!(*failures.lock().unwrap(), [StoreErrorKind::NewerFormat]);
        let r = a.get(server.api_url("items/1")).call().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(std::fs::read(&file).unwrap(), FUTURE);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
        assert!(!aside, "nothing was set aside");
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
