//! Carrying out a session's store commands on the simulated store, at once or parked,
//! failing now and then, and checking what the session does with each answer.

use super::model::{self, Seen};
use super::store::{describe, Broken, SimStore};
use super::world::{writes_tokens, Checked, World};
use crate::command::{StoreCommand, StoreReply};
use crate::ids::StoreOpId;
use crate::record::{Entry, Lease, Swap};
use crate::state::Phase;

impl World {
    pub(super) fn answer_store(
        &mut self,
        n: usize,
        id: StoreOpId,
        op: StoreCommand,
        stale: bool,
        check: bool,
    ) -> Checked<Seen> {
        let (now, wall) = (self.now, self.wall());
        let node = &self.nodes[n];
        let snap = node.session.snapshot();
        let episode = matches!(snap.phase, Phase::Refreshing | Phase::ValidRefreshing);
        let read = matches!(op, StoreCommand::Read) && !stale && episode && !check;
        // A notification's read that the session still acts on: no episode began since.
        let checked = matches!(op, StoreCommand::Read)
            && !stale
            && check
            && matches!(
                snap.phase,
                Phase::Valid | Phase::Backoff | Phase::Expired | Phase::Empty
            );
        let leased = self
            .store
            .lease(now)
            .is_some_and(|h| h.node == n && Some(h.id) == node.lease);
        let saving =
            writes_tokens(&op).is_some_and(|a| node.saving.as_ref().is_some_and(|s| s.access == a));
        let outcome = if self.knobs.store_failures && self.rng.chance(self.knobs.fail_percent) {
            self.report.store_failures += 1;
            Err(SimStore::failure())
        } else {
            let (outcome, broken) = self.store.apply(n, &op, now, wall);
            if let Some(Broken(rule, detail)) = broken {
                return Err((rule, detail));
            }
            if matches!(outcome, Ok(StoreReply::Swap(Swap::Written))) {
                self.notify_others(n);
            }
            outcome
        };
        self.note(|| format!("node {n} <- {outcome:?}"));
        let mut record = None;
        if outcome.is_err() {
            // Single-flight holds within this process only until the store answers again:
            // its calls may race with other processes' calls.
            self.unfence(n);
        }
        let node = &mut self.nodes[n];
        match &outcome {
            Err(_) => {}
            Ok(StoreReply::Lease(Lease::Granted(lease))) => {
                node.lease = Some(*lease);
                node.unfenced = false;
            }
            Ok(StoreReply::Read(r)) => {
                node.last_seen = r.clone();
                record = Some(r.clone());
            }
            Ok(StoreReply::Swap(Swap::Conflict(Some(r)))) => node.last_seen = Some(r.clone()),
            _ => {}
        }
        let written = matches!(outcome, Err(_) | Ok(StoreReply::Swap(Swap::Written)));
        if saving && !written {
            // Another writer won: this rotation's tokens are not the store's.
            let rotated = node.saving.take().and_then(|s| s.rotated);
            self.excuse(rotated);
        } else if saving && outcome.is_err() {
            // The tokens live on in this process only.
            let rotated = node.saving.as_ref().and_then(|s| s.rotated.clone());
            self.excuse(rotated);
        }
        let prediction = record
            .as_ref()
            .filter(|_| read && leased)
            .map(|r| model::predict(r.as_ref(), snap.lineage, snap.version, wall));
        if let (true, Phase::Empty, Some(Some(r))) = (checked, snap.phase, &record) {
            // A session that never had tokens takes up the record it reads.
            self.nodes[n].lineage = Some(r.lineage);
        }
        self.nodes[n].session.handle_store(now, wall, id, outcome);
        let seen = self.drain(n)?;
        if let Some(Some(r)) = record.as_ref().filter(|_| read || checked) {
            if Some(r.lineage) == snap.lineage && matches!(r.entry, Entry::LoggedOut(_)) {
                ensure!(
                    self.nodes[n].session.phase() == Phase::LoggedOut,
                    "tombstone-seen",
                    "node {n} read {} and is {:?}",
                    describe(r),
                    self.nodes[n].session.phase()
                );
            }
        }
        if let Some(next) = prediction {
            self.report.predictions += 1;
            ensure!(
                seen.matches(next),
                "model-episode",
                "node {n} (at v{:?}) read {:?} under the lease: the model says {next:?}, the \
                 session did {seen:?}",
                snap.version,
                record.flatten().as_ref().map(describe)
            );
        }
        if saving && written {
            self.nodes[n].saving = None;
            ensure!(
                seen.refreshed,
                "late-success",
                "node {n}: the write of its refreshed tokens landed, but they were not installed"
            );
        }
        Ok(seen)
    }

    /// A write landed: every other process gets a notification, unless it is lost.
    fn notify_others(&mut self, writer: usize) {
        let Some(loss) = self.knobs.notice_loss else {
            return;
        };
        for m in (0..self.nodes.len()).filter(|&m| m != writer) {
            if self.rng.chance(loss) {
                self.report.notices_lost += 1;
            } else {
                self.nodes[m].notice = true;
            }
        }
    }

    pub(super) fn deliver_parked(&mut self, n: usize) -> Checked {
        if let Some(p) = self.nodes[n].parked.take() {
            self.answer_store(n, p.id, p.op, p.stale, p.check)?;
        }
        Ok(())
    }
}
