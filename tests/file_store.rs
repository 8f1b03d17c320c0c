//! `FileStore` on its own and under the async adapter: format, atomic replacement,
//! permissions, unreadable files, the lock's deadline, and sessions that survive restarts.
#![cfg(feature = "file-store")]

use reauth::{
    AccessToken, FileStore, FileStoreError, RefreshToken, SavedTokens, StoreErrorKind, TokenStore,
};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn tokens(access: &str, refresh: &str) -> SavedTokens {
    SavedTokens {
        access_token: AccessToken::new(access).unwrap(),
        refresh_token: Some(RefreshToken::new(refresh).unwrap()),
        expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        scope: Some("read write".into()),
    }
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn round_trips_and_replaces_atomically_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    assert_eq!(store.read().unwrap(), None);
    for i in 0..20 {
        store
            .write(&tokens(&format!("access-{i}"), &format!("refresh-{i}")))
            .unwrap();
    }
    let back = store.read().unwrap().unwrap();
    assert_eq!(back.access_token.secret(), "access-19");
    assert_eq!(back.refresh_token.unwrap().secret(), "refresh-19");
    assert_eq!(back.scope.as_deref(), Some("read write"));
    // Stored as whole UNIX seconds, rounded down.
    let left = back
        .expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3590));
    // No temporary file is left behind: just the token file.
    assert_eq!(names(dir.path()), ["tokens.json"]);
    // Through the trait too.
    store.clear().unwrap();
    assert_eq!(store.load().unwrap(), None);
    store.clear().unwrap();
    assert!(names(dir.path()).is_empty());
}

#[cfg(unix)]
#[test]
fn the_token_file_the_lock_file_and_a_new_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("app").join("tokens.json"));
    store.write(&tokens("a", "r")).unwrap();
    drop(store.lock(Duration::from_secs(1)).unwrap());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(store.lock_path()), 0o600);
    assert_eq!(mode(&dir.path().join("app")), 0o700);
    // A rewrite keeps it private even if someone loosened it.
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
    store.write(&tokens("b", "r")).unwrap();
    assert_eq!(mode(store.path()), 0o600);
}

/// Writes `bytes` as the token file, reads it, and checks the typed error, the file set
/// aside with its bytes intact, and that the store then reads as empty.
fn unreadable(bytes: &[u8], check: impl Fn(&FileStoreError)) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    fs::write(store.path(), bytes).unwrap();
    let err = store.read().unwrap_err();
    check(&err);
    assert!(err.is_unreadable());
    let aside = err.quarantined().expect("set aside").to_owned();
    let name = aside.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("tokens.json.corrupt-"), "{name}");
    assert_eq!(fs::read(&aside).unwrap(), bytes);
    assert!(err.to_string().contains("kept aside as"), "{err}");
    assert_eq!(store.read().unwrap(), None);
    // The trait reports it as a Corrupt StoreError, the typed error inside.
    fs::write(store.path(), bytes).unwrap();
    let err = store.load().unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    assert!(err.downcast_ref::<FileStoreError>().is_some());
    assert_eq!(names(dir.path()).len(), 2 + 1, "{:?}", names(dir.path()));
}

#[test]
fn corrupt_truncated_newer_and_altered_files_are_typed_errors_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let good = FileStore::new(dir.path().join("good.json"));
    good.write(&tokens("SECRET-ACCESS", "SECRET-REFRESH"))
        .unwrap();
    let bytes = fs::read(good.path()).unwrap();

    unreadable(b"this is not json", |e| {
        assert!(matches!(e, FileStoreError::Corrupt { .. }), "{e:?}")
    });
    unreadable(&bytes[..bytes.len() / 2], |e| {
        assert!(matches!(e, FileStoreError::Truncated { .. }), "{e:?}")
    });
    unreadable(b"", |e| {
        assert!(matches!(e, FileStoreError::Truncated { .. }), "{e:?}")
    });
    unreadable(
        br#"{"format":"reauth-tokens","version":2,"tokens":{}}"#,
        |e| {
            assert!(
                matches!(
                    e,
                    FileStoreError::FutureVersion {
                        found: 2,
                        supported: 1,
                        ..
                    }
                ),
                "{e:?}"
            )
        },
    );
    // Hand-edited: the checksum no longer matches. The message names no token text.
    let edited = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("SECRET-REFRESH", "SECRET-REFRESX");
    unreadable(edited.as_bytes(), |e| {
        let text = format!("{e} {e:?}");
        assert!(text.contains("checksum"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    });
}

#[test]
fn a_save_never_overwrites_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    fs::write(store.path(), b"{ precious but broken").unwrap();
    store.write(&tokens("a", "r")).unwrap();
    assert_eq!(store.read().unwrap().unwrap().access_token.secret(), "a");
    let aside: Vec<_> = names(dir.path())
        .into_iter()
        .filter(|n| n.contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        fs::read(dir.path().join(&aside[0])).unwrap(),
        b"{ precious but broken"
    );
}

#[test]
fn a_held_lock_times_out_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    // Two stores on one file behave like two processes: their locks exclude each other.
    let (a, b) = (FileStore::new(&path), FileStore::new(&path));
    let held = a.lock(Duration::from_secs(1)).unwrap();
    let wait = Duration::from_millis(300);
    let start = Instant::now();
    let err = b.lock(wait).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, FileStoreError::LockTimeout { .. }), "{err:?}");
    assert!(
        took >= wait && took < wait + Duration::from_millis(500),
        "{took:?}"
    );
    // Through the trait: a LockTimeout StoreError.
    let err = b.lock_refresh(Duration::from_millis(50)).err().unwrap();
    assert_eq!(err.kind(), StoreErrorKind::LockTimeout);
    // The holder can still read and write while holding it.
    a.write(&tokens("a", "r")).unwrap();
    assert!(a.read().unwrap().is_some());
    drop(held);
    assert!(b.lock(Duration::from_millis(100)).is_ok());
}

#[test]
fn temporary_files_of_crashed_writers_are_ignored_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    store.write(&tokens("a", "r")).unwrap();
    let old = dir.path().join(".tokens.json.crashed.tmp");
    let fresh = dir.path().join(".tokens.json.writing.tmp");
    fs::write(&old, b"{\"format\":\"reauth-tok").unwrap();
    fs::write(&fresh, b"{").unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    assert_eq!(store.read().unwrap().unwrap().access_token.secret(), "a");
    drop(store.lock(Duration::from_secs(1)).unwrap());
    assert!(!old.exists(), "a leftover of a crash is removed");
    assert!(
        fresh.exists(),
        "a write that may be in progress is left alone"
    );
}

#[test]
fn debug_output_shows_no_token_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    store
        .write(&tokens("SECRET-ACCESS", "SECRET-REFRESH"))
        .unwrap();
    let shown = format!("{store:?} {:?}", store.read().unwrap());
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[cfg(feature = "reqwest")]
mod with_the_async_adapter {
    use super::*;
    use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
    use reauth::protocol::OAuth2Grant;
    use reauth::{Config, Origin, Phase, TokenSet};
    use reauth_testkit::{ServerConfig, TestServer};

    fn client(server: &TestServer, store: FileStore) -> reauth::reqwest::Client {
        client_with(server, store, |_| {})
    }

    fn client_with(
        server: &TestServer,
        store: FileStore,
        tweak: impl FnOnce(&mut Config),
    ) -> reauth::reqwest::Client {
        let endpoint = TokenEndpoint::new(
            server.token_url().parse().unwrap(),
            ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
        )
        .unwrap();
        let mut config = Config::new(Origin::parse(&server.base_url()).unwrap());
        config.refresh_timeout = Duration::from_secs(5);
        tweak(&mut config);
        reauth::reqwest::Client::builder(reqwest::Client::new(), config)
            .oauth2(OAuth2Grant::refresh_token(endpoint))
            .store(store)
            .build()
            .unwrap()
    }

    async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("test exceeded its time limit")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_file_starts_the_client_logged_out() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            fs::write(&path, b"{\"format\":\"reauth-tokens\",\"version\":1,\"chec").unwrap();
            let c = client(&server, FileStore::new(&path));
            let err = c.store_load_error().expect("the load error is kept");
            assert_eq!(err.kind(), StoreErrorKind::Corrupt);
            let typed = err.downcast_ref::<FileStoreError>().unwrap();
            assert!(matches!(typed, FileStoreError::Truncated { .. }));
            assert!(typed.quarantined().unwrap().exists());
            assert_eq!(c.snapshot().phase, Phase::Empty);
            let denied = c.get(server.api_url("items/1")).send().await.unwrap_err();
            assert!(denied.is_logged_out(), "{denied}");
            // Logging in again writes a fresh, valid file.
            let issued = server.issue_tokens();
            c.login(
                TokenSet::new(AccessToken::new(issued.access_token).unwrap())
                    .with_refresh_token(RefreshToken::new(issued.refresh_token).unwrap()),
            );
            let r = c.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(FileStore::new(&path).read().unwrap().is_some());
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_survives_a_restart_with_its_rotated_tokens() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            let first = client(&server, FileStore::new(&path));
            let issued = server.issue_tokens();
            first.login(
                TokenSet::new(AccessToken::new(issued.access_token).unwrap())
                    .with_refresh_token(RefreshToken::new(issued.refresh_token.clone()).unwrap())
                    .with_expires_in(Duration::from_secs(issued.expires_in)),
            );
            server.expire_access_tokens();
            let r = first.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let saved = FileStore::new(&path).read().unwrap().unwrap();
            assert_ne!(
                saved.refresh_token.as_ref().unwrap().secret(),
                issued.refresh_token,
                "the rotated refresh token was saved"
            );
            drop(first);
            // "Restart": a new client on the same file uses the saved tokens as they are.
            let second = client(&server, FileStore::new(&path));
            assert!(second.store_load_error().is_none());
            let r = second.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let stats = server.stats();
            assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_clients_on_one_file_refresh_once() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            let issued = server.issue_tokens();
            FileStore::new(&path)
                .write(&SavedTokens {
                    access_token: AccessToken::new(issued.access_token).unwrap(),
                    refresh_token: Some(RefreshToken::new(issued.refresh_token).unwrap()),
                    expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                    scope: None,
                })
                .unwrap();
            server.expire_access_tokens();
            // Separate sessions and separate stores, as in two processes.
            let clients = [
                client(&server, FileStore::new(&path)),
                client(&server, FileStore::new(&path)),
            ];
            let mut tasks = Vec::new();
            for c in &clients {
                for _ in 0..20 {
                    let (c, url) = (c.clone(), server.api_url("items/3"));
                    tasks.push(tokio::spawn(async move {
                        c.get(url).send().await.unwrap().status().as_u16()
                    }));
                }
            }
            for t in tasks {
                assert_eq!(t.await.unwrap(), 200);
            }
            let stats = server.stats();
            assert_eq!(stats.token_calls, 1, "{stats:?}");
            assert_eq!(stats.reuse_detections, 0);
            server.shutdown().await;
        })
        .await;
    }

    /// Writes a fresh login to the file, then expires it on the server.
    fn seed_expired(server: &TestServer, path: &Path) -> String {
        let issued = server.issue_tokens();
        FileStore::new(path)
            .write(&SavedTokens {
                access_token: AccessToken::new(issued.access_token).unwrap(),
                refresh_token: Some(RefreshToken::new(issued.refresh_token.clone()).unwrap()),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                scope: None,
            })
            .unwrap();
        server.expire_access_tokens();
        issued.refresh_token
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_waits_for_the_other_process_and_adopts_its_tokens() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            let first = seed_expired(&server, &path);
            let c = client(&server, FileStore::new(&path));
            // "Another process" is refreshing: it holds the lock.
            let other = FileStore::new(&path);
            let held = other.lock(Duration::from_secs(1)).unwrap();
            let request = tokio::spawn({
                let (c, url) = (c.clone(), server.api_url("items/1"));
                async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!request.is_finished(), "the client waits for the lock");
            // It rotates the tokens at the server and saves them, then lets go.
            let body = reqwest::Client::new()
                .post(server.token_url())
                .basic_auth("reauth-test", Some("s3cret"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("grant_type=refresh_token&refresh_token={first}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let response: serde_json::Value = serde_json::from_slice(&body).unwrap();
            other
                .write(&SavedTokens {
                    access_token: AccessToken::new(response["access_token"].as_str().unwrap())
                        .unwrap(),
                    refresh_token: Some(
                        RefreshToken::new(response["refresh_token"].as_str().unwrap()).unwrap(),
                    ),
                    expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                    scope: None,
                })
                .unwrap();
            drop(held);
            assert_eq!(request.await.unwrap().unwrap(), 200);
            // The client adopted the other process's tokens: the only token call was theirs.
            let stats = server.stats();
            assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_held_too_long_is_a_transient_failure_not_a_logout() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            seed_expired(&server, &path);
            let c = client_with(&server, FileStore::new(&path), |config| {
                config.refresh_timeout = Duration::from_millis(400);
                config.backoff.max_attempts = 1;
            });
            let other = FileStore::new(&path);
            let held = other.lock(Duration::from_secs(1)).unwrap();
            let start = Instant::now();
            let err = c.get(server.api_url("items/1")).send().await.unwrap_err();
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "{:?}",
                start.elapsed()
            );
            assert!(!err.is_logged_out(), "{err}");
            assert!(
                matches!(err.auth(), Some(reauth::Error::RefreshFailed(_))),
                "{err}"
            );
            assert_eq!(server.stats().token_calls, 0);
            // Once the lock is free, the next request refreshes as usual.
            drop(held);
            let r = c.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(server.stats().token_calls, 1);
            server.shutdown().await;
        })
        .await;
    }
}
