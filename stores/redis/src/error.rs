//! [`RedisStoreError`]: what can go wrong with a record in Redis. No message holds token
//! text or a password.

use reauth_core::{StoreError, StoreErrorKind};

/// A [`RedisStore`](crate::RedisStore) failed.
///
/// [`Unavailable`](Self::Unavailable) is transient (Redis is down, unreachable, slow or
/// restarting): the session goes on with the tokens it holds and refreshes on its own
/// until Redis is back. The others need a person: a server that refuses the commands
/// (authentication, a read-only replica, memory), or a record that is not one this build
/// can use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// No answer: the connection could not be made, broke, or the answer did not come
    /// within the response timeout.
    #[error("redis {addr}: {op}: unavailable: {source}")]
    Unavailable {
        /// The server's address (`host:port` or a socket path), never the password.
        addr: String,
        /// What was being done.
        op: &'static str,
        /// redis-rs's error.
        #[source]
        source: redis::RedisError,
    },
    /// The server answered with an error (authentication, a read-only replica, out of
    /// memory, scripting disabled, …).
    #[error("redis {addr}: {op}: refused by the server: {source}")]
    Refused {
        /// The server's address.
        addr: String,
        /// What was being done.
        op: &'static str,
        /// redis-rs's error.
        #[source]
        source: redis::RedisError,
    },
    /// The key holds something that is not a valid record: another type, a missing or
    /// unknown field, a token that could never be sent, an implausible time. A write
    /// renames it aside (the key with `:corrupt` appended) before it writes.
    #[error("redis key {key}: corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong, without any token text.
        reason: String,
    },
    /// The record was written by a newer reauth in a layout this build cannot read. It is
    /// read-only for this build: never renamed or overwritten.
    #[error(
        "redis key {key}: record format {found} is newer than this build reads \
         ({supported}); left as it is (read-only for this build)"
    )]
    NewerFormat {
        /// The record's key.
        key: String,
        /// The `format` field found.
        found: String,
        /// The newest format this build reads.
        supported: u64,
    },
}

impl RedisStoreError {
    /// True if trying again later may succeed: Redis was unreachable or slow.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    pub(crate) fn redis(addr: &str, op: &'static str, source: redis::RedisError) -> Self {
        let addr = addr.to_owned();
        if source.is_io_error() || source.is_timeout() || source.is_connection_dropped() {
            Self::Unavailable { addr, op, source }
        } else {
            Self::Refused { addr, op, source }
        }
    }
}

/// For the [`TokenStore`](reauth_core::TokenStore) trait: the kind is mapped (Redis away
/// is [`StoreErrorKind::Io`]), the message kept, and the typed error stays reachable with
/// [`StoreError::downcast_ref`].
impl From<RedisStoreError> for StoreError {
    fn from(e: RedisStoreError) -> Self {
        let kind = match &e {
            RedisStoreError::Unavailable { .. } => StoreErrorKind::Io,
            RedisStoreError::Refused { .. } => StoreErrorKind::Other,
            RedisStoreError::Corrupt { .. } => StoreErrorKind::Corrupt,
            RedisStoreError::NewerFormat { .. } => StoreErrorKind::NewerFormat,
        };
        StoreError::with_kind(kind, e.to_string()).with_source(e)
    }
}
