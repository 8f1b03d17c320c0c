//! `KeyringStore` on Linux kernel keyutils, for real: the record round trip, compare-and-
//! swap conflicts, a tombstone that sticks, the refresh lease across two instances and
//! (through the lock file) across processes, unreadable and newer-format entries, and the
//! blocking adapter keeping its session across a restart against the testkit.
//!
//! Keyutils needs no desktop session, but a process started outside a login session (CI,
//! a container) has no session keyring it may write to, so each test first gives its
//! thread one of its own, as `keyctl session` would: every thread and process it starts
//! afterwards shares it. If keyutils is unavailable all the same, each test says so on
//! stderr and passes without running; set `REAUTH_REQUIRE_KEYUTILS=1` to make that a
//! failure instead.
//!
//! The child processes are this test binary again, run with `--exact worker_entry` and
//! [`WORKER_ENV`] set (as in `tests/persist`).
#![cfg(all(feature = "keyring", target_os = "linux"))]

use reauth::keyring_core;
use reauth::{
    AccessToken, Entry, Expect, KeyringStore, KeyringStoreError, Lease, LeaseId, Lineage, Record,
    RefreshToken, SavedTokens, StoreErrorKind, Swap, TokenStore, Tombstone,
};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const L1: Lineage = Lineage::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);
const L2: Lineage = Lineage::from_u128(0x9999_aaaa_bbbb_cccc_dddd_eeee_ffff_0000);

const WORKER_ENV: &str = "REAUTH_KEYRING_WORKER";
const SERVICE_ENV: &str = "REAUTH_KEYRING_SERVICE";
const LOCK_ENV: &str = "REAUTH_KEYRING_LOCK";
const USER: &str = "alice@example.com";

/// A fresh service name per test and process, so that tests and concurrent runs never
/// meet in the user's keyrings; its entries are removed when dropped.
struct Scratch {
    service: String,
}

impl Scratch {
    fn store(&self) -> KeyringStore {
        KeyringStore::new(&self.service, USER).unwrap()
    }

    /// The entry as keyring-core sees it: to plant bytes, or to read them raw.
    fn raw(&self, user: &str) -> keyring_core::Entry {
        let store = linux_keyutils_keyring_store::Store::new().unwrap();
        keyring_core::Entry::new_in_store(&(store as _), &self.service, user).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The entry and any copies set aside (their names hold the time: look them up).
        let _ = self.raw(USER).delete_credential();
        if let Ok(keys) = std::fs::read_to_string("/proc/keys") {
            let suffix = format!("@{}:", self.service);
            for line in keys.lines() {
                if let Some(user) = line
                    .split_whitespace()
                    .nth(8)
                    .and_then(|d| d.strip_prefix("keyring:"))
                    .and_then(|d| d.strip_suffix(&suffix))
                {
                    let _ = self.raw(user).delete_credential();
                }
            }
        }
    }
}

/// Gives this thread a session keyring of its own and checks that keyutils works here.
/// `None` (said on stderr) if it does not.
fn keyutils(test: &str) -> Option<Scratch> {
    static N: AtomicU32 = AtomicU32::new(0);
    let joined =
        linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true);
    let scratch = Scratch {
        service: format!(
            "reauth-test-{}-{}-{test}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ),
    };
    let probe = joined
        .map_err(|e| format!("no session keyring: {e:?}"))
        .and_then(|_| {
            let entry = scratch.raw("probe");
            entry.set_secret(b"probe").map_err(|e| {
                let _ = entry.delete_credential();
                e.to_string()
            })?;
            let back = entry.get_secret().map_err(|e| e.to_string())?;
            entry.delete_credential().map_err(|e| e.to_string())?;
            (back == b"probe")
                .then_some(())
                .ok_or_else(|| "read back other bytes".to_owned())
        });
    match probe {
        Ok(()) => Some(scratch),
        Err(why) if std::env::var_os("REAUTH_REQUIRE_KEYUTILS").is_some() => {
            panic!("{test}: kernel keyutils is unavailable here: {why}")
        }
        Err(why) => {
            // Past libtest's capture (which takes `eprintln!` only), so it is always seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: kernel keyutils is unavailable here: {why}"
            );
            None
        }
    }
}

fn tokens(access: &str, refresh: &str) -> SavedTokens {
    SavedTokens {
        access_token: AccessToken::new(access).unwrap(),
        refresh_token: Some(RefreshToken::new(refresh).unwrap()),
        expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        scope: Some("read write".into()),
    }
}

fn record(lineage: Lineage, version: u64, access: &str, refresh: &str) -> Record {
    Record {
        lineage,
        version,
        entry: Entry::Tokens(tokens(access, refresh)),
    }
}

fn tombstone(lineage: Lineage, version: u64) -> Record {
    Record {
        lineage,
        version,
        entry: Entry::LoggedOut(Tombstone::Requested),
    }
}

/// The record as the entry keeps it: expiry in whole seconds.
fn as_stored(mut r: Record) -> Record {
    if let Entry::Tokens(t) = &mut r.entry {
        t.expires_at = t.expires_at.map(|at| {
            let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
            UNIX_EPOCH + Duration::from_secs(secs)
        });
    }
    r
}

#[test]
fn a_record_round_trips_in_the_file_stores_format() {
    let Some(scratch) = keyutils("round_trip") else {
        return;
    };
    let store = scratch.store();
    assert_eq!(store.read_record().unwrap(), None);
    let first = record(L1, 1, "SECRET-A1", "SECRET-R1");
    assert_eq!(
        store.write_record(Expect::Absent, &first).unwrap(),
        Swap::Written
    );
    assert_eq!(store.read_record().unwrap(), Some(as_stored(first.clone())));
    // Another instance (another client of this process) reads the same entry.
    assert_eq!(
        scratch.store().read().unwrap(),
        Some(as_stored(first.clone()))
    );
    // The entry holds FileStore's document, compact, and nothing else.
    let raw = scratch.raw(USER).get_secret().unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"format":"reauth-tokens","version":2,"checksum":"crc32:"#),
        "{text}"
    );
    assert!(!text.contains('\n'));
    assert_eq!(
        store.parse_bytes(&raw, SystemTime::now()).unwrap(),
        as_stored(first)
    );
    // A tombstone round-trips too.
    let logout = tombstone(L1, 2);
    assert_eq!(
        store.write_record(Expect::Version(L1, 1), &logout).unwrap(),
        Swap::Written
    );
    assert_eq!(store.read_record().unwrap(), Some(logout));
    // Deleting forgets it; deleting again is no error.
    store.delete().unwrap();
    store.delete().unwrap();
    assert_eq!(store.read_record().unwrap(), None);
}

#[test]
fn a_stale_expectation_conflicts_and_leaves_the_entry_as_it_was() {
    let Some(scratch) = keyutils("conflict") else {
        return;
    };
    let (a, b) = (scratch.store(), scratch.store());
    let v1 = record(L1, 1, "SECRET-A1", "SECRET-R1");
    assert_eq!(a.write_record(Expect::Absent, &v1).unwrap(), Swap::Written);
    // Both read version 1; `a` rotates first.
    let v2 = record(L1, 2, "SECRET-A2", "SECRET-R2");
    assert_eq!(
        a.compare_and_swap(Expect::Version(L1, 1), &v2).unwrap(),
        Swap::Written
    );
    // `b` still expects version 1: it gets the newer record back, nothing is written.
    let late = record(L1, 2, "SECRET-B2", "SECRET-BR2");
    assert_eq!(
        b.compare_and_swap(Expect::Version(L1, 1), &late).unwrap(),
        Swap::Conflict(Some(as_stored(v2.clone())))
    );
    assert_eq!(
        b.write_record(Expect::Absent, &late).unwrap(),
        Swap::Conflict(Some(as_stored(v2.clone())))
    );
    assert_eq!(
        b.write_record(Expect::Version(L2, 2), &late).unwrap(),
        Swap::Conflict(Some(as_stored(v2.clone())))
    );
    assert_eq!(a.read_record().unwrap(), Some(as_stored(v2)));
    // A login replaces any record.
    let login = record(L2, 1, "SECRET-L", "SECRET-LR");
    assert_eq!(b.write_record(Expect::Any, &login).unwrap(), Swap::Written);
    assert_eq!(a.read_record().unwrap(), Some(as_stored(login)));
}

#[test]
fn a_tombstone_sticks_against_an_older_writer() {
    let Some(scratch) = keyutils("tombstone") else {
        return;
    };
    let (a, b) = (
        scratch.store(),
        scratch.store().lock_file(lock_in(&scratch)),
    );
    let v1 = record(L1, 1, "SECRET-A1", "SECRET-R1");
    a.write_record(Expect::Absent, &v1).unwrap();
    // `a` logs out; `b`, mid-refresh from version 1, tries to save rotated tokens.
    let dead = tombstone(L1, 2);
    assert_eq!(
        a.write_record(Expect::Version(L1, 1), &dead).unwrap(),
        Swap::Written
    );
    let rotated = record(L1, 2, "SECRET-A2", "SECRET-R2");
    assert_eq!(
        b.write_record(Expect::Version(L1, 1), &rotated).unwrap(),
        Swap::Conflict(Some(dead.clone()))
    );
    // A restart finds the logout.
    let restarted = scratch.store();
    let Some(Record {
        entry: Entry::LoggedOut(Tombstone::Requested),
        ..
    }) = restarted.read_record().unwrap()
    else {
        panic!("the tombstone is gone")
    };
    lock_dir_cleanup(&scratch);
}

/// A lock file for `scratch` in a temporary folder named after it.
fn lock_in(scratch: &Scratch) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(&scratch.service)
        .join("tokens.lock")
}

fn lock_dir_cleanup(scratch: &Scratch) {
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&scratch.service));
}

/// The lease rules, for two instances of one entry.
fn lease_is_exclusive(a: &KeyringStore, b: &KeyringStore) {
    let ttl = Duration::from_secs(30);
    let Lease::Granted(held) = a.take_lease(L1, ttl).unwrap() else {
        panic!("a free lease was refused")
    };
    assert_eq!(b.take_lease(L1, ttl).unwrap(), Lease::Busy);
    assert_eq!(
        a.take_lease(L1, ttl).unwrap(),
        Lease::Busy,
        "not re-entrant"
    );
    // Someone else's id gives nothing back.
    b.give_back(LeaseId(held.0 ^ 1)).unwrap();
    assert_eq!(b.take_lease(L1, ttl).unwrap(), Lease::Busy);
    // The owner's does.
    a.release(L1, held).unwrap();
    let Lease::Granted(next) = b.lease(L1, ttl).unwrap() else {
        panic!("a released lease was refused")
    };
    assert_ne!(next, held);
    a.give_back(held).unwrap();
    assert_eq!(a.take_lease(L1, ttl).unwrap(), Lease::Busy);
    b.give_back(next).unwrap();
    // A holder that never gives it back loses it when its time to live is up.
    let short = Duration::from_millis(300);
    let taken = Instant::now();
    let Lease::Granted(dead) = a.take_lease(L1, short).unwrap() else {
        panic!("a free lease was refused")
    };
    let mut busy = 0;
    let took_over = loop {
        match b.take_lease(L1, ttl).unwrap() {
            Lease::Granted(id) => break id,
            Lease::Busy => busy += 1,
        }
        assert!(taken.elapsed() < Duration::from_secs(5), "never expired");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(busy > 0 && taken.elapsed() >= short);
    a.give_back(dead).unwrap();
    assert_eq!(a.take_lease(L1, ttl).unwrap(), Lease::Busy);
    b.give_back(took_over).unwrap();
}

#[test]
fn the_lease_is_exclusive_across_two_instances_in_one_process() {
    let Some(scratch) = keyutils("lease_local") else {
        return;
    };
    lease_is_exclusive(&scratch.store(), &scratch.store());
    // The lease is not kept in the entry.
    assert_eq!(scratch.store().read_record().unwrap(), None);
}

#[test]
fn the_lease_is_exclusive_across_two_instances_on_a_lock_file() {
    let Some(scratch) = keyutils("lease_file") else {
        return;
    };
    let lock = lock_in(&scratch);
    let (a, b) = (
        scratch.store().lock_file(&lock),
        scratch.store().lock_file(&lock),
    );
    lease_is_exclusive(&a, &b);
    assert_eq!(a.lock_path(), Some(lock.as_path()));
    assert_eq!(a.read_record().unwrap(), None);
    lock_dir_cleanup(&scratch);
}

/// The child side of the cross-process tests.
#[test]
fn worker_entry() {
    let Ok(mode) = std::env::var(WORKER_ENV) else {
        return;
    };
    let service = std::env::var(SERVICE_ENV).unwrap();
    let store = KeyringStore::new(&service, USER)
        .unwrap()
        .lock_file(std::env::var(LOCK_ENV).unwrap());
    let mut out = std::io::stdout();
    match mode.as_str() {
        // Take the lease, hold it until told, give it back.
        "lease" => {
            let answer = store.take_lease(L1, Duration::from_secs(60)).unwrap();
            writeln!(
                out,
                "worker: {}",
                if matches!(answer, Lease::Granted(_)) {
                    "granted"
                } else {
                    "busy"
                }
            )
            .unwrap();
            out.flush().unwrap();
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            if let Lease::Granted(id) = answer {
                store.give_back(id).unwrap();
            }
            writeln!(out, "worker: released").unwrap();
        }
        // Bump the record's version 25 times, each a read and a compare-and-swap that is
        // retried on conflict: with a working lock no bump is lost.
        "count" => {
            let mut conflicts = 0;
            for _ in 0..25 {
                loop {
                    let current = store.read_record().unwrap().unwrap();
                    let next = Record {
                        version: current.version + 1,
                        ..current.clone()
                    };
                    match store
                        .write_record(Expect::Version(current.lineage, current.version), &next)
                        .unwrap()
                    {
                        Swap::Written => break,
                        Swap::Conflict(_) => conflicts += 1,
                    }
                }
            }
            writeln!(out, "worker: counted ({conflicts} conflicts)").unwrap();
        }
        other => panic!("unknown worker mode {other}"),
    }
    out.flush().unwrap();
    std::process::exit(0);
}

fn worker(mode: &str, scratch: &Scratch, lock: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker_entry", "--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, mode)
        .env(SERVICE_ENV, &scratch.service)
        .env(LOCK_ENV, lock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a worker")
}

/// The worker's next message, skipping libtest's own lines.
fn next_message(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    for line in lines {
        let line = line.unwrap();
        if let Some(at) = line.find("worker: ") {
            return line[at + "worker: ".len()..].to_owned();
        }
    }
    panic!("the worker ended without a message")
}

#[test]
fn the_lease_is_exclusive_across_processes_on_a_lock_file() {
    let Some(scratch) = keyutils("lease_processes") else {
        return;
    };
    let lock = lock_in(&scratch);
    let here = scratch.store().lock_file(&lock);
    let mut child = worker("lease", &scratch, &lock);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(next_message(&mut lines), "granted");
    // The other process holds it: this one waits.
    assert_eq!(
        here.take_lease(L1, Duration::from_secs(30)).unwrap(),
        Lease::Busy
    );
    writeln!(child.stdin.take().unwrap(), "release").unwrap();
    assert_eq!(next_message(&mut lines), "released");
    assert!(child.wait().unwrap().success());
    let Lease::Granted(id) = here.take_lease(L1, Duration::from_secs(30)).unwrap() else {
        panic!("the released lease was refused")
    };
    // And now the other process is the one refused.
    let mut child = worker("lease", &scratch, &lock);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(next_message(&mut lines), "busy");
    writeln!(child.stdin.take().unwrap(), "done").unwrap();
    assert_eq!(next_message(&mut lines), "released");
    assert!(child.wait().unwrap().success());
    here.give_back(id).unwrap();
    lock_dir_cleanup(&scratch);
}

#[test]
fn three_processes_on_a_lock_file_lose_no_update() {
    let Some(scratch) = keyutils("count_processes") else {
        return;
    };
    let lock = lock_in(&scratch);
    let here = scratch.store().lock_file(&lock);
    here.write_record(Expect::Absent, &record(L1, 0, "SECRET-A", "SECRET-R"))
        .unwrap();
    let children: Vec<_> = (0..3).map(|_| worker("count", &scratch, &lock)).collect();
    for mut child in children {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let said = next_message(&mut lines);
        assert!(said.starts_with("counted"), "{said}");
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(here.read_record().unwrap().unwrap().version, 75);
    lock_dir_cleanup(&scratch);
}

#[test]
fn a_corrupt_entry_is_a_typed_error_and_is_set_aside() {
    let Some(scratch) = keyutils("corrupt") else {
        return;
    };
    let store = scratch.store();
    // A record someone edited: the checksum no longer matches, and it holds token text.
    store
        .write_record(Expect::Absent, &record(L1, 1, "SECRET-A1", "SECRET-R1"))
        .unwrap();
    let good = String::from_utf8(scratch.raw(USER).get_secret().unwrap()).unwrap();
    let edited = good.replace("SECRET-R1", "SECRET-XX");
    scratch.raw(USER).set_secret(edited.as_bytes()).unwrap();
    let err = store.read_record().unwrap_err();
    let KeyringStoreError::Corrupt {
        reason,
        quarantined: Some(aside),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(reason.contains("checksum"), "{reason}");
    assert!(aside.starts_with("alice@example.com.corrupt-"), "{aside}");
    assert!(err.is_unreadable());
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("SECRET"), "{text}");
    }
    // The bad bytes are kept under the other name; the entry itself is gone.
    assert_eq!(scratch.raw(aside).get_secret().unwrap(), edited.as_bytes());
    assert_eq!(store.read_record().unwrap(), None);
    // Through the trait: kind Corrupt, the typed error reachable.
    scratch
        .raw(USER)
        .set_secret(b"{\"format\":\"reauth-tok")
        .unwrap();
    let err = store.read().unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    assert!(err
        .downcast_ref::<KeyringStoreError>()
        .is_some_and(|e| e.quarantined().is_some()));
    // A write over a bad entry sets it aside first, then writes.
    scratch.raw(USER).set_secret(b"not json at all").unwrap();
    let v1 = record(L1, 1, "SECRET-A1", "SECRET-R1");
    assert_eq!(
        store.write_record(Expect::Absent, &v1).unwrap(),
        Swap::Written
    );
    assert_eq!(store.read_record().unwrap(), Some(as_stored(v1)));
}

#[test]
fn a_newer_builds_entry_is_read_only() {
    let Some(scratch) = keyutils("future") else {
        return;
    };
    let store = scratch.store();
    let future =
        br#"{"format":"reauth-tokens","version":3,"checksum":"crc32:00000000","record":{}}"#;
    scratch.raw(USER).set_secret(future).unwrap();
    let err = store.read_record().unwrap_err();
    assert!(
        matches!(
            err,
            KeyringStoreError::FutureVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.read().unwrap_err().kind(),
        StoreErrorKind::NewerFormat
    );
    // Neither a login nor anything else overwrites it.
    let err = store
        .write_record(Expect::Any, &record(L1, 1, "SECRET-A", "SECRET-R"))
        .unwrap_err();
    assert!(matches!(err, KeyringStoreError::FutureVersion { .. }));
    assert_eq!(scratch.raw(USER).get_secret().unwrap(), future);
}

#[test]
fn debug_output_and_errors_show_no_token_text() {
    let Some(scratch) = keyutils("debug") else {
        return;
    };
    let store = scratch.store();
    store
        .write_record(Expect::Absent, &record(L1, 1, "SECRET-A1", "SECRET-R1"))
        .unwrap();
    let debug = format!("{store:?}");
    assert!(
        debug.contains(&scratch.service) && !debug.contains("SECRET"),
        "{debug}"
    );
    // Bytes the platform returns that are no token record: the reason names no text.
    let swapped = String::from_utf8(scratch.raw(USER).get_secret().unwrap())
        .unwrap()
        .replacen("\"version\":1", "\"version\":\"SECRET-V\"", 1);
    let err = store
        .parse_bytes(swapped.as_bytes(), SystemTime::now())
        .unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("SECRET"), "{text}");
    }
    let debug = format!("{:?}", store.read_record().unwrap());
    assert!(!debug.contains("SECRET"), "{debug}");
}

#[cfg(feature = "ureq")]
mod through_an_adapter {
    use super::*;
    use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
    use reauth::protocol::OAuth2Grant;
    use reauth::ureq::Agent;
    use reauth::{Config, Origin, Phase, TokenSet};
    use reauth_testkit::{ServerConfig, TestServer};

    fn agent(server: &TestServer, store: KeyringStore) -> Agent {
        let endpoint = TokenEndpoint::new(
            server.token_url().parse().unwrap(),
            ClientAuth::secret_basic("reauth-test", ClientSecret::new("s3cret")),
        )
        .unwrap();
        let mut config = Config::new(Origin::parse(&server.base_url()).unwrap());
        config.refresh_timeout = Duration::from_secs(5);
        Agent::builder(ureq::Agent::new_with_defaults(), config)
            .oauth2(OAuth2Grant::refresh_token(endpoint))
            .store(store)
            .build()
            .unwrap()
    }

    /// The testkit on a runtime this test owns; the agents block on plain threads.
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
    fn a_session_in_the_keyring_survives_restarts_and_refreshes_once() {
        let Some(scratch) = keyutils("adapter") else {
            return;
        };
        let lock = lock_in(&scratch);
        with_server(|server| {
            let first = agent(server, scratch.store().lock_file(&lock));
            let issued = server.issue_tokens();
            first.login(
                TokenSet::new(AccessToken::new(issued.access_token).unwrap())
                    .with_refresh_token(RefreshToken::new(issued.refresh_token).unwrap())
                    .with_expires_in(Duration::from_secs(issued.expires_in)),
            );
            let lineage = first.snapshot().lineage;
            let saved = scratch.store().read_record().unwrap().unwrap();
            assert_eq!((Some(saved.lineage), saved.version), (lineage, 1));
            drop(first);
            // A restart: the new agent takes the session up from the keyring.
            let second = agent(server, scratch.store().lock_file(&lock));
            assert!(second.store_load_error().is_none());
            assert_eq!(second.snapshot().phase, Phase::Valid);
            assert_eq!(second.snapshot().lineage, lineage);
            let url = server.api_url("items/1");
            assert_eq!(second.get(&url).call().unwrap().status().as_u16(), 200);
            assert_eq!(server.stats().token_calls, 0, "no refresh needed");
            // Two agents (as two processes would) on one entry and lock file: the
            // expired token is refreshed once for 32 requests.
            let third = agent(server, scratch.store().lock_file(&lock));
            server.expire_access_tokens();
            let threads: Vec<_> = (0..32)
                .map(|i| {
                    let a = if i % 2 == 0 {
                        second.clone()
                    } else {
                        third.clone()
                    };
                    let url = url.clone();
                    std::thread::spawn(move || a.get(&url).call().map(|r| r.status().as_u16()))
                })
                .collect();
            for t in threads {
                assert_eq!(t.join().unwrap().unwrap(), 200);
            }
            let stats = server.stats();
            assert_eq!(
                (stats.token_calls, stats.reuse_detections),
                (1, 0),
                "{stats:?}"
            );
            // Another restart picks the rotated tokens up.
            let saved = scratch.store().read_record().unwrap().unwrap();
            assert_eq!((Some(saved.lineage), saved.version), (lineage, 2));
            let fourth = agent(server, scratch.store());
            assert_eq!(fourth.snapshot().version, Some(2));
            assert_eq!(fourth.get(&url).call().unwrap().status().as_u16(), 200);
            assert_eq!(server.stats().token_calls, 1);
            // A logout is in the keyring for the next start.
            fourth.logout();
            let fifth = agent(server, scratch.store());
            assert_eq!(fifth.snapshot().phase, Phase::LoggedOut);
            assert!(fifth.get(&url).call().unwrap_err().is_logged_out());
        });
        lock_dir_cleanup(&scratch);
    }

    #[test]
    fn a_corrupt_entry_starts_the_agent_logged_out() {
        let Some(scratch) = keyutils("adapter_corrupt") else {
            return;
        };
        scratch
            .raw(USER)
            .set_secret(b"{\"format\":\"reauth-tokens\",\"vers")
            .unwrap();
        with_server(|server| {
            let a = agent(server, scratch.store());
            let err = a.store_load_error().expect("the load error is kept");
            assert_eq!(err.kind(), StoreErrorKind::Corrupt);
            assert_eq!(a.snapshot().phase, Phase::Empty);
            assert!(a.get(server.api_url("items/1")).call().is_err());
        });
    }
}
