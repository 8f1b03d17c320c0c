//! One simulated process: a session, its requests, its parked store command, and what the
//! simulator knows about it to check it.

use crate::command::StoreCommand;
use crate::credential::Attempt;
use crate::ids::{Generation, StoreOpId, WaiterId};
use crate::machine::Session;
use crate::record::{LeaseId, Lineage, Record};
use std::collections::BTreeSet;
use std::time::Instant;

/// A store command the store has not answered yet.
#[derive(Debug)]
pub(crate) struct Parked {
    pub(crate) id: StoreOpId,
    pub(crate) op: StoreCommand,
    /// Answered by then at the latest, so that a delayed write never outlives a lease.
    pub(crate) due: Instant,
    /// Asked for by an episode the session has since abandoned (login, logout).
    pub(crate) stale: bool,
    /// A read on a change notification, outside any episode.
    pub(crate) check: bool,
}

/// A delivered refresh success whose write is under way.
#[derive(Debug)]
pub(crate) struct Saving {
    pub(crate) access: String,
    /// The refresh token the call rotated away, if it rotated.
    pub(crate) rotated: Option<String>,
    /// When the answer arrived: the tokens' age counts from here.
    pub(crate) delivered: Instant,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) session: Session,
    /// Grows at every restart; calls and ops of an older incarnation died with it.
    pub(crate) incarnation: u32,
    /// The login this process was given (by a login or by a restore), as the simulator
    /// saw it: the only lineage whose credentials it may send.
    pub(crate) lineage: Option<Lineage>,
    /// Between a logout of any cause and the next login.
    pub(crate) logged_out: bool,
    /// True while inside `logout`: the only place a `Requested` logout may come from.
    pub(crate) logging_out: bool,
    pub(crate) open: BTreeSet<WaiterId>,
    pub(crate) wire: Vec<Attempt>,
    pub(crate) parked: Option<Parked>,
    /// A store operation failed since the last lease was granted: single-flight holds
    /// within this process only.
    pub(crate) unfenced: bool,
    /// The lease the process was granted and has not released.
    pub(crate) lease: Option<LeaseId>,
    /// The last record a read or a conflict showed it (or its restore read).
    pub(crate) last_seen: Option<Record>,
    /// The last refresh answer it got refused the refresh token for good.
    pub(crate) refused: bool,
    pub(crate) saving: Option<Saving>,
    /// When its refresh calls started while the API refused every token of its lineage.
    pub(crate) refused_calls: Vec<Instant>,
    /// The current token's generation and arrival, if this process's own refresh got it.
    pub(crate) fresh: Option<(Generation, Instant)>,
    /// Own fresh tokens refused in a row, and the last generation counted.
    pub(crate) refused_run: u32,
    pub(crate) refused_generation: Option<Generation>,
    /// Another process wrote the record and the notification is on its way.
    pub(crate) notice: bool,
}

impl Node {
    pub(crate) fn new(session: Session, incarnation: u32) -> Self {
        Self {
            session,
            incarnation,
            lineage: None,
            logged_out: false,
            logging_out: false,
            open: BTreeSet::new(),
            wire: Vec::new(),
            parked: None,
            unfenced: false,
            lease: None,
            last_seen: None,
            refused: false,
            saving: None,
            refused_calls: Vec::new(),
            fresh: None,
            refused_run: 0,
            refused_generation: None,
            notice: false,
        }
    }
}
