//! What the schedule does to the world: the application's calls (login, logout,
//! requests), the API's answers, crashes, and the server's own moves.

use super::calls::CallState;
use super::node::Node;
use super::store::Broken;
use super::world::{bearer, Checked, World, MS};
use crate::command::{Admission, Verdict};
use crate::error::Error;
use crate::record::Record;
use crate::state::Phase;
use http::{HeaderMap, HeaderValue, StatusCode};

impl World {
    pub(crate) fn login(&mut self, n: usize) -> Checked {
        let (family, set) = self.server.login(self.now);
        self.abandon(n);
        let node = &mut self.nodes[n];
        node.logged_out = false;
        node.refused = false;
        node.refused_calls.clear();
        node.fresh = None;
        node.session.login(self.now, set);
        let Some(lineage) = node.session.snapshot().lineage else {
            return Err(("lineage", format!("node {n}: a login made no lineage")));
        };
        node.lineage = Some(lineage);
        self.lineage_family.insert(lineage, family);
        self.report.logins += 1;
        self.drain(n).map(drop)
    }

    pub(crate) fn logout(&mut self, n: usize) -> Checked {
        self.nodes[n].logging_out = true;
        self.nodes[n].session.logout(self.now);
        let r = self.drain(n);
        self.nodes[n].logging_out = false;
        r.map(drop)
    }

    pub(crate) fn begin(&mut self, n: usize, count: u64) -> Checked {
        for _ in 0..count {
            let api = self.api.clone();
            match self.nodes[n].session.begin_request(self.now, &api) {
                Admission::Send(a) => {
                    self.check_sent(n, &a, "a new request")?;
                    self.nodes[n].wire.push(a);
                }
                Admission::Wait(w) => {
                    ensure!(
                        self.nodes[n].open.insert(w),
                        "waiter-resolved",
                        "node {n}: {w:?} issued twice"
                    );
                }
                Admission::Reject(_) => self.report.requests_failed += 1,
                Admission::Anonymous => {
                    return Err(("origin-allow-list", format!("node {n}: the API refused")))
                }
            }
            self.drain(n)?;
        }
        Ok(())
    }

    /// Answers request `k` on node `n`'s wire with what the API says about its token.
    pub(crate) fn respond(&mut self, n: usize, k: usize) -> Checked {
        let attempt = self.nodes[n].wire.swap_remove(k);
        let accepted = self.server.accepts(&bearer(&attempt), self.now);
        let mut headers = HeaderMap::new();
        let status = if accepted {
            StatusCode::OK
        } else {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            StatusCode::UNAUTHORIZED
        };
        let session = &mut self.nodes[n].session;
        let before = session.generation();
        let phase = session.phase();
        let verdict = session.handle_response(self.now, &attempt, status, &headers, true);
        // A refusal counts against the current token only while the session holds one
        // (after a logout the generation stays, the token is gone).
        let holds_token = !matches!(phase, Phase::LoggedOut | Phase::Empty);
        if !accepted && attempt.generation() == before && holds_token {
            self.refused(n, before, phase)?;
        }
        match verdict {
            Verdict::Done => self.report.requests_ok += u64::from(accepted),
            Verdict::Replay(a) => {
                ensure!(
                    a.generation() > attempt.generation(),
                    "stale-401",
                    "node {n} replayed with the same generation {:?}",
                    a.generation()
                );
                self.check_sent(n, &a, "a replay")?;
                self.nodes[n].wire.push(a);
            }
            Verdict::Wait(w) => {
                ensure!(
                    self.nodes[n].open.insert(w),
                    "waiter-resolved",
                    "node {n}: {w:?} issued twice"
                );
            }
            Verdict::Fail(e) => {
                ensure!(
                    e != Error::Unauthorized || attempt.generation() >= before,
                    "replay-generation",
                    "node {n}: a request sent with {:?} got 401 and failed Unauthorized while \
                     the session holds the newer {before:?}",
                    attempt.generation()
                );
                self.report.requests_failed += 1;
            }
        }
        self.drain(n).map(drop)
    }

    /// The application learns outside HTTP (a websocket, a queue) what the API thinks of
    /// the token of request `k` on node `n`'s wire, and reports a refusal with that
    /// token's generation, which may be stale by now. The request stays on the wire.
    pub(crate) fn invalidate(&mut self, n: usize, k: usize) -> Checked {
        let attempt = self.nodes[n].wire[k].clone();
        if self.server.accepts(&bearer(&attempt), self.now) {
            return Ok(());
        }
        let session = &mut self.nodes[n].session;
        let before = session.generation();
        let phase = session.phase();
        session.invalidate(self.now, attempt.generation());
        if attempt.generation() == before && !matches!(phase, Phase::LoggedOut | Phase::Empty) {
            // Counted as a refusal of the current token, as a 401 would be.
            self.refused(n, before, phase)?;
        }
        self.drain(n).map(drop)
    }

    /// Node `n` gets the notification of another process's write, however late.
    pub(crate) fn notice(&mut self, n: usize) -> Checked {
        self.nodes[n].notice = false;
        self.report.notices += 1;
        self.nodes[n].session.handle_changed(self.now);
        self.drain(n).map(drop)
    }

    pub(crate) fn has_notice(&self, n: usize) -> bool {
        self.nodes[n].notice
    }

    /// The process dies: its memory goes, its lease stays until it expires, a store
    /// command or refresh call it had sent may or may not have arrived. Then it starts
    /// again from what the store holds.
    pub(crate) fn crash(&mut self, n: usize) -> Checked {
        self.report.crashes += 1;
        self.restart(n)
    }

    /// A logged-out process starts a new client on what the store holds (another
    /// process's login, say).
    pub(crate) fn reopen(&mut self, n: usize) -> Checked {
        self.report.reopened += 1;
        self.restart(n)
    }

    /// Process `n` starts afresh from what the store holds, whatever it had before.
    pub(crate) fn restart(&mut self, n: usize) -> Checked {
        let (now, wall) = (self.now, self.wall());
        if let Some(p) = self.nodes[n].parked.take() {
            if self.rng.chance(50) {
                if let (_, Some(Broken(rule, detail))) = self.store.apply(n, &p.op, now, wall) {
                    return Err((rule, detail));
                }
            }
        }
        let incarnation = self.nodes[n].incarnation;
        for c in 0..self.calls.len() {
            let call = &self.calls[c];
            if call.node != n || call.incarnation != incarnation {
                continue;
            }
            self.calls[c].abandoned = true;
            if matches!(self.calls[c].state, CallState::Pending) && self.rng.chance(50) {
                self.process(c)?;
            }
            if let CallState::Answered(_, rotated) =
                std::mem::replace(&mut self.calls[c].state, CallState::Done)
            {
                self.excuse(rotated);
            }
            self.calls[c].state = CallState::Done;
        }
        if let Some(s) = self.nodes[n].saving.take() {
            self.excuse(s.rotated);
        }
        let session = self.fresh_session();
        let mut node = Node::new(session, incarnation + 1);
        let record: Option<Record> = self.store.record.clone();
        node.lineage = record.as_ref().map(|r| r.lineage);
        node.last_seen = record.clone();
        node.session.restore(now, wall, record);
        self.nodes[n] = node;
        self.drain(n).map(drop)
    }

    pub(crate) fn revoke_access(&mut self, f: usize) {
        self.server.revoke_access(f);
    }

    pub(crate) fn revoke_family(&mut self, f: usize) {
        self.server.revoke_family(f);
    }

    pub(crate) fn refuse(&mut self, f: usize, for_ms: u64) {
        self.server.refuse(f, self.now, MS * for_ms as u32);
    }

    pub(crate) fn families(&self) -> usize {
        self.server.families.len()
    }

    pub(crate) fn refusing(&self) -> bool {
        (0..self.families()).any(|f| self.server.refusing(f, self.now))
    }

    pub(crate) fn wire(&self, n: usize) -> usize {
        self.nodes[n].wire.len()
    }

    /// Logged out, or never logged in: the process shows its login screen.
    pub(crate) fn is_idle(&self, n: usize) -> bool {
        self.nodes[n].logged_out || self.nodes[n].session.phase() == Phase::Empty
    }

    pub(crate) fn has_parked(&self, n: usize) -> bool {
        self.nodes[n].parked.is_some()
    }

    pub(crate) fn store_step(&mut self, n: usize) -> Checked {
        self.deliver_parked(n)
    }
}
