//! The reference model: what a refresh episode must do with the record it read under the
//! lease, predicted from the record and what the session knew, without the machine's code.

use crate::error::LogoutReason;
use crate::record::{Entry, Lineage, Record};
use std::time::SystemTime;

/// What an episode does after its leased read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Calls the token endpoint.
    Call,
    /// Takes the newer tokens another process wrote.
    Adopt,
    /// The lineage was logged out in the store.
    LoggedOutElsewhere,
    /// Another login owns the store.
    Superseded,
}

/// The prediction for a session of `lineage` whose tokens match record `version`, reading
/// `record` at wall time `wall`.
pub(crate) fn predict(
    record: Option<&Record>,
    lineage: Option<Lineage>,
    version: Option<u64>,
    wall: SystemTime,
) -> Next {
    let Some(record) = record else {
        return Next::Call;
    };
    if Some(record.lineage) != lineage {
        return Next::Superseded;
    }
    match &record.entry {
        Entry::LoggedOut(_) => Next::LoggedOutElsewhere,
        Entry::Tokens(_) if Some(record.version) == version => Next::Call,
        // Newer tokens are taken if they can still be sent; expired ones are refreshed.
        Entry::Tokens(t) if t.expires_at.is_none_or(|at| at > wall) => Next::Adopt,
        Entry::Tokens(_) => Next::Call,
    }
}

/// What the session was seen doing after the read.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    pub(crate) started: bool,
    pub(crate) adopted: bool,
    pub(crate) refreshed: bool,
    pub(crate) logged_out: Option<LogoutReason>,
}

impl Seen {
    pub(crate) fn merge(&mut self, other: Seen) {
        self.started |= other.started;
        self.adopted |= other.adopted;
        self.refreshed |= other.refreshed;
        if other.logged_out.is_some() {
            self.logged_out = other.logged_out;
        }
    }

    /// True if what was seen is what `next` predicts.
    pub(crate) fn matches(&self, next: Next) -> bool {
        match next {
            Next::Call => self.started && !self.adopted && self.logged_out.is_none(),
            Next::Adopt => self.adopted && !self.started && self.logged_out.is_none(),
            Next::LoggedOutElsewhere => {
                !self.started && matches!(self.logged_out, Some(LogoutReason::Elsewhere(_)))
            }
            Next::Superseded => {
                !self.started && matches!(self.logged_out, Some(LogoutReason::Superseded))
            }
        }
    }
}
