//! The session record: what a store holds, shared by every process and machine that uses
//! the same session. See the [crate docs](crate#the-persistence-protocol) for the protocol.

use crate::token::{SavedTokens, StoredTokens};
use std::fmt;

/// One login's identity: made at login, kept through every rotation of that login. Another
/// user, or a new login of the same user, is another lineage. Tokens are adopted only
/// within a lineage.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lineage(u128);

impl Lineage {
    /// A lineage from its number (as a store keeps it).
    pub const fn from_u128(n: u128) -> Self {
        Self(n)
    }

    /// The lineage's number.
    pub const fn get(self) -> u128 {
        self.0
    }

    /// Parses the 32 lowercase hex digits [`Display`](fmt::Display) writes.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(Self)
    }
}

impl fmt::Display for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first digits tell lineages apart in logs; it is not a secret anyway.
        write!(f, "Lineage({:08x}…)", (self.0 >> 96) as u32)
    }
}

/// A versioned session record. `T` is how the tokens are written: [`SavedTokens`] (wall
/// clock) in a store, [`StoredTokens`] (the caller's `Instant` clock) in a
/// [`StoreCommand`](crate::StoreCommand) the session emits.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record<T = SavedTokens> {
    /// The login this record belongs to.
    pub lineage: Lineage,
    /// Grows with every write; the fence of every compare-and-swap.
    pub version: u64,
    /// The tokens, or the tombstone of a logout.
    pub entry: Entry<T>,
}

/// What a record holds.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Entry<T = SavedTokens> {
    /// The current tokens of the lineage.
    Tokens(T),
    /// The lineage is logged out: no process may use or bring back its tokens.
    LoggedOut(Tombstone),
}

impl<T> Record<T> {
    /// The same record with its tokens converted.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Record<U> {
        Record {
            lineage: self.lineage,
            version: self.version,
            entry: match self.entry {
                Entry::Tokens(t) => Entry::Tokens(f(t)),
                Entry::LoggedOut(t) => Entry::LoggedOut(t),
            },
        }
    }

    /// The tokens, unless this is a tombstone.
    pub fn tokens(&self) -> Option<&T> {
        match &self.entry {
            Entry::Tokens(t) => Some(t),
            Entry::LoggedOut(_) => None,
        }
    }
}

impl Record<StoredTokens> {
    /// The record as a store keeps it: expiry in wall-clock time. `now` and `wall` are the
    /// same moment on both clocks.
    pub fn saved(self, now: std::time::Instant, wall: std::time::SystemTime) -> Record {
        self.map(|t| SavedTokens::from_stored(&t, now, wall))
    }
}

/// Why a lineage was logged out, as a store keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Tombstone {
    /// An application called `logout`.
    Requested,
    /// The token endpoint refused the refresh token for good (`invalid_grant`, …).
    RefreshRejected,
    /// The access token expired and there was no refresh token.
    NoRefreshToken,
    /// Transient failures exhausted the attempts, configured to log out.
    AttemptsExhausted,
}

impl Tombstone {
    /// The name a store writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Tombstone::Requested => "requested",
            Tombstone::RefreshRejected => "refresh_rejected",
            Tombstone::NoRefreshToken => "no_refresh_token",
            Tombstone::AttemptsExhausted => "attempts_exhausted",
        }
    }

    /// Reads a name [`as_str`](Self::as_str) wrote. An unknown name (a newer build's) is
    /// still a logout: `Requested`.
    pub fn parse(name: &str) -> Self {
        match name {
            "refresh_rejected" => Tombstone::RefreshRejected,
            "no_refresh_token" => Tombstone::NoRefreshToken,
            "attempts_exhausted" => Tombstone::AttemptsExhausted,
            _ => Tombstone::Requested,
        }
    }
}

impl fmt::Display for Tombstone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tombstone::Requested => "logout was requested",
            Tombstone::RefreshRejected => "the refresh was rejected",
            Tombstone::NoRefreshToken => "the access token expired without a refresh token",
            Tombstone::AttemptsExhausted => "refresh attempts were exhausted",
        })
    }
}

/// What a compare-and-swap expects to replace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// The store holds no record.
    Absent,
    /// The store holds this lineage's record at this version.
    Version(Lineage, u64),
    /// Whatever the store holds (a login replaces any record).
    Any,
}

impl Expect {
    /// True if a store holding `current` satisfies this.
    pub fn admits<T>(self, current: Option<&Record<T>>) -> bool {
        match self {
            Expect::Absent => current.is_none(),
            Expect::Version(l, v) => current.is_some_and(|r| r.lineage == l && r.version == v),
            Expect::Any => true,
        }
    }
}

/// A compare-and-swap's result.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Swap {
    /// The record was written.
    Written,
    /// The store held something else: this, which was left as it is.
    Conflict(Option<Record>),
}

/// Names one lease, issued by the store that granted it. Only its holder can release it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LeaseId(pub u128);

/// The answer to a lease request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lease {
    /// The lease is held by the caller until released or until its time to live passes.
    Granted(LeaseId),
    /// Another holder has it.
    Busy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_round_trips_as_hex() {
        let l = Lineage::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let text = l.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(Lineage::parse(&text), Some(l));
        assert_eq!(Lineage::parse("xyz"), None);
        assert_eq!(Lineage::parse(&"g".repeat(32)), None);
        for t in [
            Tombstone::Requested,
            Tombstone::RefreshRejected,
            Tombstone::NoRefreshToken,
            Tombstone::AttemptsExhausted,
        ] {
            assert_eq!(Tombstone::parse(t.as_str()), t);
        }
        assert_eq!(Tombstone::parse("from_the_future"), Tombstone::Requested);
        let at = |version| Record {
            lineage: l,
            version,
            entry: Entry::<()>::LoggedOut(Tombstone::Requested),
        };
        let other = Lineage::from_u128(9);
        assert!(Expect::Absent.admits::<()>(None) && !Expect::Absent.admits(Some(&at(1))));
        assert!(Expect::Version(l, 2).admits(Some(&at(2))));
        assert!(!Expect::Version(l, 2).admits::<()>(None));
        assert!(!Expect::Version(other, 2).admits(Some(&at(2))));
        assert!(Expect::Any.admits::<()>(None) && Expect::Any.admits(Some(&at(9))));
    }
}
