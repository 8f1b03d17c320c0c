//! The write lock of a store shared by processes, and the refresh lease kept inside the
//! lock file: [`FileStore`](crate::FileStore)'s, and `KeyringStore`'s when given a lock file.
//!
//! The lock is an exclusive advisory lock on a side file, taken by polling `try_lock`
//! until a deadline. std's `File::try_lock` (Rust 1.89+) is `flock(LOCK_EX | LOCK_NB)` on
//! Unix and `LockFileEx` on Windows. Both are released by the operating system when the
//! process dies, `kill -9` included, and both conflict between two open handles of one
//! process too, so two clients of one process serialise like two processes. A blocking
//! `lock()` has no timeout, hence the polling. Every operation holds it only while it
//! reads and writes; the refresh itself runs under the *lease*, a line in the lock file
//! naming its holder and when it runs out, so a holder that dies or hangs frees it when
//! its time is up. On network file systems the lock is only as good as the file
//! system's `flock` support.

use reauth_core::{Lease, LeaseId, Lineage};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First pause between two tries; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// Longest pause between two tries: a waiter notices a released lock within this.
const MAX_PAUSE: Duration = Duration::from_millis(20);
/// Used when a lease's time to live does not fit in a `SystemTime`.
const LONGEST_LEASE: Duration = Duration::from_secs(24 * 3600);

/// Why the lock file failed; each store turns it into its own error type.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another holder kept the lock past the deadline.
    Timeout { path: PathBuf, waited: Duration },
    /// A symbolic link sits at the lock path: refused, never followed.
    Symlink { path: PathBuf },
    /// Opening, locking, reading or writing failed.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl LockError {
    fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }
}

/// The lock file, locked until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
    path: PathBuf,
}

/// A lease as the lock file keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) lineage: Lineage,
    pub(crate) owner: LeaseId,
    pub(crate) expires_at: SystemTime,
}

impl FileLock {
    /// The lease written in the lock file. Anything unreadable (a writer killed mid-line,
    /// an older build's empty file) is no lease.
    pub(crate) fn lease(&mut self) -> Result<Option<Held>, LockError> {
        let mut text = String::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| (&self.file).take(256).read_to_string(&mut text))
            .map_err(|e| LockError::io(&self.path, "reading the lease", e))?;
        let mut words = text.split_whitespace();
        let parsed = (|| {
            if words.next()? != "lease" {
                return None;
            }
            let lineage = Lineage::parse(words.next()?)?;
            let owner = u128::from_str_radix(words.next()?, 16).ok()?;
            let millis = words.next()?.parse::<u64>().ok()?;
            Some(Held {
                lineage,
                owner: LeaseId(owner),
                expires_at: UNIX_EPOCH + Duration::from_millis(millis),
            })
        })();
        Ok(parsed)
    }

    /// Writes (or with `None`, clears) the lease.
    pub(crate) fn set_lease(&mut self, held: Option<&Held>) -> Result<(), LockError> {
        let line = held.map_or_else(String::new, |h| {
            let millis = h
                .expires_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            format!("lease {} {:032x} {millis}\n", h.lineage, h.owner.0)
        });
        (|| {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(line.as_bytes())?;
            self.file.sync_data()
        })()
        .map_err(|e| LockError::io(&self.path, "writing the lease", e))
    }

    /// Takes the refresh lease for `ttl` unless another holder's lease is still running.
    pub(crate) fn take_lease(
        &mut self,
        lineage: Lineage,
        ttl: Duration,
    ) -> Result<Lease, LockError> {
        let now = SystemTime::now();
        if self.lease()?.is_some_and(|held| held.expires_at > now) {
            return Ok(Lease::Busy);
        }
        let owner = LeaseId(random_owner());
        self.set_lease(Some(&Held {
            lineage,
            owner,
            expires_at: now.checked_add(ttl).unwrap_or(now + LONGEST_LEASE),
        }))?;
        Ok(Lease::Granted(owner))
    }

    /// Gives the lease back, if `lease` still holds it.
    pub(crate) fn give_back(&mut self, lease: LeaseId) -> Result<(), LockError> {
        if self.lease()?.is_some_and(|held| held.owner == lease) {
            self.set_lease(None)?;
        }
        Ok(())
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first just says so.
        let _ = self.file.unlock();
    }
}

/// An owner id for a new lease: unique enough that two holders never share one.
pub(crate) fn random_owner() -> u128 {
    let state = RandomState::new();
    let salt = (std::process::id(), Instant::now());
    u128::from(state.hash_one(salt)) << 64 | u128::from(state.hash_one((salt, 1u8)))
}

fn open(path: &Path) -> Result<File, LockError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // A link planted at `<file>.lock` would otherwise be followed, and its target created
    // (0600, ours) and written: refused instead.
    no_follow(&mut options);
    options.open(path).map_err(|e| {
        if is_link_refusal(&e) {
            LockError::Symlink {
                path: path.to_owned(),
            }
        } else {
            LockError::io(path, "opening the lock file", e)
        }
    })
}

/// Takes the lock at `path`, trying until `wait` has passed.
pub(crate) fn acquire(path: &Path, wait: Duration) -> Result<FileLock, LockError> {
    let file = open(path)?;
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let waited = start.elapsed();
                if waited >= wait {
                    return Err(LockError::Timeout {
                        path: path.to_owned(),
                        waited,
                    });
                }
                std::thread::sleep(pause.min(wait - waited));
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(TryLockError::Error(e)) => {
                return Err(LockError::io(path, "locking", e));
            }
        }
    }
    Ok(FileLock {
        file,
        path: path.to_owned(),
    })
}

/// Opening fails on a symbolic link in the last component instead of following it
/// (`O_NOFOLLOW`). Elsewhere a no-op: Windows opens of a link need a privilege to plant.
pub(crate) fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NOFOLLOW);
    #[cfg(not(unix))]
    let _ = options;
}

/// True if an open with [`no_follow`] failed because the path is a symbolic link.
pub(crate) fn is_link_refusal(e: &io::Error) -> bool {
    // Linux and macOS say ELOOP; FreeBSD says EMLINK.
    #[cfg(unix)]
    return matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EMLINK));
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Creates `dir` and its parents; on Unix a folder it creates is `0700`.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
