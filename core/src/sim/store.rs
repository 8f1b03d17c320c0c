//! The simulated store: one record, compare-and-swap, and one refresh lease whose time to
//! live runs on the simulation clock.

use crate::command::{StoreCommand, StoreOutcome, StoreReply};
use crate::record::{Entry, Lease, LeaseId, Lineage, Record, Swap};
use crate::store::StoreError;
use std::collections::BTreeSet;
use std::time::{Instant, SystemTime};

/// Who holds the lease, and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) id: LeaseId,
    pub(crate) until: Instant,
    /// The node that asked for it.
    pub(crate) node: usize,
}

#[derive(Debug, Default)]
pub(crate) struct SimStore {
    pub(crate) record: Option<Record>,
    lease: Option<Held>,
    leases: u128,
    /// Every lineage a tombstone was ever written for.
    pub(crate) tombstoned: BTreeSet<Lineage>,
    pub(crate) writes: u64,
}

/// A write the store took that must never happen.
pub(crate) struct Broken(pub(crate) &'static str, pub(crate) String);

impl SimStore {
    /// The lease, if still held at `now`.
    pub(crate) fn lease(&self, now: Instant) -> Option<Held> {
        self.lease.filter(|h| h.until > now)
    }

    /// Carries out `op` for `node` at `now`. A write that brings back the tokens of a
    /// tombstoned lineage is applied (the machine asked for it) and reported as broken.
    pub(crate) fn apply(
        &mut self,
        node: usize,
        op: &StoreCommand,
        now: Instant,
        wall: SystemTime,
    ) -> (StoreOutcome, Option<Broken>) {
        match op {
            StoreCommand::Read => (Ok(StoreReply::Read(self.record.clone())), None),
            StoreCommand::Lease { ttl, .. } => {
                if self.lease(now).is_some() {
                    return (Ok(StoreReply::Lease(Lease::Busy)), None);
                }
                self.leases += 1;
                let id = LeaseId(self.leases);
                let until = now.checked_add(*ttl).unwrap_or(now);
                self.lease = Some(Held { id, until, node });
                (Ok(StoreReply::Lease(Lease::Granted(id))), None)
            }
            StoreCommand::Release { lease, .. } => {
                if self.lease.is_some_and(|h| h.id == *lease) {
                    self.lease = None;
                }
                (Ok(StoreReply::Released), None)
            }
            StoreCommand::Write { expect, record } => {
                if !expect.admits(self.record.as_ref()) {
                    return (
                        Ok(StoreReply::Swap(Swap::Conflict(self.record.clone()))),
                        None,
                    );
                }
                let record = (**record).clone().saved(now, wall);
                let mut broken = None;
                if let Entry::Tokens(_) = record.entry {
                    if self.tombstoned.contains(&record.lineage) {
                        let was = self.record.as_ref().map(describe);
                        broken = Some(Broken(
                            "tombstone-sticks",
                            format!(
                                "node {node} wrote tokens of {:?} v{} over {was:?}, after that \
                                 lineage was logged out",
                                record.lineage, record.version
                            ),
                        ));
                    }
                } else {
                    self.tombstoned.insert(record.lineage);
                }
                self.writes += 1;
                self.record = Some(record);
                (Ok(StoreReply::Swap(Swap::Written)), broken)
            }
        }
    }

    /// What every failed operation answers while the store is away.
    pub(crate) fn failure() -> StoreError {
        StoreError::new("simulated outage")
    }
}

/// A record in one line, without secrets.
pub(crate) fn describe(record: &Record) -> String {
    match &record.entry {
        Entry::Tokens(_) => format!("tokens of {:?} v{}", record.lineage, record.version),
        Entry::LoggedOut(t) => format!(
            "tombstone of {:?} v{} ({t:?})",
            record.lineage, record.version
        ),
    }
}
