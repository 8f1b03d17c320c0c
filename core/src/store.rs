//! Where the session record lives between runs and between processes: the primitives a
//! store backend implements, and an in-memory store. The file store (real I/O) lives in the
//! `reauth` facade crate.
//!
//! A backend implements only primitives: read the record, compare-and-swap it at a
//! version, take and release the refresh lease. Every decision (when to lease, what to
//! adopt, what to write) is the session's: it asks for each operation with a
//! [`StoreCommand`](crate::StoreCommand) and takes the outcome back with
//! [`Session::handle_store`](crate::Session::handle_store).

use crate::record::{Expect, Lease, LeaseId, Lineage, Record, Swap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What kind of failure a [`StoreError`] is, so callers can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Reading or writing failed (permissions, disk full, a missing folder, …).
    Io,
    /// The stored data is unreadable: corrupt, truncated or altered. The session starts
    /// logged out; the store keeps the bad data aside.
    Corrupt,
    /// The record was written by a newer build in a format this one does not know. It is
    /// read-only for this build: never moved aside or overwritten.
    NewerFormat,
    /// Another process held the store's short write lock past the deadline.
    LockTimeout,
    /// Anything else.
    Other,
}

/// A store failed. The message never holds token text. The store's own typed error, if
/// it has one, is the [`source`](std::error::Error::source) (downcast it for details).
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error of kind [`StoreErrorKind::Other`] with a human-readable message.
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_kind(StoreErrorKind::Other, message)
    }

    /// An error of a given kind with a human-readable message.
    pub fn with_kind(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the store's own error, kept as the [`source`](std::error::Error::source).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message, without the `token store:` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The store's own error as type `E`, if it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_deref().and_then(|e| e.downcast_ref::<E>())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token store: {}", self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Two errors are equal if their kind and message are (the source is not compared).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for StoreError {}

/// Keeps the session record. Calls are short; whether they block is the backend's
/// business (adapters run them off the request path, one at a time per session, in the
/// order the session asked).
pub trait TokenStore: Send + Sync {
    /// The record, if any.
    fn read(&self) -> Result<Option<Record>, StoreError>;

    /// Writes `record` if the store's current record satisfies `expect`; otherwise leaves
    /// the store as it is and returns what it holds. Must be atomic against every other
    /// writer of the same store (other processes and machines included).
    fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError>;

    /// Takes the refresh lease of `lineage` for at most `ttl`, unless someone else holds it.
    /// A lease whose time to live has passed is free again; the record's version, checked
    /// by every compare-and-swap, keeps a holder that overran it from overwriting newer
    /// tokens.
    fn lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, StoreError>;

    /// Gives the lease back early. Releasing a lease that expired or was taken over does
    /// nothing.
    fn release(&self, lineage: Lineage, lease: LeaseId) -> Result<(), StoreError>;

    /// Asks the store to call `changed` whenever another writer may have changed the
    /// record (a Redis store's pub/sub, say), for as long as the store lives. Adapters
    /// call it once, before their start-up [`read`](Self::read) (so a store that returns
    /// from `watch` already listening misses no write in between), and turn each call into
    /// [`Session::handle_changed`](crate::Session::handle_changed). A notification may
    /// come late, twice or never: it only makes the session re-read sooner, so a store
    /// may drop them under load. Returns false if the store cannot tell, which is the
    /// default: sessions then see other writers' changes at their next refresh.
    fn watch(&self, changed: Changed) -> bool {
        let _ = changed;
        false
    }

    /// True if the operations may block (I/O, a lock held by another process): adapters
    /// on an async runtime then run them on a blocking thread. False for a store that
    /// only takes a short in-memory lock, such as [`MemoryStore`], whose operations are
    /// cheaper inline than handed to a thread. The default is true.
    fn may_block(&self) -> bool {
        true
    }

    /// The same operations as futures, if the store has an async client for its I/O
    /// (Redis on a tokio connection). The async adapters then await them on their runtime
    /// instead of calling the blocking ones on a blocking thread; the blocking ones stay
    /// for the start-up read, for calls made outside a runtime, and for the blocking
    /// adapter. The default is none.
    fn as_async(&self) -> Option<&dyn AsyncTokenStore> {
        None
    }
}

/// What [`TokenStore::watch`] calls when the record may have changed.
pub type Changed = Arc<dyn Fn() + Send + Sync>;

/// What an [`AsyncTokenStore`] operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The primitives of a [`TokenStore`] as futures, offered through
/// [`TokenStore::as_async`]. Each means exactly what its blocking twin means, and must
/// end: bound it by the store's own timeouts, as the blocking ones are. The session never
/// sees which of the two ran.
///
/// ```
/// use reauth_core::{
///     AsyncTokenStore, Expect, Lease, LeaseId, Lineage, MemoryStore, Record, StoreError,
///     StoreFuture, Swap, TokenStore,
/// };
/// use std::time::Duration;
///
/// /// Stands for a store with an async client; here the memory store's answers.
/// #[derive(Default)]
/// struct Awaited(MemoryStore);
///
/// impl AsyncTokenStore for Awaited {
///     fn read(&self) -> StoreFuture<'_, Option<Record>> {
///         Box::pin(async move { self.0.read() })
///     }
///     fn compare_and_swap<'a>(&'a self, expect: Expect, record: &'a Record) -> StoreFuture<'a, Swap> {
///         Box::pin(async move { self.0.compare_and_swap(expect, record) })
///     }
///     fn lease(&self, lineage: Lineage, ttl: Duration) -> StoreFuture<'_, Lease> {
///         Box::pin(async move { self.0.lease(lineage, ttl) })
///     }
///     fn release(&self, lineage: Lineage, lease: LeaseId) -> StoreFuture<'_, ()> {
///         Box::pin(async move { self.0.release(lineage, lease) })
///     }
/// }
///
/// impl TokenStore for Awaited {
///     fn read(&self) -> Result<Option<Record>, StoreError> { self.0.read() }
///     fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError> {
///         self.0.compare_and_swap(expect, record)
///     }
///     fn lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, StoreError> {
///         self.0.lease(lineage, ttl)
///     }
///     fn release(&self, lineage: Lineage, lease: LeaseId) -> Result<(), StoreError> {
///         self.0.release(lineage, lease)
///     }
///     fn as_async(&self) -> Option<&dyn AsyncTokenStore> {
///         Some(self)
///     }
/// }
/// # assert!(Awaited::default().as_async().is_some());
/// ```
pub trait AsyncTokenStore: Send + Sync {
    /// [`TokenStore::read`], awaited.
    fn read(&self) -> StoreFuture<'_, Option<Record>>;

    /// [`TokenStore::compare_and_swap`], awaited.
    fn compare_and_swap<'a>(&'a self, expect: Expect, record: &'a Record) -> StoreFuture<'a, Swap>;

    /// [`TokenStore::lease`], awaited.
    fn lease(&self, lineage: Lineage, ttl: Duration) -> StoreFuture<'_, Lease>;

    /// [`TokenStore::release`], awaited.
    fn release(&self, lineage: Lineage, lease: LeaseId) -> StoreFuture<'_, ()>;
}

/// A shared store is a store: keep an `Arc` to inspect it while a client uses it.
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn read(&self) -> Result<Option<Record>, StoreError> {
        (**self).read()
    }

    fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError> {
        (**self).compare_and_swap(expect, record)
    }

    fn lease(&self, lineage: Lineage, ttl: Duration) -> Result<Lease, StoreError> {
        (**self).lease(lineage, ttl)
    }

    fn release(&self, lineage: Lineage, lease: LeaseId) -> Result<(), StoreError> {
        (**self).release(lineage, lease)
    }

    fn watch(&self, changed: Changed) -> bool {
        (**self).watch(changed)
    }

    fn may_block(&self) -> bool {
        (**self).may_block()
    }

    fn as_async(&self) -> Option<&dyn AsyncTokenStore> {
        (**self).as_async()
    }
}

/// Keeps the record in memory only: the default. Sessions of one process may share one
/// (through an `Arc`). Its lease has no clock: it is held until released, which every
/// adapter does when the refresh ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    record: Option<Record>,
    lease: Option<LeaseId>,
    leases: u128,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // Every critical section assigns whole values: recover the slot after a panic.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TokenStore for MemoryStore {
    fn read(&self) -> Result<Option<Record>, StoreError> {
        Ok(self.slot().record.clone())
    }

    fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError> {
        let mut slot = self.slot();
        if !expect.admits(slot.record.as_ref()) {
            return Ok(Swap::Conflict(slot.record.clone()));
        }
        slot.record = Some(record.clone());
        Ok(Swap::Written)
    }

    fn lease(&self, _: Lineage, _: Duration) -> Result<Lease, StoreError> {
        let mut slot = self.slot();
        if slot.lease.is_some() {
            return Ok(Lease::Busy);
        }
        slot.leases += 1;
        let id = LeaseId(slot.leases);
        slot.lease = Some(id);
        Ok(Lease::Granted(id))
    }

    fn release(&self, _: Lineage, lease: LeaseId) -> Result<(), StoreError> {
        let mut slot = self.slot();
        if slot.lease == Some(lease) {
            slot.lease = None;
        }
        Ok(())
    }

    fn may_block(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Entry;
    use crate::token::{AccessToken, SavedTokens};

    #[test]
    fn memory_store_swaps_at_the_expected_version_and_leases_once() {
        let store = MemoryStore::new();
        let lineage = Lineage::from_u128(7);
        let record = |version| Record {
            lineage,
            version,
            entry: Entry::Tokens(SavedTokens {
                access_token: AccessToken::new("a").unwrap(),
                refresh_token: None,
                expires_at: None,
                scope: None,
            }),
        };
        assert_eq!(store.read().unwrap(), None);
        assert_eq!(
            store
                .compare_and_swap(Expect::Version(lineage, 1), &record(2))
                .unwrap(),
            Swap::Conflict(None)
        );
        assert_eq!(
            store.compare_and_swap(Expect::Absent, &record(1)).unwrap(),
            Swap::Written
        );
        assert_eq!(
            store.compare_and_swap(Expect::Absent, &record(2)).unwrap(),
            Swap::Conflict(Some(record(1)))
        );
        assert_eq!(
            store
                .compare_and_swap(Expect::Version(lineage, 1), &record(2))
                .unwrap(),
            Swap::Written
        );
        let Lease::Granted(first) = store.lease(lineage, Duration::from_secs(1)).unwrap() else {
            panic!()
        };
        assert_eq!(
            store.lease(lineage, Duration::from_secs(1)).unwrap(),
            Lease::Busy
        );
        store.release(lineage, LeaseId(first.0 + 1)).unwrap();
        assert_eq!(
            store.lease(lineage, Duration::from_secs(1)).unwrap(),
            Lease::Busy
        );
        store.release(lineage, first).unwrap();
        assert!(matches!(
            store.lease(lineage, Duration::from_secs(1)).unwrap(),
            Lease::Granted(_)
        ));
    }
}
