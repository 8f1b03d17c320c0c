//! The store against a real `redis-server` (started per test from PATH on a free
//! loopback port; skipped with a message when there is none, a failure on CI): the same
//! answers as the reference `MemoryStore`, the lease, isolation by prefix, bad records,
//! and Redis stopped, frozen and restarted.

#[path = "support/redis_server.rs"]
mod redis_server;

use reauth_core::{
    AccessToken, Entry, Expect, Lease, LeaseId, Lineage, MemoryStore, Record, RefreshToken,
    SavedTokens, StoreErrorKind, Swap, TokenStore, Tombstone,
};
use reauth_redis::{redis, RedisStore, RedisStoreError};
use redis_server::RedisServer;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const L: Lineage = Lineage::from_u128(0x5e55_1011);

fn tokens(access: &str, version: u64) -> Record {
    Record {
        lineage: L,
        version,
        entry: Entry::Tokens(SavedTokens {
            access_token: AccessToken::new(access).unwrap(),
            refresh_token: Some(RefreshToken::new(format!("{access}-refresh")).unwrap()),
            // Whole milliseconds: what the hash keeps.
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(1_900_000_000_123)),
            scope: Some("read write".into()),
        }),
    }
}

fn tombstone(version: u64) -> Record {
    Record {
        lineage: L,
        version,
        entry: Entry::LoggedOut(Tombstone::Requested),
    }
}

fn store(server: &RedisServer, session: &str) -> RedisStore {
    RedisStore::builder(server.client(), session).build()
}

/// Short timeouts, for the tests that wait for them.
fn impatient(server: &RedisServer, session: &str) -> RedisStore {
    RedisStore::builder(server.client(), session)
        .response_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
}

fn raw(server: &RedisServer) -> redis::Connection {
    server.client().get_connection().unwrap()
}

#[test]
fn every_swap_answers_as_the_memory_store_does() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = store(&server, "same");
    let memory = MemoryStore::new();
    let other = Lineage::from_u128(0x07e4);
    let steps: Vec<(Expect, Record)> = vec![
        (Expect::Version(L, 1), tokens("a2", 2)),
        (Expect::Absent, tokens("a1", 1)),
        (Expect::Absent, tokens("a2", 2)),
        (Expect::Version(L, 2), tokens("a3", 3)),
        (Expect::Version(L, 1), tokens("a2", 2)),
        (Expect::Version(other, 2), tokens("a3", 3)),
        (Expect::Version(L, u64::MAX), tokens("a3", 3)),
        (Expect::Version(L, 2), tombstone(3)),
        (Expect::Version(L, 3), tokens("back", 4)),
        (
            Expect::Any,
            Record {
                lineage: other,
                ..tokens("b1", 1)
            },
        ),
        (Expect::Absent, tokens("a1", 1)),
        (
            Expect::Version(other, 1),
            Record {
                lineage: other,
                ..tokens("b2", u64::MAX)
            },
        ),
        (
            Expect::Version(other, u64::MAX),
            Record {
                lineage: other,
                ..tombstone(5)
            },
        ),
    ];
    let mut conflicts = 0;
    for (i, (expect, record)) in steps.into_iter().enumerate() {
        let want = memory.compare_and_swap(expect, &record).unwrap();
        let got = redis.compare_and_swap(expect, &record).unwrap();
        assert_eq!(got, want, "step {i}: {expect:?}");
        assert_eq!(redis.read().unwrap(), memory.read().unwrap(), "step {i}");
        conflicts += usize::from(matches!(got, Swap::Conflict(_)));
    }
    // The sequence exercised both outcomes.
    assert!(conflicts >= 5, "{conflicts}");
}

#[test]
fn a_tombstone_sticks_until_a_login_replaces_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, "tomb");
    assert_eq!(
        s.write_record(Expect::Absent, &tokens("a1", 1)).unwrap(),
        Swap::Written
    );
    assert_eq!(
        s.write_record(Expect::Version(L, 1), &tombstone(2))
            .unwrap(),
        Swap::Written
    );
    // A replica that refreshed from version 1 loses to the tombstone.
    assert_eq!(
        s.write_record(Expect::Version(L, 1), &tokens("late", 2))
            .unwrap(),
        Swap::Conflict(Some(tombstone(2)))
    );
    // Another store object (another process) reads the tombstone.
    assert_eq!(
        store(&server, "tomb").read_record().unwrap(),
        Some(tombstone(2))
    );
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(s.record_key())
        .query(&mut raw(&server))
        .unwrap();
    assert!(!fields.iter().any(|f| f.contains("token")), "{fields:?}");
    let login = Record {
        lineage: Lineage::from_u128(9),
        ..tokens("new-login", 1)
    };
    assert_eq!(s.write_record(Expect::Any, &login).unwrap(), Swap::Written);
    assert_eq!(s.read_record().unwrap(), Some(login));
}

#[test]
fn versions_are_compared_exactly_however_large() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, "big");
    // 2^53 + 1 and 2^53 are one double in Lua: compared as text, they differ.
    let v = (1u64 << 53) + 1;
    assert_eq!(
        s.write_record(Expect::Any, &tokens("a", v)).unwrap(),
        Swap::Written
    );
    assert_eq!(
        s.write_record(Expect::Version(L, v - 1), &tokens("b", v + 1))
            .unwrap(),
        Swap::Conflict(Some(tokens("a", v)))
    );
    assert_eq!(
        s.write_record(Expect::Version(L, v), &tokens("b", v + 1))
            .unwrap(),
        Swap::Written
    );
}

#[test]
fn concurrent_writers_never_lose_an_update() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    const THREADS: usize = 8;
    const TRIES: usize = 40;
    store(&server, "race")
        .write_record(Expect::Absent, &tokens("t", 1))
        .unwrap();
    let written: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                // A store each: a connection each, as separate processes would have.
                let s = store(&server, "race");
                scope.spawn(move || {
                    let mut written = 0;
                    for _ in 0..TRIES {
                        let v = s.read_record().unwrap().unwrap().version;
                        let swap = s.write_record(Expect::Version(L, v), &tokens("t", v + 1));
                        written += usize::from(swap.unwrap() == Swap::Written);
                    }
                    written
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let last = store(&server, "race")
        .read_record()
        .unwrap()
        .unwrap()
        .version;
    eprintln!("figures: {THREADS} writers x {TRIES} read-swap rounds: {written} written");
    // Every success moved the version by exactly one: no two wrote over the same version.
    assert_eq!(last, 1 + written as u64);
    assert!(written >= TRIES, "{written}");
}

#[test]
fn the_lease_is_granted_once_refused_to_others_and_expires() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = store(&server, "lease");
    let b = store(&server, "lease");
    let Lease::Granted(held) = a.take_lease(Duration::from_secs(30)).unwrap() else {
        panic!("a free lease was refused")
    };
    assert_eq!(b.take_lease(Duration::from_secs(30)).unwrap(), Lease::Busy);
    assert_eq!(a.take_lease(Duration::from_secs(30)).unwrap(), Lease::Busy);
    // Redis keeps the time to live.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(a.lease_key())
        .query(&mut raw(&server))
        .unwrap();
    assert!((29_000..=30_000).contains(&pttl), "{pttl}");
    // Someone else's release does nothing.
    b.give_back(LeaseId(held.0 ^ 1)).unwrap();
    assert_eq!(b.take_lease(Duration::from_secs(30)).unwrap(), Lease::Busy);
    a.give_back(held).unwrap();
    let Lease::Granted(short) = b.take_lease(Duration::from_millis(150)).unwrap() else {
        panic!("a released lease was refused")
    };
    assert_ne!(short, held);
    // The holder never releases it (it died): it is free once its time is up, not before.
    let start = Instant::now();
    assert_eq!(a.take_lease(Duration::from_secs(30)).unwrap(), Lease::Busy);
    let granted = loop {
        match a.take_lease(Duration::from_secs(30)).unwrap() {
            Lease::Granted(id) => break id,
            Lease::Busy => {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "the lease never expired"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    // The late holder's release cannot free the new holder's lease.
    b.give_back(short).unwrap();
    assert_eq!(b.take_lease(Duration::from_secs(1)).unwrap(), Lease::Busy);
    a.give_back(granted).unwrap();
    // A zero time to live is the shortest lease Redis takes, not an error.
    assert!(matches!(
        b.take_lease(Duration::ZERO).unwrap(),
        Lease::Granted(_)
    ));
}

#[test]
fn two_prefixes_and_two_sessions_never_mix() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = RedisStore::builder(server.client(), "crm")
        .prefix("app1:")
        .build();
    let two = RedisStore::builder(server.client(), "crm")
        .prefix("app2:")
        .build();
    let three = RedisStore::builder(server.client(), "erp")
        .prefix("app1:")
        .build();
    assert_eq!(
        one.write_record(Expect::Absent, &tokens("one", 1)).unwrap(),
        Swap::Written
    );
    assert_eq!(two.read_record().unwrap(), None);
    assert_eq!(three.read_record().unwrap(), None);
    assert_eq!(
        two.write_record(Expect::Absent, &tokens("two", 7)).unwrap(),
        Swap::Written
    );
    assert_eq!(
        three.write_record(Expect::Any, &tombstone(3)).unwrap(),
        Swap::Written
    );
    assert!(matches!(
        one.take_lease(Duration::from_secs(30)).unwrap(),
        Lease::Granted(_)
    ));
    assert!(matches!(
        two.take_lease(Duration::from_secs(30)).unwrap(),
        Lease::Granted(_)
    ));
    assert!(matches!(
        three.take_lease(Duration::from_secs(30)).unwrap(),
        Lease::Granted(_)
    ));
    assert_eq!(one.read_record().unwrap(), Some(tokens("one", 1)));
    assert_eq!(two.read_record().unwrap(), Some(tokens("two", 7)));
    assert_eq!(three.read_record().unwrap(), Some(tombstone(3)));
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut raw(&server))
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "app1:crm:lease",
            "app1:crm:record",
            "app1:erp:lease",
            "app1:erp:record",
            "app2:crm:lease",
            "app2:crm:record"
        ]
    );
}

#[test]
fn bad_records_are_typed_errors_and_set_aside_by_a_write() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, "bad");
    let mut c = raw(&server);
    // Another type under the key.
    let _: () = redis::cmd("SET")
        .arg(s.record_key())
        .arg("SECRET-X")
        .query(&mut c)
        .unwrap();
    let e = s.read_record().unwrap_err();
    assert!(matches!(e, RedisStoreError::Corrupt { .. }), "{e}");
    assert_eq!(
        reauth_core::StoreError::from(e).kind(),
        StoreErrorKind::Corrupt
    );
    // A hash with a token that could never be sent: named, not shown.
    let _: () = redis::cmd("DEL").arg(s.record_key()).query(&mut c).unwrap();
    s.write_record(Expect::Absent, &tokens("a1", 1)).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(s.record_key())
        .arg("access_token")
        .arg("SECRET with spaces")
        .query(&mut c)
        .unwrap();
    let e = s.read_record().unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("access_token") && !text.contains("SECRET"),
        "{text}"
    );
    // A write that conflicts with it is a typed error, the record left in place.
    let e = s
        .write_record(Expect::Version(L, 5), &tokens("a6", 6))
        .unwrap_err();
    assert!(matches!(e, RedisStoreError::Corrupt { .. }), "{e}");
    assert!(matches!(
        s.read_record(),
        Err(RedisStoreError::Corrupt { .. })
    ));
    // A record of an unknown layout (format missing) is set aside by a login.
    let _: () = redis::cmd("HDEL")
        .arg(s.record_key())
        .arg("format")
        .query(&mut c)
        .unwrap();
    assert!(matches!(
        s.read_record(),
        Err(RedisStoreError::Corrupt { .. })
    ));
    assert_eq!(
        s.write_record(Expect::Any, &tokens("login", 1)).unwrap(),
        Swap::Written
    );
    assert_eq!(s.read_record().unwrap(), Some(tokens("login", 1)));
    let aside: usize = redis::cmd("HLEN")
        .arg(format!("{}:corrupt", s.record_key()))
        .query(&mut c)
        .unwrap();
    assert!(aside > 0, "kept aside for inspection");
}

#[test]
fn a_newer_builds_record_is_never_overwritten() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, "future");
    let mut c = raw(&server);
    s.write_record(Expect::Absent, &tokens("a1", 1)).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(s.record_key())
        .arg("format")
        .arg("2")
        .arg("new_field")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let before: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(s.record_key())
        .query(&mut c)
        .unwrap();
    let e = s.read_record().unwrap_err();
    assert!(
        matches!(e, RedisStoreError::NewerFormat { ref found, .. } if found == "2"),
        "{e}"
    );
    assert_eq!(
        reauth_core::StoreError::from(e).kind(),
        StoreErrorKind::NewerFormat
    );
    for expect in [Expect::Any, Expect::Absent, Expect::Version(L, 1)] {
        let e = s.write_record(expect, &tokens("mine", 2)).unwrap_err();
        assert!(matches!(e, RedisStoreError::NewerFormat { .. }), "{e}");
    }
    let after: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(s.record_key())
        .query(&mut c)
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn redis_stopped_is_a_transient_error_and_a_restart_is_picked_up() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, "away");
    s.write_record(Expect::Absent, &tokens("SECRET-AT", 1))
        .unwrap();
    let Lease::Granted(_) = s.take_lease(Duration::from_secs(30)).unwrap() else {
        panic!()
    };
    server.stop();
    for _ in 0..3 {
        let start = Instant::now();
        let e = s.read_record().unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(e.is_transient(), "{e}");
        assert!(matches!(e, RedisStoreError::Unavailable { .. }), "{e:?}");
        let text = format!("{e} {e:?}");
        assert!(!text.contains("SECRET"), "{text}");
        let e = reauth_core::StoreError::from(e);
        assert_eq!(e.kind(), StoreErrorKind::Io);
        assert!(e.downcast_ref::<RedisStoreError>().is_some());
    }
    let e = s
        .write_record(Expect::Version(L, 1), &tokens("a2", 2))
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(s
        .take_lease(Duration::from_secs(1))
        .unwrap_err()
        .is_transient());
    // Back, empty (no persistence): the very next call works, on a new connection.
    server.restart();
    assert_eq!(s.read_record().unwrap(), None);
    assert!(matches!(
        s.take_lease(Duration::from_secs(30)).unwrap(),
        Lease::Granted(_)
    ));
    assert_eq!(
        s.write_record(Expect::Absent, &tokens("a1", 1)).unwrap(),
        Swap::Written
    );
    // A restart between two calls on a kept connection is also picked up at once.
    server.restart();
    assert_eq!(s.read_record().unwrap(), None);
    server.restart();
    assert_eq!(
        s.write_record(Expect::Absent, &tokens("a1", 1)).unwrap(),
        Swap::Written
    );
}

#[test]
fn a_frozen_redis_times_out_and_thawed_answers_again() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = impatient(&server, "frozen");
    s.write_record(Expect::Absent, &tokens("a1", 1)).unwrap();
    server.pause();
    let start = Instant::now();
    let e = s.read_record().unwrap_err();
    let waited = start.elapsed();
    // A new connection is also bounded (the kernel accepts it; the handshake times out).
    let e2 = s.read_record().unwrap_err();
    let waited2 = start.elapsed() - waited;
    server.resume();
    eprintln!("figures: frozen Redis: first call failed after {waited:?}, next after {waited2:?}");
    assert!(e.is_transient() && e2.is_transient(), "{e} / {e2}");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(waited2 < Duration::from_secs(2), "{waited2:?}");
    // The late answers of the frozen calls never stand in for the next ones.
    assert_eq!(s.read_record().unwrap(), Some(tokens("a1", 1)));
    assert_eq!(
        s.write_record(Expect::Version(L, 1), &tokens("a2", 2))
            .unwrap(),
        Swap::Written
    );
    assert_eq!(s.read_record().unwrap(), Some(tokens("a2", 2)));
}

#[test]
fn debug_and_errors_show_no_password_and_connect_fails_typed() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let url = server.url().replace("127.0.0.1", ":SECRET-PW@127.0.0.1");
    let s = RedisStore::builder(redis::Client::open(url.as_str()).unwrap(), "pw").build();
    let text = format!("{s:?}");
    assert!(
        !text.contains("SECRET") && text.contains("127.0.0.1"),
        "{text}"
    );
    // The server has no password: AUTH is refused, typed, without the password.
    let e = s.read_record().unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains("SECRET-PW"), "{text}");
    server.stop();
    let e = RedisStore::builder(server.client(), "pw")
        .connect()
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    let _ = SystemTime::now();
}

/// Counts the notifications a store hands to its watchers.
fn watched(s: &RedisStore) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    assert!(s.watch(std::sync::Arc::new(move || {
        let _ = tx.lock().unwrap().send(());
    })));
    rx
}

#[test]
fn a_write_anywhere_notifies_every_watcher_of_the_session_and_a_restart_resubscribes() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let writer = store(&server, "watched");
    let reader = store(&server, "watched");
    let other = store(&server, "another-session");
    let heard = watched(&reader);
    let not_ours = watched(&other);
    let wait = Duration::from_secs(5);
    // The first watch returns subscribed: nothing to tell yet, and a write right after it
    // is heard. Published by the swap script itself: any writer's write reaches every
    // watcher.
    assert!(heard.try_recv().is_err() && not_ours.try_recv().is_err());
    writer
        .write_record(Expect::Absent, &tokens("a1", 1))
        .unwrap();
    heard.recv_timeout(wait).unwrap();
    // A conflict writes nothing and announces nothing; another session hears nothing.
    let lost = writer
        .write_record(Expect::Absent, &tokens("a9", 1))
        .unwrap();
    assert!(matches!(lost, Swap::Conflict(Some(_))));
    writer
        .write_record(Expect::Version(L, 1), &tombstone(2))
        .unwrap();
    heard.recv_timeout(wait).unwrap();
    assert!(heard.try_recv().is_err(), "one notification per write");
    assert!(
        not_ours.try_recv().is_err(),
        "another session's watcher heard a write"
    );
    // Redis restarted: the listener subscribes again (and says so once), then hears writes.
    server.restart();
    heard.recv_timeout(wait).unwrap();
    writer
        .write_record(Expect::Absent, &tokens("a1", 1))
        .unwrap();
    heard.recv_timeout(wait).unwrap();
}

#[test]
fn a_watch_begun_while_redis_is_away_tells_once_when_it_subscribes() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let writer = store(&server, "late");
    server.stop();
    let reader = store(&server, "late");
    // The first try fails at once (refused): the watch does not wait out its timeout,
    // and the session reads (and fails) without a subscription.
    let heard = watched(&reader);
    assert!(heard.try_recv().is_err());
    server.restart();
    // Subscribed late: the sessions are told once, since a write may have gone unheard.
    heard.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(heard.try_recv().is_err());
    writer
        .write_record(Expect::Absent, &tokens("a1", 1))
        .unwrap();
    heard.recv_timeout(Duration::from_secs(5)).unwrap();
}
