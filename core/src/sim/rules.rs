//! The checks that need more than one line: the credentials a process sends, the causes
//! of a logout, the hold-back of refused fresh tokens, and the model's end state.

use super::store::describe;
use super::world::{bearer, Checked, World};
use crate::credential::Attempt;
use crate::error::LogoutReason;
use crate::ids::Generation;
use crate::record::{Entry, Record};
use crate::state::Phase;
use std::time::Duration;

impl World {
    /// Refreshes one process may start within `t` of the API starting to refuse every
    /// token: two at once, then waits that double from half the backoff base up to half
    /// the cap, with slack for a token adopted or logged in meanwhile.
    pub(super) fn hold_back_budget(&self, t: Duration) -> u64 {
        let b = &self.config.backoff;
        let ramp = (1.0 + 2.0 * t.as_secs_f64() / b.base.as_secs_f64())
            .log2()
            .ceil();
        let capped = (2.0 * t.as_secs_f64() / b.cap.as_secs_f64()).ceil();
        4 + ramp as u64 + capped as u64
    }

    /// Rules 4 and 8: only credentials of the process's own login, never after a logout.
    pub(super) fn check_sent(&self, n: usize, attempt: &Attempt, what: &str) -> Checked {
        let node = &self.nodes[n];
        ensure!(
            !node.logged_out,
            "nothing-after-logout",
            "node {n}: {what} carried a credential after the session logged out"
        );
        let family = self.server.family_of_access(&bearer(attempt));
        let own = node
            .lineage
            .and_then(|l| self.lineage_family.get(&l).copied());
        ensure!(
            family.is_some() && family == own,
            "foreign-credential",
            "node {n} of family {own:?}: {what} carried an access token of family {family:?}"
        );
        Ok(())
    }

    /// A logout of any cause: it must have one (a store that is away logs nobody out).
    pub(super) fn logged_out(&mut self, n: usize, reason: &LogoutReason) -> Checked {
        self.report.logouts += 1;
        self.abandon(n);
        let node = &mut self.nodes[n];
        node.logged_out = true;
        let seen = node.last_seen.as_ref();
        let explained = match reason {
            LogoutReason::Requested => node.logging_out,
            LogoutReason::Elsewhere(_) => seen.is_some_and(|r| {
                Some(r.lineage) == node.lineage && matches!(r.entry, Entry::LoggedOut(_))
            }),
            LogoutReason::Superseded => seen.is_some_and(|r| Some(r.lineage) != node.lineage),
            LogoutReason::RefreshRejected(_) => node.refused,
            _ => false,
        };
        ensure!(
            explained,
            "logout-cause",
            "node {n} logged out ({reason}) without a cause; it last saw {:?}",
            seen.map(describe)
        );
        Ok(())
    }

    /// The reference for the hold-back: the current token of node `n` (at `generation`)
    /// was refused. Once two or more of its own fresh tokens in a row were refused within
    /// the backoff cap of their arrival, such a 401 starts no refresh until half of
    /// `min(cap, base * 2^(n-2))` has passed since the last one arrived.
    pub(super) fn refused(&mut self, n: usize, generation: Generation, phase: Phase) -> Checked {
        let (now, b) = (self.now, self.config.backoff.clone());
        let node = &mut self.nodes[n];
        if node.refused_generation != Some(generation) {
            node.refused_generation = Some(generation);
            match node.fresh {
                Some((g, at)) if g == generation && now.saturating_duration_since(at) < b.cap => {
                    node.refused_run += 1;
                }
                _ => node.refused_run = 0,
            }
        }
        let Some((_, got_at)) = node.fresh.filter(|&(g, _)| g == generation) else {
            return Ok(());
        };
        if node.refused_run < 2 {
            return Ok(());
        }
        let bound = b
            .base
            .saturating_mul(1 << (node.refused_run - 2).min(31))
            .min(b.cap);
        let waited = now.saturating_duration_since(got_at);
        let started = matches!(phase, Phase::Valid | Phase::Expired)
            && node.session.phase() == Phase::Refreshing;
        ensure!(
            !started || waited >= bound / 2,
            "hold-back",
            "node {n}: the {} fresh token in a row was refused {waited:?} after it arrived, and \
             a refresh started at once (hold-back: at least {:?})",
            node.refused_run,
            bound / 2
        );
        Ok(())
    }

    /// The model's end state: with the store up and nothing lost, the store holds the
    /// refresh token the server considers live for that login.
    pub(super) fn check_record(&self) -> Checked {
        if self.knobs.store_failures {
            return Ok(());
        }
        let Some(Record {
            lineage,
            entry: Entry::Tokens(t),
            version,
        }) = &self.store.record
        else {
            return Ok(());
        };
        let Some(&f) = self.lineage_family.get(lineage) else {
            return Ok(());
        };
        let family = &self.server.families[f];
        let lost = self
            .rotations
            .iter()
            .any(|(old, &excused)| excused && self.server.family_of_refresh(old) == Some(f));
        if family.revoked || lost {
            return Ok(());
        }
        let held = t.refresh_token.as_ref().map(|r| r.secret().to_owned());
        ensure!(
            held.as_deref() == Some(family.current.as_str()),
            "model-record",
            "the store holds v{version} of family {f} with refresh token {held:?}, the server's \
             live one is {}",
            family.current
        );
        Ok(())
    }
}
