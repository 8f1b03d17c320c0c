//! `FileStore` on its own and under the async adapter: format, atomic replacement,
//! permissions, unreadable and newer-format files, compare-and-swap, the refresh lease,
//! and sessions that survive restarts.
#![cfg(feature = "file-store")]

use reauth::{
    AccessToken, Entry, Expect, FileStore, FileStoreError, Lease, LeaseId, Lineage, Record,
    RefreshToken, SavedTokens, StoreErrorKind, Swap, TokenStore, Tombstone,
};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

const L1: Lineage = Lineage::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);
const L2: Lineage = Lineage::from_u128(0x9999_aaaa_bbbb_cccc_dddd_eeee_ffff_0000);

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

/// The access token's text of a record, for comparisons in tests that use dummy tokens.
fn access(r: &Record) -> &str {
    r.tokens()
        .expect("tokens, not a tombstone")
        .access_token
        .secret()
}

/// The record as the file stores it: expiry in whole seconds.
fn as_stored(mut r: Record) -> Record {
    if let Entry::Tokens(t) = &mut r.entry {
        t.expires_at = t.expires_at.map(|at| {
            let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
        });
    }
    r
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

/// Holds the file's short write lock the way another process would, until dropped.
fn hold_write_lock(store: &FileStore) -> fs::File {
    let file = fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(store.lock_path())
        .unwrap();
    file.lock().unwrap();
    file
}

#[test]
fn round_trips_and_replaces_atomically_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    assert_eq!(store.read_record().unwrap(), None);
    let first = record(L1, 1, "access-1", "refresh-1");
    assert_eq!(
        store.write_record(Expect::Absent, &first).unwrap(),
        Swap::Written
    );
    for v in 2..=20 {
        let next = record(L1, v, &format!("access-{v}"), &format!("refresh-{v}"));
        let swap = store
            .write_record(Expect::Version(L1, v - 1), &next)
            .unwrap();
        assert_eq!(swap, Swap::Written, "version {v}");
    }
    let back = store.read_record().unwrap().unwrap();
    assert_eq!((back.lineage, back.version), (L1, 20));
    let t = back.tokens().unwrap();
    assert!(
        t.access_token.secret() == "access-20",
        "the last access token"
    );
    assert!(
        t.refresh_token.as_ref().unwrap().secret() == "refresh-20",
        "the last refresh token"
    );
    assert_eq!(t.scope.as_deref(), Some("read write"));
    // Stored as whole UNIX seconds, rounded down.
    let left = t
        .expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3590));
    // No temporary file is left behind: the token file and its lock file.
    assert_eq!(names(dir.path()), ["tokens.json", "tokens.json.lock"]);
    // Through the trait: a tombstone replaces the tokens, and reads back as one.
    let swap = store
        .compare_and_swap(Expect::Version(L1, 20), &tombstone(L1, 21))
        .unwrap();
    assert_eq!(swap, Swap::Written);
    assert_eq!(store.read().unwrap(), Some(tombstone(L1, 21)));
    let text = fs::read_to_string(store.path()).unwrap();
    assert!(!text.contains("access-20"), "a tombstone holds no tokens");
    assert_eq!(names(dir.path()), ["tokens.json", "tokens.json.lock"]);
}

#[test]
fn a_stale_expectation_conflicts_and_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    // Nothing there: any version is stale, and nothing is created.
    let swap = store
        .write_record(Expect::Version(L1, 1), &record(L1, 2, "a", "r"))
        .unwrap();
    assert_eq!(swap, Swap::Conflict(None));
    assert!(!store.path().exists());
    store
        .write_record(Expect::Absent, &record(L1, 1, "a1", "r1"))
        .unwrap();
    let v2 = record(L1, 2, "a2", "r2");
    store.write_record(Expect::Version(L1, 1), &v2).unwrap();
    let bytes = fs::read(store.path()).unwrap();
    let current = Swap::Conflict(Some(as_stored(v2)));
    for stale in [
        Expect::Absent,
        Expect::Version(L1, 1),
        Expect::Version(L1, 3),
        Expect::Version(L2, 2),
    ] {
        let swap = store
            .write_record(stale, &record(L1, 3, "lost", "lost"))
            .unwrap();
        assert_eq!(swap, current, "{stale:?}");
        assert_eq!(fs::read(store.path()).unwrap(), bytes, "{stale:?}");
    }
    // The trait answers the same.
    let swap = store
        .compare_and_swap(Expect::Version(L1, 1), &tombstone(L1, 3))
        .unwrap();
    assert_eq!(swap, current);
    assert_eq!(fs::read(store.path()).unwrap(), bytes);
}

#[test]
fn expect_any_replaces_another_lineages_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    store
        .write_record(Expect::Absent, &record(L1, 7, "user-1", "r1"))
        .unwrap();
    let login = record(L2, 1, "user-2", "r2");
    assert_eq!(
        store.write_record(Expect::Any, &login).unwrap(),
        Swap::Written
    );
    let back = store.read_record().unwrap().unwrap();
    assert_eq!((back.lineage, back.version), (L2, 1));
    assert!(access(&back) == "user-2", "the second login's tokens");
    // Over a tombstone too: a new login after a logout.
    store
        .write_record(Expect::Version(L2, 1), &tombstone(L2, 2))
        .unwrap();
    let again = record(L1, 1, "user-1-again", "r3");
    assert_eq!(
        store.write_record(Expect::Any, &again).unwrap(),
        Swap::Written
    );
    assert_eq!(store.read_record().unwrap(), Some(as_stored(again)));
}

/// CRC-32 (IEEE, reflected), as the format's checksum: written here independently of
/// the store's own implementation.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A token file as builds before the session record wrote it (format version 1).
fn version_1_file(access: &str, refresh: &str) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let payload = format!(
        r#"{{"access_token":"{access}","refresh_token":"{refresh}","expires_at":{},"scope":null,"saved_at":{now}}}"#,
        now + 3600
    );
    format!(
        "{{\n  \"format\": \"reauth-tokens\",\n  \"version\": 1,\n  \"checksum\": \"crc32:{:08x}\",\n  \"tokens\": {payload}\n}}\n",
        crc32(payload.as_bytes())
    )
    .into_bytes()
}

#[test]
fn a_version_1_file_reads_as_the_legacy_record_and_the_next_write_makes_it_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    fs::write(store.path(), version_1_file("old-access", "old-refresh")).unwrap();
    let legacy = store.read_record().unwrap().unwrap();
    let zero = Lineage::from_u128(0);
    assert_eq!((legacy.lineage, legacy.version), (zero, 0));
    assert!(access(&legacy) == "old-access", "the version 1 tokens");
    // It is a record like any other: "absent" is stale, its own version is not.
    let next = record(zero, 1, "new-access", "new-refresh");
    assert_eq!(
        store.write_record(Expect::Absent, &next).unwrap(),
        Swap::Conflict(Some(legacy))
    );
    let text = fs::read_to_string(store.path()).unwrap();
    assert!(text.contains("\"version\": 1"), "left as it was");
    assert_eq!(
        store.write_record(Expect::Version(zero, 0), &next).unwrap(),
        Swap::Written
    );
    let value: serde_json::Value =
        serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
    assert_eq!(value["version"], 2);
    assert!(value.get("tokens").is_none() && value.get("record").is_some());
    assert_eq!(store.read_record().unwrap(), Some(as_stored(next)));
}

#[cfg(unix)]
#[test]
fn the_token_file_the_lock_file_and_a_new_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("app").join("tokens.json"));
    store
        .write_record(Expect::Absent, &record(L1, 1, "a", "r"))
        .unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(store.lock_path()), 0o600);
    assert_eq!(mode(&dir.path().join("app")), 0o700);
    // A rewrite keeps it private even if someone loosened it.
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
    store
        .write_record(Expect::Version(L1, 1), &record(L1, 2, "b", "r"))
        .unwrap();
    assert_eq!(mode(store.path()), 0o600);
    // A lease alone (no token file yet) creates a private folder and lock file too.
    let other = FileStore::new(dir.path().join("other").join("tokens.json"));
    assert!(matches!(
        other.take_lease(L1, Duration::from_secs(1)).unwrap(),
        Lease::Granted(_)
    ));
    assert_eq!(mode(other.lock_path()), 0o600);
    assert_eq!(mode(&dir.path().join("other")), 0o700);
}

/// Writes `bytes` as the token file, reads it, and checks the typed error, the file set
/// aside with its bytes intact, and that the store then reads as empty.
fn unreadable(bytes: &[u8], check: impl Fn(&FileStoreError)) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    fs::write(store.path(), bytes).unwrap();
    let err = store.read_record().unwrap_err();
    check(&err);
    assert!(err.is_unreadable());
    let aside = err.quarantined().expect("set aside").to_owned();
    let name = aside.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("tokens.json.corrupt-"), "{name}");
    assert_eq!(fs::read(&aside).unwrap(), bytes);
    assert!(err.to_string().contains("kept aside as"), "{err}");
    assert_eq!(store.read_record().unwrap(), None);
    // The trait reports it as a Corrupt StoreError, the typed error inside.
    fs::write(store.path(), bytes).unwrap();
    let err = store.read().unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    assert!(err.downcast_ref::<FileStoreError>().is_some());
    // Two files set aside, and the lock file; the token file is gone.
    assert_eq!(names(dir.path()).len(), 3, "{:?}", names(dir.path()));
    assert!(!store.path().exists());
}

#[test]
fn corrupt_truncated_and_altered_files_are_typed_errors_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let good = FileStore::new(dir.path().join("good.json"));
    good.write_record(
        Expect::Absent,
        &record(L1, 1, "SECRET-ACCESS", "SECRET-REFRESH"),
    )
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
    // Hand-edited: the checksum no longer matches. The message names no token text.
    let edited = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("SECRET-REFRESH", "SECRET-REFRESX");
    unreadable(edited.as_bytes(), |e| {
        let text = format!("{e} {e:?}");
        assert!(text.contains("checksum"), "the error names the checksum");
        assert!(!text.contains("SECRET"), "the error shows token text");
    });
    // A tombstone that still holds tokens is not a tombstone.
    // Sealed with a valid checksum (over the record in its field order), so only the
    // field check can object.
    let payload = format!(
        r#"{{"lineage":"{L1}","version":1,"access_token":"SECRET-ACCESS","refresh_token":null,"expires_at":null,"scope":null,"logged_out":"requested","saved_at":1767225600}}"#
    );
    let file = format!(
        r#"{{"format":"reauth-tokens","version":2,"checksum":"crc32:{:08x}","record":{payload}}}"#,
        crc32(payload.as_bytes())
    );
    unreadable(file.as_bytes(), |e| {
        let text = format!("{e} {e:?}");
        assert!(text.contains("logged_out"), "the error names the field");
        assert!(!text.contains("SECRET"), "the error shows token text");
    });
}

/// A file as a newer build (format version 3) might write it.
const FUTURE: &[u8] = br#"{
  "format": "reauth-tokens",
  "version": 3,
  "checksum": "crc32:00000000",
  "record": {"lineage": "00000000000000000000000000000001", "sessions": [{"a": 1}]}
}
"#;

#[test]
fn a_newer_builds_file_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    fs::write(store.path(), FUTURE).unwrap();
    let modified = fs::metadata(store.path()).unwrap().modified().unwrap();
    let err = store.read_record().unwrap_err();
    assert!(
        matches!(
            err,
            FileStoreError::FutureVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_unreadable() && err.quarantined().is_none());
    assert!(err.to_string().contains("read-only"), "{err}");
    // Neither a compare-and-swap nor a login's `Any` overwrites it.
    for expect in [Expect::Absent, Expect::Version(L1, 1), Expect::Any] {
        let err = store
            .write_record(expect, &record(L1, 2, "a", "r"))
            .unwrap_err();
        assert!(
            matches!(err, FileStoreError::FutureVersion { .. }),
            "{err:?}"
        );
    }
    // Through the trait: its own kind, the typed error inside.
    let err = store.read().unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NewerFormat);
    assert!(matches!(
        err.downcast_ref::<FileStoreError>(),
        Some(FileStoreError::FutureVersion { .. })
    ));
    let err = store
        .compare_and_swap(Expect::Any, &tombstone(L1, 1))
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NewerFormat);
    // The file was neither moved nor changed; nothing was set aside or left behind.
    assert_eq!(fs::read(store.path()).unwrap(), FUTURE);
    assert_eq!(
        fs::metadata(store.path()).unwrap().modified().unwrap(),
        modified
    );
    assert_eq!(names(dir.path()), ["tokens.json", "tokens.json.lock"]);
}

#[test]
fn a_write_never_overwrites_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    fs::write(store.path(), b"{ precious but broken").unwrap();
    // The bad file counts as no record: a first write lands, after setting it aside.
    store
        .write_record(Expect::Absent, &record(L1, 1, "a", "r"))
        .unwrap();
    assert!(
        access(&store.read_record().unwrap().unwrap()) == "a",
        "the written tokens"
    );
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
fn a_lease_is_exclusive_across_handles_and_released_only_by_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    // Two stores on one file behave like two processes.
    let (a, b) = (FileStore::new(&path), FileStore::new(&path));
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
    b.release(L1, LeaseId(held.0.wrapping_add(1))).unwrap();
    assert_eq!(b.take_lease(L1, ttl).unwrap(), Lease::Busy);
    // The owner's does.
    a.give_back(held).unwrap();
    let Lease::Granted(next) = b.lease(L1, ttl).unwrap() else {
        panic!("a released lease was refused")
    };
    assert_ne!(next, held);
    // The old owner releasing again does not free the new holder's lease.
    a.release(L1, held).unwrap();
    assert_eq!(a.take_lease(L1, ttl).unwrap(), Lease::Busy);
    // The lease does not touch the token file.
    assert!(!path.exists());
}

#[test]
fn a_lease_expires_after_its_time_to_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let (a, b) = (FileStore::new(&path), FileStore::new(&path));
    let ttl = Duration::from_millis(400);
    let taken = Instant::now();
    let Lease::Granted(dead) = a.take_lease(L1, ttl).unwrap() else {
        panic!("a free lease was refused")
    };
    // The holder "dies": it never gives the lease back.
    let mut busy = 0;
    let next = loop {
        match b.take_lease(L1, Duration::from_secs(30)).unwrap() {
            Lease::Granted(id) => break id,
            Lease::Busy => busy += 1,
        }
        assert!(taken.elapsed() < Duration::from_secs(5), "never expired");
        std::thread::sleep(Duration::from_millis(20));
    };
    let waited = taken.elapsed();
    assert!(busy > 0 && waited >= ttl, "taken over after {waited:?}");
    assert_ne!(next, dead);
    // The dead holder's id no longer frees anything.
    a.give_back(dead).unwrap();
    assert_eq!(a.take_lease(L1, ttl).unwrap(), Lease::Busy);
    b.give_back(next).unwrap();
    assert!(matches!(a.take_lease(L1, ttl).unwrap(), Lease::Granted(_)));
}

#[test]
fn a_held_write_lock_times_out_but_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    store
        .write_record(Expect::Absent, &record(L1, 1, "a", "r"))
        .unwrap();
    let held = hold_write_lock(&store);
    let start = Instant::now();
    let err = store
        .write_record(Expect::Version(L1, 1), &record(L1, 2, "b", "r"))
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, FileStoreError::LockTimeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Through the trait: a LockTimeout StoreError.
    let err = store.lease(L1, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::LockTimeout);
    // A readable file is read without the lock.
    assert_eq!(store.read_record().unwrap().unwrap().version, 1);
    drop(held);
    let swap = store
        .write_record(Expect::Version(L1, 1), &record(L1, 2, "b", "r"))
        .unwrap();
    assert_eq!(swap, Swap::Written);
}

#[test]
fn a_reader_during_a_slow_write_sees_the_old_record_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let reader = FileStore::new(&path);
    reader
        .write_record(Expect::Absent, &record(L1, 1, "old", "r"))
        .unwrap();
    let slow = FileStore::new(&path).persist_pause_for_tests(Duration::from_millis(600));
    let writer = std::thread::spawn(move || {
        slow.write_record(Expect::Version(L1, 1), &record(L1, 2, "new", "r"))
    });
    // While the writer sits in the middle of its temporary file, the token file is the
    // old one, whole.
    let start = Instant::now();
    let mut saw_temp = false;
    while start.elapsed() < Duration::from_millis(400) {
        let r = reader.read_record().unwrap().unwrap();
        assert!(r.version == 1 && access(&r) == "old", "the old record");
        saw_temp |= names(dir.path()).iter().any(|n| n.ends_with(".tmp"));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(saw_temp, "the write goes through a temporary file");
    assert_eq!(writer.join().unwrap().unwrap(), Swap::Written);
    let r = reader.read_record().unwrap().unwrap();
    assert!(r.version == 2 && access(&r) == "new", "the new record");
    assert_eq!(names(dir.path()), ["tokens.json", "tokens.json.lock"]);
}

#[test]
fn concurrent_writers_lose_no_update() {
    const WRITERS: u64 = 4;
    const EACH: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    FileStore::new(&path)
        .write_record(Expect::Absent, &record(L1, 0, "a-0", "r"))
        .unwrap();
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = FileStore::new(&path);
            std::thread::spawn(move || {
                let (mut written, mut conflicts) = (0, 0);
                while written < EACH {
                    let current = store.read_record().unwrap().unwrap();
                    let next = record(L1, current.version + 1, &format!("a-{w}"), "r");
                    match store
                        .write_record(Expect::Version(L1, current.version), &next)
                        .unwrap()
                    {
                        Swap::Written => written += 1,
                        Swap::Conflict(Some(newer)) => {
                            assert!(newer.version > current.version);
                            conflicts += 1;
                        }
                        Swap::Conflict(None) => panic!("the record vanished"),
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    // Every successful swap moved the version by exactly one: none was overwritten.
    let last = FileStore::new(&path).read_record().unwrap().unwrap();
    eprintln!(
        "figures: {WRITERS} writers x {EACH} swaps: final version {}, conflicts {conflicts}",
        last.version
    );
    assert_eq!(last.version, WRITERS * EACH);
    assert_eq!(names(dir.path()), ["tokens.json", "tokens.json.lock"]);
}

#[test]
fn temporary_files_of_crashed_writers_are_ignored_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    store
        .write_record(Expect::Absent, &record(L1, 1, "a", "r"))
        .unwrap();
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
    assert!(
        access(&store.read_record().unwrap().unwrap()) == "a",
        "the written tokens"
    );
    // The next holder of the lock cleans up.
    let Lease::Granted(id) = store.take_lease(L1, Duration::from_secs(5)).unwrap() else {
        panic!("a free lease was refused")
    };
    store.give_back(id).unwrap();
    assert!(!old.exists(), "a leftover of a crash is removed");
    assert!(
        fresh.exists(),
        "a write that may be in progress is left alone"
    );
}

#[test]
fn debug_output_and_errors_show_no_token_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("tokens.json"));
    let r = record(L1, 1, "SECRET-ACCESS", "SECRET-REFRESH");
    store.write_record(Expect::Absent, &r).unwrap();
    let conflict = store.write_record(Expect::Absent, &r).unwrap();
    let shown = format!(
        "{store:?} {:?} {conflict:?} {:?}",
        store.read_record(),
        store.read()
    );
    assert!(!shown.contains("SECRET"), "Debug shows token text");
    // A token where a number belongs: the JSON error does not quote it.
    let text = fs::read_to_string(store.path()).unwrap();
    let bad = text.replacen("\"version\": 1", "\"version\": \"SECRET-V\"", 1);
    fs::write(store.path(), bad).unwrap();
    let err = store.read().unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SECRET"), "an error shows token text");
}

#[cfg(feature = "reqwest")]
mod with_the_async_adapter {
    use super::*;
    use reauth::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
    use reauth::protocol::OAuth2Grant;
    use reauth::{Config, Event, Origin, Phase, TokenSet};
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
        reauth::reqwest::Client::builder(reqwest::Client::builder(), config)
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

    fn login_set(issued: &reauth_testkit::IssuedTokens) -> TokenSet {
        TokenSet::new(AccessToken::new(issued.access_token.clone()).unwrap())
            .with_refresh_token(RefreshToken::new(issued.refresh_token.clone()).unwrap())
            .with_expires_in(Duration::from_secs(issued.expires_in))
    }

    /// Waits until the file satisfies `done` (the adapter writes on a task of its own).
    async fn until_file(path: &Path, done: impl Fn(Option<&Record>) -> bool) -> Option<Record> {
        let store = FileStore::new(path);
        loop {
            let r = store.read_record().unwrap();
            if done(r.as_ref()) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes a fresh login to the file, then expires it on the server. Returns the
    /// refresh token.
    fn seed_expired(server: &TestServer, path: &Path) -> String {
        let issued = server.issue_tokens();
        let r = Record {
            lineage: L1,
            version: 1,
            entry: Entry::Tokens(SavedTokens {
                access_token: AccessToken::new(issued.access_token).unwrap(),
                refresh_token: Some(RefreshToken::new(issued.refresh_token.clone()).unwrap()),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                scope: None,
            }),
        };
        FileStore::new(path)
            .write_record(Expect::Absent, &r)
            .unwrap();
        server.expire_access_tokens();
        issued.refresh_token
    }

    fn refresh_of(r: &Record) -> &str {
        r.tokens()
            .and_then(|t| t.refresh_token.as_ref())
            .map_or("", |t| t.secret())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_file_starts_the_client_logged_out() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            fs::write(&path, b"{\"format\":\"reauth-tokens\",\"version\":2,\"chec").unwrap();
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
            c.login(login_set(&server.issue_tokens()));
            let r = c.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let lineage = c.snapshot().lineage.unwrap();
            let saved = until_file(&path, |r| r.is_some()).await.unwrap();
            assert_eq!((saved.lineage, saved.version), (lineage, 1));
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_newer_builds_file_stays_intact_through_a_client_and_a_login() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            fs::write(&path, FUTURE).unwrap();
            let c = client(&server, FileStore::new(&path));
            let err = c.store_load_error().expect("the load error is kept");
            assert_eq!(err.kind(), StoreErrorKind::NewerFormat);
            assert_eq!(c.snapshot().phase, Phase::Empty);
            let mut events = c.subscribe();
            c.login(login_set(&server.issue_tokens()));
            // The login's write is refused, and the session says so.
            let failed = loop {
                match events.recv().await.unwrap() {
                    Event::StoreFailed { error } => break error,
                    _ => continue,
                }
            };
            assert_eq!(failed.kind(), StoreErrorKind::NewerFormat);
            // The tokens live on in memory.
            let r = c.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(fs::read(&path).unwrap(), FUTURE);
            assert_eq!(names(dir.path()), ["tokens.json", "tokens.json.lock"]);
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_file_is_taken_up_and_upgraded_by_the_next_refresh() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            let issued = server.issue_tokens();
            fs::write(
                &path,
                version_1_file(&issued.access_token, &issued.refresh_token),
            )
            .unwrap();
            server.expire_access_tokens();
            let c = client(&server, FileStore::new(&path));
            assert!(c.store_load_error().is_none());
            let r = c.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let zero = Lineage::from_u128(0);
            let saved = until_file(&path, |r| r.is_some_and(|r| r.version == 1)).await;
            let saved = saved.unwrap();
            assert_eq!(saved.lineage, zero);
            assert!(refresh_of(&saved) != issued.refresh_token, "rotated");
            let value: serde_json::Value =
                serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            assert_eq!(value["version"], 2);
            let stats = server.stats();
            assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
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
            first.login(login_set(&issued));
            server.expire_access_tokens();
            let r = first.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let lineage = first.snapshot().lineage.unwrap();
            let saved = until_file(&path, |r| r.is_some_and(|r| r.version == 2)).await;
            let saved = saved.unwrap();
            assert_eq!(saved.lineage, lineage);
            assert!(
                refresh_of(&saved) != issued.refresh_token,
                "the rotated refresh token was saved"
            );
            drop(first);
            // "Restart": a new client on the same file uses the saved tokens as they are.
            let second = client(&server, FileStore::new(&path));
            assert!(second.store_load_error().is_none());
            assert_eq!(second.snapshot().lineage, Some(lineage));
            assert_eq!(second.snapshot().version, Some(2));
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
            seed_expired(&server, &path);
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
            let saved = FileStore::new(&path).read_record().unwrap().unwrap();
            assert_eq!((saved.lineage, saved.version), (L1, 2));
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_waits_for_the_lease_holder_and_adopts_its_tokens() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            let first = seed_expired(&server, &path);
            let c = client(&server, FileStore::new(&path));
            let mut events = c.subscribe();
            // "Another process" is refreshing: it holds the lease.
            let other = FileStore::new(&path);
            let Lease::Granted(lease) = other.take_lease(L1, Duration::from_secs(30)).unwrap()
            else {
                panic!("a free lease was refused")
            };
            let request = tokio::spawn({
                let (c, url) = (c.clone(), server.api_url("items/1"));
                async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(!request.is_finished(), "the client waits for the lease");
            assert_eq!(server.stats().token_calls, 0);
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
            let rotated = Record {
                lineage: L1,
                version: 2,
                entry: Entry::Tokens(SavedTokens {
                    access_token: AccessToken::new(response["access_token"].as_str().unwrap())
                        .unwrap(),
                    refresh_token: Some(
                        RefreshToken::new(response["refresh_token"].as_str().unwrap()).unwrap(),
                    ),
                    expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                    scope: None,
                }),
            };
            let swap = other
                .write_record(Expect::Version(L1, 1), &rotated)
                .unwrap();
            assert_eq!(swap, Swap::Written);
            other.give_back(lease).unwrap();
            assert_eq!(request.await.unwrap().unwrap(), 200);
            // The client adopted the other process's tokens: the only token call was theirs.
            let stats = server.stats();
            assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
            let adopted = std::iter::from_fn(|| events.try_recv().ok())
                .any(|e| matches!(e, Event::Adopted { .. }));
            assert!(adopted, "an Adopted event");
            assert_eq!(c.snapshot().version, Some(2));
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_holders_lease_is_taken_over_after_its_time_to_live() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            seed_expired(&server, &path);
            let c = client(&server, FileStore::new(&path));
            // A holder that will never give it back.
            let ttl = Duration::from_millis(1500);
            let taken = Instant::now();
            let granted = FileStore::new(&path).take_lease(L1, ttl).unwrap();
            assert!(matches!(granted, Lease::Granted(_)));
            let r = c.get(server.api_url("items/1")).send().await.unwrap();
            let waited = taken.elapsed();
            assert_eq!(r.status(), 200);
            assert!(waited >= ttl, "took over after {waited:?}");
            assert!(waited < ttl + Duration::from_secs(3), "{waited:?}");
            let stats = server.stats();
            assert_eq!((stats.token_calls, stats.reuse_detections), (1, 0));
            let saved = until_file(&path, |r| r.is_some_and(|r| r.version == 2)).await;
            assert_eq!(saved.unwrap().lineage, L1);
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_lock_held_too_long_is_a_store_failure_not_a_logout() {
        bounded(async {
            let server = TestServer::start(ServerConfig::default()).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.json");
            seed_expired(&server, &path);
            let store = FileStore::new(&path);
            let c = client(&server, FileStore::new(&path));
            let mut events = c.subscribe();
            let held = hold_write_lock(&store);
            let r = c.get(server.api_url("items/1")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(server.stats().token_calls, 1);
            let mut failures = Vec::new();
            while let Ok(e) = events.try_recv() {
                match e {
                    Event::StoreFailed { error } => failures.push(error.kind()),
                    Event::LoggedOut { reason } => panic!("logged out: {reason}"),
                    _ => {}
                }
            }
            assert!(
                failures.contains(&StoreErrorKind::LockTimeout),
                "{failures:?}"
            );
            drop(held);
            // The file was left as it was: the tokens live on in memory.
            assert_eq!(store.read_record().unwrap().unwrap().version, 1);
            server.shutdown().await;
        })
        .await;
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_at_the_lock_or_token_path_is_refused_not_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    // A link planted at `<file>.lock`: its target is neither created nor written.
    let store = FileStore::new(dir.path().join("tokens.json"));
    let target = dir.path().join("planted-target");
    symlink(&target, store.lock_path()).unwrap();
    let err = store
        .write_record(Expect::Absent, &record(L1, 1, "a", "r"))
        .unwrap_err();
    assert!(matches!(err, FileStoreError::Symlink { .. }), "{err:?}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!target.exists(), "the link was followed");
    assert!(store.take_lease(L1, Duration::from_secs(1)).is_err());
    assert!(!target.exists(), "the link was followed");
    // A link at the token path, to a valid token file elsewhere: not read.
    let elsewhere = FileStore::new(dir.path().join("elsewhere.json"));
    elsewhere
        .write_record(Expect::Absent, &record(L1, 1, "planted", "r"))
        .unwrap();
    let linked = FileStore::new(dir.path().join("linked.json"));
    symlink(elsewhere.path(), linked.path()).unwrap();
    let err = linked.read_record().unwrap_err();
    assert!(matches!(err, FileStoreError::Symlink { .. }), "{err:?}");
    assert!(!err.to_string().contains("planted"), "{err}");
}
