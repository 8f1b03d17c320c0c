//! A request that fails at the network level (no response: refused, reset, timed out)
//! is never reported: the session keeps no record of the attempts it hands out, so an
//! attempt that is simply dropped leaves no waiter, no refresh and no deadline behind.
//! These tests hold a session whose attempts are dropped against a twin whose attempts
//! were answered `200`: both must behave the same from then on.

mod support;

use reauth_core::{Admission, Command, Phase, Verdict};
use std::time::Duration;
use support::*;

/// What a session shows of itself: phase, waiters, refresh, next deadline (from `t0`).
fn state(sim: &Sim) -> (Phase, usize, bool, Option<Duration>) {
    (
        sim.s.phase(),
        sim.s.waiting(),
        sim.s.refresh_in_flight().is_some(),
        sim.s.poll_timeout().map(|t| t - sim.t0),
    )
}

/// Moves both sessions through the same times and sends one request at each, answered
/// `200`; returns both transcripts.
fn go_on(dropped: &mut Sim, answered: &mut Sim) -> (Vec<String>, Vec<String>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for at in [10, 600, 3000, 3300, 3500, 3599, 3700] {
        for (sim, out) in [(&mut *dropped, &mut a), (&mut *answered, &mut b)] {
            out.extend(sim.at(secs(at)));
            out.push(format!("{:?}", state(sim)));
            if let Admission::Send(attempt) = sim.begin() {
                let _ = sim.respond(&attempt, 200);
            }
            out.extend(sim.drain());
            // The refresh the timers started, if any, succeeds.
            if let Some(id) = sim.s.refresh_in_flight() {
                out.extend(sim.refresh(id, ok("access-n", Some("refresh-n"), Some(3600))));
            }
        }
    }
    (without_waiter_ids(a), without_waiter_ids(b))
}

/// Waiter ids differ with the number of waiters made before: compare without them.
fn without_waiter_ids(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| {
            l.split(' ')
                .map(|word| match word.strip_prefix('w') {
                    Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => "w#",
                    _ => word,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn dropped_attempts_leave_nothing_behind() {
    let (mut dropped, mut answered) = (Sim::logged_in(Some(3600)), Sim::logged_in(Some(3600)));
    for _ in 0..100 {
        let attempt = dropped.send();
        drop(attempt); // connection refused: nothing to report
        let attempt = answered.send();
        assert!(matches!(answered.respond(&attempt, 200), Verdict::Done));
    }
    assert_eq!(dropped.drain(), Vec::<String>::new());
    assert_eq!(answered.drain(), Vec::<String>::new());
    assert_eq!(state(&dropped), state(&answered));
    assert_eq!(state(&dropped).0, Phase::Valid);
    assert_eq!(state(&dropped).1, 0);
    let (a, b) = go_on(&mut dropped, &mut answered);
    assert_eq!(a, b);
    // The timers did run: a background refresh in the stale window.
    assert!(a.iter().any(|l| l.starts_with("start ")), "{a:?}");
}

#[test]
fn attempts_dropped_during_a_refresh_do_not_hold_it_up() {
    let (mut dropped, mut answered) = (Sim::logged_in(Some(3600)), Sim::logged_in(Some(3600)));
    let mut waiters = Vec::new();
    for (sim, answer_them) in [(&mut dropped, false), (&mut answered, true)] {
        let trigger = sim.send();
        let others: Vec<_> = (0..10).map(|_| sim.send()).collect();
        let Verdict::Wait(w) = sim.respond(&trigger, 401) else {
            panic!("the 401 did not wait")
        };
        waiters.push(w);
        assert_eq!(sim.drain(), vec!["start r1 with refresh-1"]);
        // The other requests, sent with the same token, are still in flight.
        if answer_them {
            for a in &others {
                assert!(matches!(sim.respond(a, 401), Verdict::Wait(_)));
            }
        } // else: every connection was reset, nothing is reported
    }
    assert_eq!(dropped.s.waiting(), 1, "only the request that got its 401");
    assert_eq!(answered.s.waiting(), 11);
    let r = dropped.s.refresh_in_flight().unwrap();
    let out = dropped.refresh(r, ok("access-2", Some("refresh-2"), Some(3600)));
    assert_eq!(
        out,
        vec![
            "persist access-2 refresh-2".to_string(),
            "event refreshed g2".to_string(),
            format!("resume {} g2 replay", waiters[0]),
        ]
    );
    let r = answered.s.refresh_in_flight().unwrap();
    assert_eq!(
        answered
            .refresh(r, ok("access-2", Some("refresh-2"), Some(3600)))
            .len(),
        2 + 11
    );
    assert_eq!(state(&dropped), state(&answered));
    assert_eq!((dropped.s.phase(), dropped.s.waiting()), (Phase::Valid, 0));
    let (a, b) = go_on(&mut dropped, &mut answered);
    assert_eq!(a, b);
}

#[test]
fn a_replay_or_a_resumed_waiter_that_fails_to_send_is_dropped_too() {
    let mut sim = Sim::logged_in(Some(3600));
    let first = sim.send();
    let Verdict::Wait(w) = sim.respond(&first, 401) else {
        panic!()
    };
    let queued = {
        let r = sim.started();
        let w2 = sim.wait();
        sim.s
            .handle_refresh(sim.now, r, ok("access-2", None, Some(3600)));
        w2
    };
    // Both waiters are resumed with an attempt; neither send gets an answer.
    let mut resumed = Vec::new();
    while let Some(c) = sim.poll() {
        if let Command::Resume { waiter, attempt } = c {
            resumed.push(waiter);
            drop(attempt);
        }
    }
    assert_eq!(resumed, vec![w, queued]);
    assert_eq!((sim.s.phase(), sim.s.waiting()), (Phase::Valid, 0));
    // A stale 401's replay, dropped as well.
    let Verdict::Replay(replay) = sim.respond(&first, 401) else {
        panic!("a stale 401 replays")
    };
    drop(replay);
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!((sim.s.phase(), sim.s.waiting()), (Phase::Valid, 0));
    assert!(sim.s.refresh_in_flight().is_none());
    // Retrying means asking again: the retry carries the current token, not the old one.
    assert_eq!(sim.send().generation(), sim.s.generation());
    assert_ne!(sim.send().generation(), first.generation());
}
