//! The cross-process refresh lock: an exclusive advisory lock on a side file, taken by
//! polling `try_lock` until a deadline.
//!
//! std's `File::try_lock` (Rust 1.89+) is `flock(LOCK_EX | LOCK_NB)` on Unix and
//! `LockFileEx` on Windows. Both are released by the operating system when the process
//! dies, `kill -9` included, so a crashed refresher never leaves the lock behind, and both
//! conflict between two open handles of one process too, so two clients of one process
//! serialise like two processes. A blocking `lock()` has no timeout and cannot be
//! interrupted without signals, hence the polling. The lock is advisory: only processes
//! that use it coordinate (every reauth `FileStore` does). On network file systems the
//! lock is only as good as the file system's `flock` support.

use super::FileStoreError;
use reauth_core::RefreshLock;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First pause between two tries; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// Longest pause between two tries: a waiter notices a released lock within this.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// The refresh lock of a [`FileStore`](crate::FileStore), held until dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    holding: Arc<AtomicBool>,
}

impl FileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RefreshLock for FileLock {}

impl Drop for FileLock {
    fn drop(&mut self) {
        self.holding.store(false, Ordering::SeqCst);
        // Closing the file releases the lock too; unlocking first just says so.
        let _ = self.file.unlock();
    }
}

pub(crate) fn open(path: &Path) -> Result<File, FileStoreError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| FileStoreError::io(path, "opening the lock file", e))
}

/// Takes the lock at `path`, trying until `wait` has passed. `holding` is set while the
/// returned lock lives.
pub(crate) fn acquire(
    path: &Path,
    wait: Duration,
    holding: &Arc<AtomicBool>,
) -> Result<FileLock, FileStoreError> {
    let file = open(path)?;
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let waited = start.elapsed();
                if waited >= wait {
                    return Err(FileStoreError::LockTimeout {
                        path: path.to_owned(),
                        waited,
                    });
                }
                std::thread::sleep(pause.min(wait - waited));
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(TryLockError::Error(e)) => {
                return Err(FileStoreError::io(path, "locking", e));
            }
        }
    }
    holding.store(true, Ordering::SeqCst);
    Ok(FileLock {
        file,
        path: path.to_owned(),
        holding: holding.clone(),
    })
}
