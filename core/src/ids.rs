//! Opaque identifiers issued by the session. Counters only grow, so an answer about an
//! old refresh or an already-resolved waiter is recognised and ignored.

use std::fmt;

/// Names one queued request. Issued by the session; resolved exactly once by a
/// [`Command::Resume`](crate::Command::Resume) or [`Command::Fail`](crate::Command::Fail),
/// unless the caller cancels it first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId(pub(crate) u64);

/// Names one refresh attempt. The outcome must be reported with the same id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefreshId(pub(crate) u64);

/// Names one store operation. The outcome must be reported with the same id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreOpId(pub(crate) u64);

/// The generation of the access token a credential belongs to. It grows with every login
/// and every successful refresh, which is how a stale 401 (sent with an older token) is
/// told apart from a fresh one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub(crate) u64);

impl Generation {
    /// The generation number, for logs and metrics.
    pub fn get(self) -> u64 {
        self.0
    }
}

macro_rules! show_id {
    ($name:ident, $prefix:literal) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}
show_id!(WaiterId, "w");
show_id!(RefreshId, "r");
show_id!(Generation, "g");
show_id!(StoreOpId, "s");
