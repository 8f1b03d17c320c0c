//! [`FileStore`]: tokens in a file, kept across restarts and shared by processes.

mod error;

pub use error::FileStoreError;

use crate::lock_file::{self as lock, FileLock};
use crate::token_format as format;
use reauth_core::{Expect, Lease, LeaseId, Lineage, Record, StoreError, Swap, TokenStore};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long an operation waits for the file's short write lock: another process holds it
/// only while it writes.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Temporary files older than this are leftovers of a crashed writer and are removed (by
/// the holder of the lock). A live write takes milliseconds.
const TEMP_MAX_AGE: Duration = Duration::from_secs(60);

/// Keeps tokens in a file, so a session survives restarts, and lets several processes
/// share that file safely.
///
/// - **Format**: versioned JSON with the expiry as absolute UNIX time and a checksum
///   over the tokens (see below). Every field is checked on load: token texts, version,
///   plausible times, checksum.
/// - **Atomic replacement**: a save writes a new `0600` temporary file in the same
///   folder, syncs it, renames it over the token file and syncs the folder. A crash at
///   any moment leaves the old file or the new one, never a mix. A temporary file left by
///   a crash is ignored, and removed once it is a minute old.
/// - **The session record**: the file holds the [`Record`]: the login's lineage, a
///   version that grows with every write, and the tokens or a tombstone. A logout writes
///   the tombstone, so every process sharing the file sees it and none brings the tokens
///   back; a record of another login is never adopted.
/// - **Compare-and-swap and the lease**: every write takes an exclusive lock on
///   `<name>.lock` beside the file for as long as it writes, re-reads the record under it
///   and writes only if it still holds what the writer expects. The refresh lease (one
///   refreshing process at a time, with a time to live) is kept in the lock file, so a
///   process killed mid-refresh frees it when its time runs out, and the record's
///   version keeps one that overran it from overwriting newer tokens.
/// - **Unreadable files** (corrupt, truncated) give a typed [`FileStoreError`]; the file
///   is renamed aside as `<name>.corrupt-<unix-seconds>` for inspection, never silently
///   overwritten, and a client starts logged out. A file **written by a newer build** is
///   read-only for this one: it is never moved aside or overwritten, and the error says
///   so ([`FileStoreError::FutureVersion`]).
/// - **Permissions**: on Unix the token file and the lock file are `0600`, a folder it
///   creates is `0700`.
///
/// Errors and `Debug` never show token text.
///
/// ```no_run
/// # #[cfg(feature = "reqwest")]
/// # async fn demo(config: reauth::Config, grant: reauth::protocol::OAuth2Grant)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use reauth::FileStore;
///
/// let client = reauth::reqwest::Client::builder(reqwest::Client::builder(), config)
///     .oauth2(grant)
///     .store(FileStore::new("/home/me/.config/mytool/tokens.json"))
///     .build()?; // loads the file; a bad file is set aside and the client starts logged out
/// if let Some(e) = client.store_load_error() {
///     eprintln!("please log in again ({e})");
/// }
/// # Ok(()) }
/// ```
///
/// The file (format version 2; version 1 files are read and replaced on the next write):
///
/// ```json
/// {
///   "format": "reauth-tokens",
///   "version": 2,
///   "checksum": "crc32:<8 hex digits over the compact JSON of record>",
///   "record": {
///     "lineage": "<32 hex digits>",
///     "version": 7,
///     "access_token": "…",
///     "refresh_token": "…",
///     "expires_at": 1767229200,
///     "scope": "read write",
///     "logged_out": null,
///     "saved_at": 1767225600
///   }
/// }
/// ```
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    persist_pause: Option<Duration>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .field("lock_path", &self.lock_path)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// A store for the token file at `path` (created on the first save, with its folder).
    /// The lock file is `path` with `.lock` appended.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        Self {
            path,
            lock_path: lock_path.into(),
            persist_pause: None,
        }
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file beside it.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// For crash tests only: pause this long in the middle of writing the temporary
    /// file, so that a `kill -9` lands mid-save.
    #[doc(hidden)]
    pub fn persist_pause_for_tests(mut self, pause: Duration) -> Self {
        self.persist_pause = Some(pause);
        self
    }

    /// Reads the record: `Ok(None)` if there is no file. An unreadable file is renamed
    /// aside (under the lock, so a file another process is just replacing is not mistaken
    /// for it) and reported with the new name; a newer build's file is left alone.
    pub fn read_record(&self) -> Result<Option<Record>, FileStoreError> {
        let first = match self.read_bytes()? {
            None => return Ok(None),
            Some(bytes) => match self.decode(&bytes) {
                Err(e) if e.is_unreadable() => e,
                other => return other.map(Some),
            },
        };
        // Look again under the lock: a writer may have just replaced the file.
        match self.lock() {
            Ok(lock) => self.read_locked(&lock),
            // Cannot be sure it is still the bad file: report, keep it in place.
            Err(_) => Err(first),
        }
    }

    /// Writes `record` if the file holds what `expect` says (under the lock, atomically);
    /// otherwise returns what it holds. An unreadable file in the way is renamed aside
    /// first (and counts as no record); a newer build's file is never overwritten.
    pub fn write_record(&self, expect: Expect, record: &Record) -> Result<Swap, FileStoreError> {
        let lock = self.lock()?;
        let current = self.read_locked(&lock).or_else(|e| match e {
            e if e.is_unreadable() => Ok(None),
            e => Err(e),
        })?;
        if !expect.admits(current.as_ref()) {
            return Ok(Swap::Conflict(current));
        }
        self.replace(record)?;
        Ok(Swap::Written)
    }

    /// Reads the file while holding the lock: an unreadable file is set aside.
    fn read_locked(&self, _lock: &FileLock) -> Result<Option<Record>, FileStoreError> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        match self.decode(&bytes) {
            Err(mut e) if e.is_unreadable() => {
                if let Some(to) = self.quarantine()? {
                    e.set_quarantined(to);
                }
                Err(e)
            }
            other => other.map(Some),
        }
    }

    /// Replaces the file atomically: a new `0600` temporary file, synced, renamed over it.
    fn replace(&self, record: &Record) -> Result<(), FileStoreError> {
        let dir = self.dir();
        let bytes = format::encode(record, SystemTime::now());
        let mut temp = tempfile::Builder::new()
            .prefix(&self.temp_prefix())
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| FileStoreError::io(dir, "creating a temporary file", e))?;
        // tempfile creates it 0600 on Unix: the tokens are never readable by others.
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        let file = temp.as_file_mut();
        let written = (|| {
            file.write_all(head)?;
            if let Some(pause) = self.persist_pause {
                file.flush()?;
                std::thread::sleep(pause);
            }
            file.write_all(tail)?;
            file.sync_all()
        })();
        written.map_err(|e| FileStoreError::io(temp.path(), "writing the temporary file", e))?;
        temp.persist(&self.path)
            .map_err(|e| FileStoreError::io(&self.path, "replacing the token file", e.error))?;
        sync_dir(dir)
    }

    /// Takes the refresh lease for `ttl` unless another holder's lease is still running.
    pub fn take_lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, FileStoreError> {
        Ok(self.lock()?.take_lease(lineage, ttl)?)
    }

    /// Gives the lease back, if `lease` still holds it.
    pub fn give_back(&self, lease: LeaseId) -> Result<(), FileStoreError> {
        Ok(self.lock()?.give_back(lease)?)
    }

    /// Takes the file's write lock, which every writer of this file (in any process)
    /// holds while it writes. Also removes temporary files that crashed writers left.
    fn lock(&self) -> Result<FileLock, FileStoreError> {
        create_dir(self.dir())?;
        let lock = lock::acquire(&self.lock_path, LOCK_WAIT)?;
        self.remove_stale_temps();
        Ok(lock)
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    fn file_name(&self) -> OsString {
        self.path
            .file_name()
            .map_or_else(|| OsString::from("tokens"), ToOwned::to_owned)
    }

    fn temp_prefix(&self) -> OsString {
        let mut prefix = OsString::from(".");
        prefix.push(self.file_name());
        prefix.push(".");
        prefix
    }

    fn read_bytes(&self) -> Result<Option<Vec<u8>>, FileStoreError> {
        let mut options = fs::OpenOptions::new();
        options.read(true);
        // A link at the token path would hand us tokens from a file of someone else's
        // choosing. (Writes are safe already: the temporary file is created exclusively,
        // which never follows a link, and the rename replaces a link, not its target.)
        lock::no_follow(&mut options);
        let file = match options.open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FileStoreError::open(
                    &self.path,
                    "opening the token file",
                    e,
                ))
            }
        };
        let mut bytes = Vec::new();
        file.take(format::MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FileStoreError::io(&self.path, "reading the token file", e))?;
        Ok(Some(bytes))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Record, FileStoreError> {
        self.parse_bytes(bytes, SystemTime::now())
    }

    /// What [`read_record`](Self::read_record) makes of a file's bytes, without touching
    /// the file: the format, version, checksum and every field checked as of wall time
    /// `now`. For tools and fuzzing; never panics, whatever the bytes.
    pub fn parse_bytes(&self, bytes: &[u8], now: SystemTime) -> Result<Record, FileStoreError> {
        let path = self.path.clone();
        if bytes.len() as u64 > format::MAX_FILE_BYTES {
            return Err(FileStoreError::Corrupt {
                path,
                reason: format!("larger than {} bytes", format::MAX_FILE_BYTES),
                quarantined: None,
            });
        }
        format::decode(bytes, now).map_err(|bad| match bad {
            format::Bad::Truncated => FileStoreError::Truncated {
                path,
                quarantined: None,
            },
            format::Bad::FutureVersion(found) => FileStoreError::FutureVersion {
                path,
                found,
                supported: format::VERSION,
            },
            format::Bad::Corrupt(reason) => FileStoreError::Corrupt {
                path,
                reason,
                quarantined: None,
            },
        })
    }

    /// The bytes [`write_record`](Self::write_record) would put in the file for
    /// `record`, saved at wall time `now`.
    pub fn to_bytes(record: &Record, now: SystemTime) -> Vec<u8> {
        format::encode(record, now)
    }

    /// Renames the token file to `<name>.corrupt-<unix-seconds>[-n]` in its folder.
    /// `None` if it vanished meanwhile.
    fn quarantine(&self) -> Result<Option<PathBuf>, FileStoreError> {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for n in 0..100u32 {
            let mut name = self.file_name();
            name.push(format!(".corrupt-{secs}"));
            if n > 0 {
                name.push(format!("-{n}"));
            }
            let to = self.dir().join(name);
            if to.exists() {
                continue;
            }
            return match fs::rename(&self.path, &to) {
                Ok(()) => {
                    sync_dir(self.dir())?;
                    Ok(Some(to))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(FileStoreError::io(
                    &self.path,
                    "setting the bad file aside",
                    e,
                )),
            };
        }
        Err(FileStoreError::io(
            &self.path,
            "setting the bad file aside",
            io::Error::new(io::ErrorKind::AlreadyExists, "too many quarantined files"),
        ))
    }

    /// Removes temporary files of this store older than [`TEMP_MAX_AGE`]. Best effort.
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return;
        };
        let prefix = self.temp_prefix();
        let prefix = prefix.as_encoded_bytes();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            if !(name.starts_with(prefix) && name.ends_with(b".tmp")) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > TEMP_MAX_AGE);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl TokenStore for FileStore {
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

fn create_dir(dir: &Path) -> Result<(), FileStoreError> {
    lock::create_private_dir(dir).map_err(|e| FileStoreError::io(dir, "creating the folder", e))
}

/// Makes a rename in `dir` durable: on Unix the folder itself must be synced.
fn sync_dir(dir: &Path) -> Result<(), FileStoreError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileStoreError::io(dir, "syncing the folder", e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
