//! The refresh calls on the wire: the server takes them, their answers come back, get
//! lost, or the driver gives up at the deadline.

use super::node::Saving;
use super::world::{timeout, Checked, World};
use crate::command::RefreshOutcome;
use crate::error::RefreshError;
use crate::ids::RefreshId;
use crate::token::RefreshToken;
use crate::token::TokenSet;
use std::time::Instant;

#[derive(Debug)]
pub(crate) enum CallState {
    /// Sent; the server has not seen it yet.
    Pending,
    /// The server answered (and rotated, if it did); the answer is on its way.
    Answered(Result<TokenSet, RefreshError>, Option<String>),
    /// The server answered, the answer was lost: the driver reports a timeout at the
    /// deadline.
    Lost,
    Done,
}

#[derive(Debug)]
pub(crate) struct Call {
    pub(super) node: usize,
    pub(super) incarnation: u32,
    pub(super) id: RefreshId,
    pub(super) token: String,
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    /// Started without a valid lease (the store failed): single-flight is per process.
    pub(super) unfenced: bool,
    /// Its session logged in, out, or crashed since: its outcome is not awaited.
    pub(super) abandoned: bool,
    pub(super) state: CallState,
}

impl World {
    pub(super) fn process(&mut self, c: usize) -> Checked {
        let now = self.now;
        let answer = self.server.refresh(&self.calls[c].token, now);
        let call = &self.calls[c];
        if answer.reuse {
            self.report.reuse_detections += 1;
            let excused = call.unfenced || self.rotations.get(&call.token).copied() == Some(true);
            ensure!(
                excused,
                "reuse-detection",
                "node {}'s {:?} presented a refresh token rotated by a call whose answer was \
                 not lost: the server revoked the login",
                call.node,
                call.id
            );
        }
        let excused = call.abandoned || call.unfenced;
        self.note(|| format!("server took call #{c}: {answer:?}"));
        let rotated = answer.rotated.map(|(_, old)| old);
        if let Some(old) = &rotated {
            self.report.rotations += 1;
            self.rotations.insert(old.clone(), excused);
        }
        self.calls[c].state = CallState::Answered(answer.outcome, rotated);
        Ok(())
    }

    pub(super) fn deliver(&mut self, c: usize) -> Checked {
        let CallState::Answered(outcome, rotated) =
            std::mem::replace(&mut self.calls[c].state, CallState::Done)
        else {
            return Ok(());
        };
        let call = &self.calls[c];
        let (n, id) = (call.node, call.id);
        if call.incarnation != self.nodes[n].incarnation {
            return Ok(());
        }
        let in_flight = self.nodes[n].session.refresh_in_flight() == Some(id);
        let late = self.now >= call.started + self.config.refresh_timeout;
        match &outcome {
            Ok(set) => {
                ensure!(
                    in_flight || call.abandoned,
                    "late-success",
                    "node {n}: the success of its refresh {id:?} (late: {late}) came while the \
                     session no longer awaited it"
                );
                if in_flight {
                    self.report.late_installed += u64::from(late);
                    self.nodes[n].saving = Some(Saving {
                        access: set.access_token().secret().to_owned(),
                        rotated,
                        delivered: self.now,
                    });
                } else {
                    self.excuse(rotated);
                }
            }
            Err(e) => {
                if in_flight && e.is_permanent() {
                    self.nodes[n].refused = true;
                }
            }
        }
        let outcome = match outcome {
            Ok(set) => RefreshOutcome::Success(set),
            Err(e) => RefreshOutcome::Failed(e),
        };
        self.nodes[n].session.handle_refresh(self.now, id, outcome);
        self.drain(n)?;
        Ok(())
    }

    /// The driver's deadline for call `c`: it aborts and reports a timeout.
    pub(super) fn expire_call(&mut self, c: usize) -> Checked {
        let state = std::mem::replace(&mut self.calls[c].state, CallState::Done);
        if let CallState::Answered(_, rotated) = state {
            self.excuse(rotated);
        }
        let (n, id) = (self.calls[c].node, self.calls[c].id);
        if self.calls[c].incarnation == self.nodes[n].incarnation {
            self.nodes[n]
                .session
                .handle_refresh(self.now, id, timeout());
            self.drain(n)?;
        }
        Ok(())
    }

    /// Calls the server has not seen, and answers not yet delivered.
    pub(crate) fn pending_calls(&self) -> Vec<usize> {
        self.calls_where(|s| matches!(s, CallState::Pending))
    }

    pub(crate) fn answered_calls(&self) -> Vec<usize> {
        self.calls_where(|s| matches!(s, CallState::Answered(..)))
    }

    pub(super) fn calls_where(&self, f: impl Fn(&CallState) -> bool) -> Vec<usize> {
        (0..self.calls.len())
            .filter(|&c| f(&self.calls[c].state))
            .collect()
    }

    /// The server takes call `c`; its answer comes back at once or later.
    pub(crate) fn server_step(&mut self, c: usize, deliver_now: bool) -> Checked {
        self.process(c)?;
        if deliver_now {
            self.deliver(c)?;
        }
        Ok(())
    }

    pub(crate) fn deliver_step(&mut self, c: usize) -> Checked {
        self.deliver(c)
    }

    /// The answer to call `c` is lost after the server rotated.
    pub(crate) fn lose(&mut self, c: usize) {
        if let CallState::Answered(_, rotated) =
            std::mem::replace(&mut self.calls[c].state, CallState::Lost)
        {
            self.report.lost_answers += 1;
            self.excuse(rotated);
        }
    }

    pub(super) fn started(
        &mut self,
        n: usize,
        id: RefreshId,
        refresh_token: Option<RefreshToken>,
        deadline: Instant,
    ) -> Checked {
        let now = self.now;
        let node = &self.nodes[n];
        ensure!(
            !node.logged_out,
            "nothing-after-logout",
            "node {n} started refresh {id:?} while logged out"
        );
        let Some(token) = refresh_token.map(|t| t.secret().to_owned()) else {
            return Err((
                "foreign-credential",
                format!("node {n}: a refresh without a token"),
            ));
        };
        let family = self.server.family_of_refresh(&token);
        let own = node
            .lineage
            .and_then(|l| self.lineage_family.get(&l).copied());
        ensure!(
            family.is_some() && family == own,
            "foreign-credential",
            "node {n} of family {own:?} presented a refresh token of family {family:?}"
        );
        let held = self
            .store
            .lease(now)
            .is_some_and(|h| h.node == n && Some(h.id) == node.lease);
        let fenced = held && !node.unfenced;
        ensure!(
            fenced || node.unfenced,
            "single-flight",
            "node {n} started refresh {id:?} without holding the lease, with the store up"
        );
        if fenced {
            if let Some(other) = self.calls.iter().find(|c| {
                c.token == token
                    && matches!(c.state, CallState::Pending)
                    && !c.unfenced
                    && !c.abandoned
            }) {
                return Err((
                    "single-flight",
                    format!(
                        "node {n} started refresh {id:?} presenting the refresh token that \
                         node {}'s {:?} presented, still in flight",
                        other.node, other.id
                    ),
                ));
            }
        }
        if let Some(f) = family.filter(|&f| self.server.refusing(f, now)) {
            let since = self.server.families[f].refusing_since;
            let node = &mut self.nodes[n];
            node.refused_calls.retain(|&at| at >= since);
            node.refused_calls.push(now);
            let calls = node.refused_calls.len() as u64;
            let allowed = self.hold_back_budget(now.saturating_duration_since(since));
            self.report.refused_burst = self.report.refused_burst.max(calls as usize);
            ensure!(
                calls <= allowed,
                "hold-back",
                "node {n} started {calls} refreshes in the {:?} since the API began refusing \
                 every token of family {f} (allowed: {allowed})",
                now.saturating_duration_since(since)
            );
        }
        self.report.refreshes += 1;
        self.calls.push(Call {
            node: n,
            incarnation: self.nodes[n].incarnation,
            id,
            token,
            started: now,
            deadline,
            unfenced: !fenced,
            abandoned: false,
            state: CallState::Pending,
        });
        if self.knobs.rotate_at_once {
            self.process(self.calls.len() - 1)?;
        }
        Ok(())
    }
}
