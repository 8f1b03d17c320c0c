//! [`KeyringStoreError`]: what can go wrong with a keyring entry. No message holds token
//! text: a platform error is reduced to its description, never the bytes it carries.

use crate::lock_file::LockError;
use reauth_core::{StoreError, StoreErrorKind};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A [`KeyringStore`](crate::KeyringStore) failed.
///
/// `entry` names the entry as `service "…", user "…"`. An unreadable entry
/// ([`Corrupt`](Self::Corrupt)) is copied aside and removed, never overwritten, and the
/// copy's user name is in [`quarantined`](Self::quarantined); a client then starts logged
/// out. A newer build's entry ([`FutureVersion`](Self::FutureVersion)) is left exactly as
/// it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringStoreError {
    /// The platform's credential store cannot be reached: none on this platform, locked
    /// (a keychain waiting for the user), access denied, or (Linux) no session keyring
    /// this process may write to.
    #[error("keyring entry {entry}: credential store unavailable: {reason}")]
    Unavailable {
        /// The entry.
        entry: String,
        /// What the platform said.
        reason: String,
    },
    /// The entry is not a valid token record: not JSON, a wrong or missing field, a token
    /// that could never be sent, an implausible expiry, a checksum mismatch, or bytes the
    /// platform store could not decode.
    #[error("keyring entry {entry}: corrupt: {reason}{}", aside(quarantined))]
    Corrupt {
        /// The entry.
        entry: String,
        /// What is wrong, without any token text.
        reason: String,
        /// The user name (same service) the bad entry was copied to, if it was.
        quarantined: Option<String>,
    },
    /// The entry was written by a newer reauth, in a format this build cannot read. It is
    /// read-only for this build: never moved aside or overwritten.
    #[error(
        "keyring entry {entry}: format version {found} is newer than this build reads \
         ({supported}); left as it is (read-only for this build)"
    )]
    FutureVersion {
        /// The entry.
        entry: String,
        /// The version in the entry.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// The record is larger than the platform stores in one entry (a Windows credential
    /// holds 2560 bytes; a Linux key 32767, within a per-user quota).
    #[error(
        "keyring entry {entry}: the record ({len} bytes) is too large for this store{}",
        limit_text(limit)
    )]
    TooLarge {
        /// The entry.
        entry: String,
        /// The encoded record's size.
        len: usize,
        /// The platform's limit, when it says.
        limit: Option<u32>,
    },
    /// The platform store refused or failed an operation.
    #[error("keyring entry {entry}: {op}: {reason}")]
    Platform {
        /// The entry.
        entry: String,
        /// What was being done.
        op: &'static str,
        /// What the platform said.
        reason: String,
    },
    /// Another process held the lock file past the deadline.
    #[error("lock {}: still held by another process after {waited:?}", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited: Duration,
    },
    /// The lock file is a symbolic link: refused, never followed.
    #[error("lock {}: is a symbolic link; refused (the lock must be a regular file)", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Opening, locking, reading or writing the lock file failed.
    #[error("lock {}: {op}: {source}", path.display())]
    LockFile {
        /// The lock file or its folder.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

fn aside(quarantined: &Option<String>) -> String {
    match quarantined {
        Some(user) => format!(" (kept aside as user \"{user}\")"),
        None => String::new(),
    }
}

fn limit_text(limit: &Option<u32>) -> String {
    match limit {
        Some(n) => format!(" (at most {n})"),
        None => String::new(),
    }
}

impl KeyringStoreError {
    /// The user name (same service) an unreadable entry was copied to, if it was.
    pub fn quarantined(&self) -> Option<&str> {
        match self {
            Self::Corrupt { quarantined, .. } => quarantined.as_deref(),
            _ => None,
        }
    }

    /// True for a damaged entry: it is set aside, and logging in again is the remedy,
    /// retrying is not. A newer build's entry is not damaged.
    pub fn is_unreadable(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }

    pub(crate) fn set_quarantined(&mut self, user: String) {
        if let Self::Corrupt { quarantined, .. } = self {
            *quarantined = Some(user);
        }
    }

    /// The platform's error as ours. Its payloads are never kept: `BadEncoding` and
    /// `BadDataFormat` carry the secret's bytes, `Ambiguous` carries entries.
    pub(crate) fn platform(entry: &str, op: &'static str, e: keyring_core::Error) -> Self {
        use keyring_core::Error as E;
        let entry = entry.to_owned();
        match e {
            E::NoStorageAccess(e) => Self::Unavailable {
                entry,
                reason: e.to_string(),
            },
            E::NoDefaultStore => Self::Unavailable {
                entry,
                reason: "no credential store".into(),
            },
            E::NotSupportedByStore(why) => Self::Unavailable { entry, reason: why },
            E::TooLong(_, limit) => Self::TooLarge {
                entry,
                len: 0,
                limit: Some(limit),
            },
            E::BadEncoding(_) | E::BadDataFormat(..) => Self::Corrupt {
                entry,
                reason: "the platform store could not decode the entry".into(),
                quarantined: None,
            },
            E::Ambiguous(found) => Self::Platform {
                entry,
                op,
                reason: format!("{} credentials match the entry", found.len()),
            },
            E::Invalid(what, why) => Self::Platform {
                entry,
                op,
                reason: format!("{what} refused: {why}"),
            },
            E::PlatformFailure(e) => Self::Platform {
                entry,
                op,
                reason: e.to_string(),
            },
            E::BadStoreFormat(why) => Self::Platform {
                entry,
                op,
                reason: format!("the store is malformed: {why}"),
            },
            E::NoEntry => Self::Platform {
                entry,
                op,
                reason: "no such entry".into(),
            },
            // A variant of a later keyring-core: its payload is unknown, so unshown.
            _ => Self::Platform {
                entry,
                op,
                reason: "the credential store failed".into(),
            },
        }
    }

    pub(crate) fn lock(e: LockError) -> Self {
        match e {
            LockError::Timeout { path, waited } => Self::LockTimeout { path, waited },
            LockError::Symlink { path } => Self::Symlink { path },
            LockError::Io { path, op, source } => Self::LockFile { path, op, source },
        }
    }
}

/// For the [`TokenStore`](reauth_core::TokenStore) trait: the kind is mapped, the
/// message kept, and the typed error stays reachable with
/// [`StoreError::downcast_ref`].
impl From<KeyringStoreError> for StoreError {
    fn from(e: KeyringStoreError) -> Self {
        let kind = match &e {
            KeyringStoreError::Corrupt { .. } => StoreErrorKind::Corrupt,
            KeyringStoreError::FutureVersion { .. } => StoreErrorKind::NewerFormat,
            KeyringStoreError::LockTimeout { .. } => StoreErrorKind::LockTimeout,
            _ => StoreErrorKind::Io,
        };
        StoreError::with_kind(kind, e.to_string()).with_source(e)
    }
}
