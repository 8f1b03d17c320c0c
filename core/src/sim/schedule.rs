//! The schedule: from the seed, the next action of the world.

use super::world::{Checked, World};
use std::time::Duration;

/// How likely each action is, in the order `act` matches them: begin, respond, server
/// takes a call, deliver an answer, lose an answer, store answers, time passes, logout,
/// login, crash, revoke access tokens, revoke a family, refuse every token, the
/// application reports a refused token it learned of outside HTTP, a change notification
/// arrives.
const WEIGHTS: [u64; 15] = [120, 120, 60, 48, 8, 72, 84, 1, 4, 3, 10, 1, 2, 6, 40];

/// Takes one action; returns what it did, for the trace. An action with nothing to act
/// on gives way to another draw.
pub(crate) fn step(w: &mut World) -> Checked<String> {
    let at = w.at_ms();
    for _ in 0..8 {
        let action = w.rng.weighted(&WEIGHTS);
        if let Some(did) = act(w, action)? {
            return Ok(format!("{at}ms: {did}"));
        }
    }
    let did = advance(w)?;
    Ok(format!("{at}ms: {did}"))
}

/// A random node among those `f` picks, if any.
fn pick(w: &mut World, f: impl Fn(&World, usize) -> bool) -> Option<usize> {
    let all: Vec<usize> = (0..w.sessions()).filter(|&n| f(w, n)).collect();
    (!all.is_empty()).then(|| all[w.rng.index(all.len())])
}

fn act(w: &mut World, action: usize) -> Checked<Option<String>> {
    let n = w.rng.index(w.sessions());
    let did = match action {
        0 => {
            // Mostly a process that is logged in.
            let n = match pick(w, |w, n| !w.is_idle(n)) {
                Some(n) if w.rng.chance(90) => n,
                _ => n,
            };
            let count = w.rng.range(1, 3);
            w.begin(n, count)?;
            format!("node {n} begins {count}")
        }
        1 => {
            let Some(n) = pick(w, |w, n| w.wire(n) > 0) else {
                return Ok(None);
            };
            let k = w.rng.index(w.wire(n));
            w.respond(n, k)?;
            format!("node {n} gets a response")
        }
        2 => {
            let pending = w.pending_calls();
            if pending.is_empty() {
                return Ok(None);
            }
            let c = pending[w.rng.index(pending.len())];
            let now = w.rng.chance(50);
            w.server_step(c, now)?;
            format!(
                "server takes call #{c}{}",
                if now { " and answers" } else { "" }
            )
        }
        3 => {
            // Any of them: answers may overtake each other.
            let answered = w.answered_calls();
            if answered.is_empty() {
                return Ok(None);
            }
            let c = answered[w.rng.index(answered.len())];
            w.deliver_step(c)?;
            format!("answer of call #{c} delivered")
        }
        4 => {
            let answered = w.answered_calls();
            if answered.is_empty() {
                return Ok(None);
            }
            let c = answered[w.rng.index(answered.len())];
            w.lose(c);
            format!("answer of call #{c} lost")
        }
        5 => {
            let Some(n) = pick(w, World::has_parked) else {
                return Ok(None);
            };
            w.store_step(n)?;
            format!("store answers node {n}")
        }
        6 => advance(w)?,
        7 => {
            w.logout(n)?;
            format!("node {n} logs out")
        }
        8 => {
            // Mostly a process showing its login screen: it logs in, or starts a new client
            // on the login another process made.
            let n = match pick(w, World::is_idle) {
                Some(out) if w.rng.chance(80) => out,
                _ => n,
            };
            if w.is_idle(n) && w.rng.chance(50) {
                w.reopen(n)?;
                format!("node {n} starts a new client from the store")
            } else {
                w.login(n)?;
                format!("node {n} logs in")
            }
        }
        9 => {
            w.crash(n)?;
            format!("node {n} crashes and restarts")
        }
        13 => {
            let Some(n) = pick(w, |w, n| w.wire(n) > 0) else {
                return Ok(None);
            };
            let k = w.rng.index(w.wire(n));
            w.invalidate(n, k)?;
            format!("node {n} hears outside HTTP how its request's token fares")
        }
        14 => {
            let Some(n) = pick(w, World::has_notice) else {
                return Ok(None);
            };
            w.notice(n)?;
            format!("node {n} is told the record changed")
        }
        10..=12 if w.families() == 0 => return Ok(None),
        10 => {
            let f = w.rng.index(w.families());
            w.revoke_access(f);
            format!("server revokes the access tokens of family {f}")
        }
        11 => {
            let f = w.rng.index(w.families());
            w.revoke_family(f);
            format!("server revokes family {f}")
        }
        _ => {
            // 12: the API refuses every token of a family for a while.
            let f = w.rng.index(w.families());
            let ms = w.rng.range(300, 1_500);
            w.refuse(f, ms);
            format!("API refuses every token of family {f} for {ms}ms")
        }
    };
    Ok(Some(did))
}

/// Time passes: to the next deadline of anything, or by a random amount. While the API
/// refuses everything, in small steps, so that the hold-back and not the schedule decides
/// how often sessions refresh.
fn advance(w: &mut World) -> Checked<String> {
    let cap = if w.refusing() {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(3600)
    };
    let now = w.now();
    let to = if w.rng.chance(50) {
        w.next_deadline().unwrap_or(now).min(now + cap)
    } else {
        let ms = if w.rng.chance(85) {
            w.rng.range(0, 300)
        } else {
            w.rng.range(1_000, 45_000)
        };
        now + Duration::from_millis(ms).min(cap)
    };
    w.advance_to(to)?;
    Ok(format!(
        "time +{}ms",
        to.saturating_duration_since(now).as_millis()
    ))
}
