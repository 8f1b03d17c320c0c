//! [`FileStoreError`]: what can go wrong with a token file. No message holds token text.

use reauth_core::{StoreError, StoreErrorKind};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A [`FileStore`](crate::FileStore) failed.
///
/// An unreadable file ([`Corrupt`](Self::Corrupt), [`Truncated`](Self::Truncated)) is
/// renamed aside, never overwritten, and the new name is in
/// [`quarantined`](Self::quarantined); a client then starts logged out. A newer build's
/// file ([`FutureVersion`](Self::FutureVersion)) is left exactly as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileStoreError {
    /// The file is not a valid token file: not JSON, a wrong or missing field, a token
    /// that could never be sent, an implausible expiry, or a checksum mismatch (the file
    /// was edited or damaged).
    #[error("token file {}: corrupt: {reason}{}", path.display(), aside(quarantined))]
    Corrupt {
        /// The token file.
        path: PathBuf,
        /// What is wrong, without any token text.
        reason: String,
        /// Where the bad file was moved, if it could be.
        quarantined: Option<PathBuf>,
    },
    /// The file is empty or ends early.
    #[error("token file {}: truncated{}", path.display(), aside(quarantined))]
    Truncated {
        /// The token file.
        path: PathBuf,
        /// Where the bad file was moved, if it could be.
        quarantined: Option<PathBuf>,
    },
    /// The file was written by a newer reauth, in a format this build cannot read. It is
    /// read-only for this build: never moved aside or overwritten. Upgrade this program,
    /// or point it at another file.
    #[error(
        "token file {}: format version {found} is newer than this build reads ({supported}); \
         left as it is (read-only for this build)",
        path.display()
    )]
    FutureVersion {
        /// The token file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// Another process held the file's write lock past the deadline.
    #[error("lock {}: still held by another process after {waited:?}", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited: Duration,
    },
    /// The token file or its lock file is a symbolic link. Refused, never followed: a
    /// link planted there would make the store read tokens from, or create and write a
    /// file at, a place of someone else's choosing.
    #[error(
        "token file {}: is a symbolic link; refused (the token file and its .lock must be \
         regular files)",
        path.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Reading, writing, renaming or locking failed.
    #[error("token file {}: {op}: {source}", path.display())]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

fn aside(quarantined: &Option<PathBuf>) -> String {
    match quarantined {
        Some(p) => format!(" (kept aside as {})", p.display()),
        None => String::new(),
    }
}

impl FileStoreError {
    pub(crate) fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }

    /// As [`io`](Self::io), for an open with no-follow semantics: the error the system
    /// gives for a symbolic link in the last component becomes [`Self::Symlink`].
    pub(crate) fn open(path: &Path, op: &'static str, source: io::Error) -> Self {
        if crate::lock_file::is_link_refusal(&source) {
            return Self::Symlink {
                path: path.to_owned(),
            };
        }
        Self::io(path, op, source)
    }

    /// Where an unreadable file was moved for inspection, if it was.
    pub fn quarantined(&self) -> Option<&Path> {
        match self {
            Self::Corrupt { quarantined, .. } | Self::Truncated { quarantined, .. } => {
                quarantined.as_deref()
            }
            _ => None,
        }
    }

    /// True for a damaged file (corrupt, truncated): it is set aside, and logging in again
    /// is the remedy, retrying is not. A newer build's file is not damaged.
    pub fn is_unreadable(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::Truncated { .. })
    }

    pub(crate) fn set_quarantined(&mut self, to: PathBuf) {
        match self {
            Self::Corrupt { quarantined, .. } | Self::Truncated { quarantined, .. } => {
                *quarantined = Some(to)
            }
            _ => {}
        }
    }
}

impl From<crate::lock_file::LockError> for FileStoreError {
    fn from(e: crate::lock_file::LockError) -> Self {
        use crate::lock_file::LockError;
        match e {
            LockError::Timeout { path, waited } => Self::LockTimeout { path, waited },
            LockError::Symlink { path } => Self::Symlink { path },
            LockError::Io { path, op, source } => Self::Io { path, op, source },
        }
    }
}

/// For the [`TokenStore`](reauth_core::TokenStore) trait: the kind is mapped, the
/// message kept, and the typed error stays reachable with
/// [`StoreError::downcast_ref`].
impl From<FileStoreError> for StoreError {
    fn from(e: FileStoreError) -> Self {
        let kind = match &e {
            FileStoreError::Corrupt { .. } | FileStoreError::Truncated { .. } => {
                StoreErrorKind::Corrupt
            }
            FileStoreError::FutureVersion { .. } => StoreErrorKind::NewerFormat,
            FileStoreError::LockTimeout { .. } => StoreErrorKind::LockTimeout,
            FileStoreError::Io { .. } | FileStoreError::Symlink { .. } => StoreErrorKind::Io,
        };
        StoreError::with_kind(kind, e.to_string()).with_source(e)
    }
}
