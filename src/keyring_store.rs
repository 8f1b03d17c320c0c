//! [`KeyringStore`]: tokens in the platform's credential store.

mod error;

pub use error::KeyringStoreError;

use crate::lock_file::{self, FileLock};
use crate::token_format as format;
use keyring_core::{CredentialStore, Entry as KeyringEntry};
use reauth_core::{Expect, Lease, LeaseId, Lineage, Record, StoreError, Swap, TokenStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How long an operation waits for the lock file: another process holds it only while it
/// reads and writes the entry.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Keeps tokens in the platform's credential store: the macOS Keychain, the iOS protected
/// data store, the Windows Credential Manager, the Linux kernel's keyutils, or Android's
/// keystore-encrypted preferences (or any other [`keyring_core`] store, through
/// [`with_store`](Self::with_store)).
///
/// The entry (one per `service` and `user`) holds the same session [`Record`] as a
/// [`FileStore`](crate::FileStore)'s file, in the same format (version 2, compact JSON with
/// a checksum, every field checked on load): the login's lineage, a version that grows
/// with every write, and the tokens or a tombstone.
///
/// # What a keyring can do, and what it cannot
///
/// | | `KeyringStore` | with [`lock_file`](Self::lock_file) | `FileStore` |
/// |---|---|---|---|
/// | tokens encrypted at rest, readable only by this user | yes (Keychain, Credential Manager, Android; keyutils: kernel memory) | yes | no: a `0600` file |
/// | a write is all or nothing | yes: one platform call | yes | yes: rename |
/// | compare-and-swap, tombstones that stick | within this process | across processes | across processes |
/// | one refresh at a time (the lease) | within this process | across processes | across processes |
/// | a lease of a crashed holder frees itself | yes (its time to live) | yes | yes |
/// | survives a reboot | yes, except keyutils | yes, except keyutils | yes |
/// | record size | Windows: 2560 bytes; keyutils: 32767, within a per-user quota | same | 64 KiB |
///
/// - **No compare-and-swap.** Platform credential stores offer *set* and *get*, never
///   "set if unchanged". A `KeyringStore` does the read, the comparison and the write
///   under a lock: a lock shared by every `KeyringStore` of this entry *in this process*
///   (it sees the same entry through another instance too); with
///   [`lock_file`](Self::lock_file), the same exclusive file lock a `FileStore` takes, so
///   every process using that lock file serialises. Writers that bypass the lock (another
///   program, the platform's own password manager, `keyctl`) are not fenced.
/// - **No lease across processes** without the lock file: each process then has its own,
///   and two processes may refresh at the same time. With a provider that rotates refresh
///   tokens and detects reuse, the slower one is refused and logs the session out. Give
///   every process that shares the entry the same lock file; the lease then lives in it,
///   exactly as a `FileStore`'s.
/// - **Keyutils forgets.** Linux kernel keys live in memory: a reboot clears them, and so
///   does the user's persistent keyring expiring (after days without use, see
///   `/proc/sys/kernel/keys/persistent_keyring_expiry`). A lost entry reads as no
///   record: the client starts logged out. Keyutils needs a session keyring the process
///   may write to: a desktop login has one; a service or a container may not (the store
///   then reports [`KeyringStoreError::Unavailable`]: start the process under
///   `keyctl session`, or in a login session).
/// - **Size.** A Windows credential holds at most 2560 bytes, so very long tokens (large
///   JWTs) do not fit: a write fails with [`KeyringStoreError::TooLarge`] and the session
///   goes on in memory.
/// - **Unreadable entries** give [`KeyringStoreError::Corrupt`]; the entry is copied to
///   the user name `<user>.corrupt-<unix-seconds>` of the same service and removed (never
///   silently overwritten), and a client starts logged out. An entry **written by a newer
///   build** is read-only for this one ([`KeyringStoreError::FutureVersion`]).
///
/// Errors and `Debug` never show token text.
///
/// ```no_run
/// # #[cfg(feature = "ureq")]
/// # fn demo(config: reauth::Config, grant: reauth::protocol::OAuth2Grant)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use reauth::KeyringStore;
///
/// // One entry per account; the lock file lets several processes share it safely.
/// let store = KeyringStore::new("com.example.mytool", "alice@example.com")?
///     .lock_file("/home/alice/.cache/mytool/tokens.lock");
/// let agent = reauth::ureq::Agent::builder(reauth::ureq::ureq::Agent::new_with_defaults(), config)
///     .oauth2(grant)
///     .store(store)
///     .build()?; // reads the entry; a bad one is set aside and the agent starts logged out
/// if let Some(e) = agent.store_load_error() {
///     eprintln!("please log in again ({e})");
/// }
/// # Ok(()) }
/// ```
pub struct KeyringStore {
    entry: KeyringEntry,
    store: Arc<CredentialStore>,
    service: String,
    user: String,
    /// `service "…", user "…"`, for errors.
    name: String,
    lock_path: Option<PathBuf>,
    /// Shared by every `KeyringStore` of this entry in this process.
    local: Arc<Mutex<Local>>,
}

/// The in-process lock's state: the lease, when there is no lock file.
#[derive(Debug, Default)]
struct Local {
    lease: Option<(LeaseId, Instant)>,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("service", &self.service)
            .field("user", &self.user)
            .field("store", &self.store.vendor())
            .field("lock_path", &self.lock_path)
            .finish_non_exhaustive()
    }
}

/// Holds every operation on an entry to one at a time.
enum Guard<'a> {
    File(FileLock),
    Local(MutexGuard<'a, Local>),
}

impl KeyringStore {
    /// The entry for `service` and `user` in this platform's own credential store:
    /// keyutils on Linux, the Keychain on macOS, the protected data store on iOS, the
    /// Credential Manager on Windows, the keystore on Android (which needs the app's NDK
    /// context set up first). `service` names the application (e.g. its bundle id),
    /// `user` the account.
    ///
    /// Fails with [`KeyringStoreError::Unavailable`] on a platform without one, or if the
    /// store refuses the names.
    pub fn new(service: &str, user: &str) -> Result<Self, KeyringStoreError> {
        let name = entry_name(service, user);
        let store = native_store().map_err(|e| KeyringStoreError::platform(&name, "opening", e))?;
        Self::with_store(store, service, user)
    }

    /// The entry for `service` and `user` in `store`: any [`keyring_core`] credential
    /// store, e.g. the Secret Service (crate `zbus-secret-service-keyring-store`) on a
    /// Linux desktop.
    pub fn with_store(
        store: Arc<CredentialStore>,
        service: &str,
        user: &str,
    ) -> Result<Self, KeyringStoreError> {
        let name = entry_name(service, user);
        let entry = KeyringEntry::new_in_store(&store, service, user)
            .map_err(|e| KeyringStoreError::platform(&name, "opening the entry", e))?;
        let local = local_lock(&store.vendor(), service, user);
        Ok(Self {
            entry,
            store,
            service: service.to_owned(),
            user: user.to_owned(),
            name,
            lock_path: None,
            local,
        })
    }

    /// Serialises every operation, and keeps the refresh lease, in the lock file at
    /// `path` (created `0600` on the first operation, with its folder): the lock a
    /// [`FileStore`](crate::FileStore) uses. Every process sharing the entry must use the
    /// same lock file; a local folder, as `flock` over a network file system is only as
    /// good as its support.
    #[must_use]
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_path = Some(path.into());
        self
    }

    /// The service the entry belongs to.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The user (account) the entry belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The lock file, if there is one.
    pub fn lock_path(&self) -> Option<&Path> {
        self.lock_path.as_deref()
    }

    /// Reads the record: `Ok(None)` if there is no entry. An unreadable entry is set
    /// aside (under the lock, so one another process is just replacing is not mistaken
    /// for it) and reported with the copy's name; a newer build's entry is left alone.
    pub fn read_record(&self) -> Result<Option<Record>, KeyringStoreError> {
        let first = match self.get()? {
            None => return Ok(None),
            Some(bytes) => match self.decode(&bytes) {
                Err(e) if e.is_unreadable() => e,
                other => return other.map(Some),
            },
        };
        match self.guard() {
            Ok(guard) => self.read_guarded(&guard),
            // Cannot be sure it is still the bad entry: report, keep it in place.
            Err(_) => Err(first),
        }
    }

    /// Writes `record` if the entry holds what `expect` says (under the lock); otherwise
    /// returns what it holds. An unreadable entry in the way is set aside first (and
    /// counts as no record); a newer build's entry is never overwritten.
    pub fn write_record(&self, expect: Expect, record: &Record) -> Result<Swap, KeyringStoreError> {
        let guard = self.guard()?;
        let current = self.read_guarded(&guard).or_else(|e| match e {
            e if e.is_unreadable() => Ok(None),
            e => Err(e),
        })?;
        if !expect.admits(current.as_ref()) {
            return Ok(Swap::Conflict(current));
        }
        let bytes = format::encode_compact(record, SystemTime::now());
        self.entry.set_secret(&bytes).map_err(|e| {
            match KeyringStoreError::platform(&self.name, "writing the entry", e) {
                KeyringStoreError::TooLarge { entry, limit, .. } => KeyringStoreError::TooLarge {
                    entry,
                    len: bytes.len(),
                    limit,
                },
                other => other,
            }
        })?;
        Ok(Swap::Written)
    }

    /// Takes the refresh lease for `ttl` unless another holder's lease is still running:
    /// in the lock file if there is one, else for this process.
    pub fn take_lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, KeyringStoreError> {
        match self.guard()? {
            Guard::File(mut lock) => lock
                .take_lease(lineage, ttl)
                .map_err(KeyringStoreError::lock),
            Guard::Local(mut local) => {
                let now = Instant::now();
                if local.lease.is_some_and(|(_, until)| until > now) {
                    return Ok(Lease::Busy);
                }
                let owner = LeaseId(lock_file::random_owner());
                // A time to live past what `Instant` holds is a lease until released.
                let until = now
                    .checked_add(ttl)
                    .unwrap_or(now + Duration::from_secs(86_400 * 365));
                local.lease = Some((owner, until));
                Ok(Lease::Granted(owner))
            }
        }
    }

    /// Gives the lease back, if `lease` still holds it.
    pub fn give_back(&self, lease: LeaseId) -> Result<(), KeyringStoreError> {
        match self.guard()? {
            Guard::File(mut lock) => lock.give_back(lease).map_err(KeyringStoreError::lock),
            Guard::Local(mut local) => {
                if local.lease.is_some_and(|(owner, _)| owner == lease) {
                    local.lease = None;
                }
                Ok(())
            }
        }
    }

    /// Removes the entry (its tokens or tombstone), e.g. when the app is uninstalled or
    /// the account removed. Nothing to remove is not an error. Sessions using it are not
    /// told: log them out first.
    pub fn delete(&self) -> Result<(), KeyringStoreError> {
        let _guard = self.guard()?;
        delete_entry(&self.entry, &self.name)
    }

    /// What [`read_record`](Self::read_record) makes of an entry's bytes, without touching
    /// the entry, checked as of wall time `now`. Never panics, whatever the bytes.
    pub fn parse_bytes(&self, bytes: &[u8], now: SystemTime) -> Result<Record, KeyringStoreError> {
        let entry = self.name.clone();
        if bytes.len() as u64 > format::MAX_FILE_BYTES {
            return Err(KeyringStoreError::Corrupt {
                entry,
                reason: format!("larger than {} bytes", format::MAX_FILE_BYTES),
                quarantined: None,
            });
        }
        format::decode(bytes, now).map_err(|bad| match bad {
            format::Bad::Truncated => KeyringStoreError::Corrupt {
                entry,
                reason: "truncated".into(),
                quarantined: None,
            },
            format::Bad::FutureVersion(found) => KeyringStoreError::FutureVersion {
                entry,
                found,
                supported: format::VERSION,
            },
            format::Bad::Corrupt(reason) => KeyringStoreError::Corrupt {
                entry,
                reason,
                quarantined: None,
            },
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<Record, KeyringStoreError> {
        self.parse_bytes(bytes, SystemTime::now())
    }

    /// The entry's bytes; `None` if there is no entry.
    fn get(&self) -> Result<Option<Vec<u8>>, KeyringStoreError> {
        match self.entry.get_secret() {
            Ok(bytes) => Ok(Some(bytes)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(KeyringStoreError::platform(
                &self.name,
                "reading the entry",
                e,
            )),
        }
    }

    /// The lock file's lock, or this process's lock of the entry.
    fn guard(&self) -> Result<Guard<'_>, KeyringStoreError> {
        let Some(path) = &self.lock_path else {
            // Every critical section assigns whole values: recover after a panic.
            return Ok(Guard::Local(
                self.local.lock().unwrap_or_else(|e| e.into_inner()),
            ));
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            lock_file::create_private_dir(dir).map_err(|source| KeyringStoreError::LockFile {
                path: dir.to_owned(),
                op: "creating the folder",
                source,
            })?;
        }
        lock_file::acquire(path, LOCK_WAIT)
            .map(Guard::File)
            .map_err(KeyringStoreError::lock)
    }

    /// Reads the entry while holding the lock: an unreadable entry is set aside.
    fn read_guarded(&self, _guard: &Guard<'_>) -> Result<Option<Record>, KeyringStoreError> {
        let bytes = match self.get() {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            // The platform could not decode what it holds: nothing to copy, and the
            // entry is in the way of every write.
            Err(e) if e.is_unreadable() => {
                delete_entry(&self.entry, &self.name)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        match self.decode(&bytes) {
            Err(mut e) if e.is_unreadable() => {
                e.set_quarantined(self.quarantine(&bytes)?);
                Err(e)
            }
            other => other.map(Some),
        }
    }

    /// Copies the bad entry to `<user>.corrupt-<unix-seconds>[-n]` of the same service,
    /// then removes it. Returns the copy's user name.
    fn quarantine(&self, bytes: &[u8]) -> Result<String, KeyringStoreError> {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for n in 0..100u32 {
            let mut user = format!("{}.corrupt-{secs}", self.user);
            if n > 0 {
                user.push_str(&format!("-{n}"));
            }
            let aside =
                KeyringEntry::new_in_store(&self.store, &self.service, &user).map_err(|e| {
                    KeyringStoreError::platform(&self.name, "setting the bad entry aside", e)
                })?;
            match aside.get_secret() {
                Ok(_) => continue,
                Err(keyring_core::Error::NoEntry) => {}
                Err(e) => {
                    return Err(KeyringStoreError::platform(
                        &self.name,
                        "setting the bad entry aside",
                        e,
                    ))
                }
            }
            aside.set_secret(bytes).map_err(|e| {
                KeyringStoreError::platform(&self.name, "setting the bad entry aside", e)
            })?;
            delete_entry(&self.entry, &self.name)?;
            return Ok(user);
        }
        Err(KeyringStoreError::Platform {
            entry: self.name.clone(),
            op: "setting the bad entry aside",
            reason: "too many entries set aside already".into(),
        })
    }
}

impl TokenStore for KeyringStore {
    fn read(&self) -> Result<Option<Record>, StoreError> {
        Ok(self.read_record()?)
    }

    fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError> {
        Ok(self.write_record(expect, record)?)
    }

    fn lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, StoreError> {
        Ok(self.take_lease(lineage, ttl)?)
    }

    fn release(&self, _: Lineage, lease: LeaseId) -> Result<(), StoreError> {
        Ok(self.give_back(lease)?)
    }
}

fn entry_name(service: &str, user: &str) -> String {
    format!("service {service:?}, user {user:?}")
}

fn delete_entry(entry: &KeyringEntry, name: &str) -> Result<(), KeyringStoreError> {
    match entry.delete_credential() {
        Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
        Err(e) => Err(KeyringStoreError::platform(name, "removing the entry", e)),
    }
}

/// The lock every `KeyringStore` of one entry shares in this process. Entries are told
/// apart by the store's vendor, not its instance: two instances of one platform store
/// reach the same credential.
fn local_lock(vendor: &str, service: &str, user: &str) -> Arc<Mutex<Local>> {
    type Locks = Mutex<HashMap<(String, String, String), Arc<Mutex<Local>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    locks
        .entry((vendor.to_owned(), service.to_owned(), user.to_owned()))
        .or_default()
        .clone()
}

/// This platform's own credential store.
fn native_store() -> keyring_core::Result<Arc<CredentialStore>> {
    #[cfg(target_os = "linux")]
    return Ok(linux_keyutils_keyring_store::Store::new()?);
    #[cfg(target_os = "macos")]
    return Ok(apple_native_keyring_store::keychain::Store::new()?);
    #[cfg(target_os = "ios")]
    return Ok(apple_native_keyring_store::protected::Store::new()?);
    #[cfg(target_os = "windows")]
    return Ok(windows_native_keyring_store::Store::new()?);
    #[cfg(target_os = "android")]
    return Ok(android_native_keyring_store::Store::new()?);
    #[cfg(not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "ios",
        target_os = "windows",
        target_os = "android"
    )))]
    Err(keyring_core::Error::NotSupportedByStore(
        "no platform credential store here: use KeyringStore::with_store".into(),
    ))
}
