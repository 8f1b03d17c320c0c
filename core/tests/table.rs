//! The transition table: every (phase, input) pair, with the phase it leads to and the
//! kinds of command it emits (h11's `test_state.py` does the same for HTTP/1.1).

mod support;

use reauth_core::{
    Admission, Attempt, Command, Entry, Phase, RefreshId, StoreCommand, Verdict, WaiterId,
};
use support::*;

/// A session put in a given phase, with handles for the inputs that need them.
struct Fixture {
    sim: Sim,
    /// An attempt with the current generation (none before the first login).
    current: Option<Attempt>,
    /// An attempt with an older generation.
    stale: Option<Attempt>,
    /// A waiter to cancel, if the phase has one.
    waiter: Option<WaiterId>,
    /// The last refresh started, in flight or not.
    refresh: Option<RefreshId>,
}

fn fixture(phase: Phase) -> Fixture {
    let mut sim = Sim::new(config());
    let fx = |sim: Sim| Fixture {
        sim,
        current: None,
        stale: None,
        waiter: None,
        refresh: None,
    };
    if phase == Phase::Empty {
        return fx(sim);
    }
    sim.s
        .login(sim.now, set("access-0", Some("refresh-0"), Some(3600)));
    sim.drain();
    let stale = sim.send();
    sim.s
        .login(sim.now, set("access-1", Some("refresh-1"), Some(3600)));
    sim.drain();
    let current = sim.send();
    let mut f = fx(sim);
    f.stale = Some(stale);
    f.current = Some(current.clone());
    let sim = &mut f.sim;
    match phase {
        Phase::Empty | Phase::Valid => {}
        Phase::ValidRefreshing => {
            // Requests are flowing when the stale window opens.
            sim.now = sim.t0 + secs(3500);
            let _ = sim.send();
            sim.at(secs(3530));
            f.refresh = sim.s.refresh_in_flight();
        }
        Phase::Refreshing | Phase::Backoff | Phase::Expired => {
            let Verdict::Wait(w) = sim.respond(&current, 401) else {
                panic!()
            };
            f.waiter = Some(w);
            f.refresh = Some(sim.started());
            let failures = match phase {
                Phase::Backoff => 1,
                Phase::Expired => 5,
                _ => 0,
            };
            for _ in 0..failures {
                let id = sim.s.refresh_in_flight().unwrap();
                f.refresh = Some(id);
                sim.refresh(id, transient());
                if sim.s.phase() == Phase::Backoff && failures > 1 {
                    let at = sim.s.poll_timeout().unwrap() - sim.t0;
                    sim.at(at);
                }
            }
            if phase == Phase::Expired {
                f.waiter = None;
            }
        }
        Phase::LoggedOut => {
            sim.s.logout(sim.now);
            sim.drain();
        }
        _ => unreachable!(),
    }
    assert_eq!(sim.s.phase(), phase);
    f
}

const PHASES: [Phase; 7] = [
    Phase::Empty,
    Phase::Valid,
    Phase::ValidRefreshing,
    Phase::Refreshing,
    Phase::Backoff,
    Phase::Expired,
    Phase::LoggedOut,
];

const INPUTS: [&str; 16] = [
    "login",
    "logout",
    "begin",
    "200",
    "401-current",
    "401-stale",
    "403",
    "refresh-ok",
    "refresh-transient",
    "refresh-permanent",
    "refresh-foreign",
    "cancel",
    "timeout-now",
    "timeout-far",
    "invalidate-current",
    "invalidate-stale",
];

/// Applies `input` and describes the result as `phase: answer; command kinds`.
fn run(phase: Phase, input: &str) -> String {
    let mut f = fixture(phase);
    let sim = &mut f.sim;
    let mut answer = String::new();
    let in_flight = sim.s.refresh_in_flight();
    match input {
        "login" => sim.s.login(sim.now, set("new", Some("new-r"), Some(3600))),
        "logout" => sim.s.logout(sim.now),
        "begin" => {
            answer = match sim.begin() {
                Admission::Send(_) => "send".into(),
                Admission::Wait(_) => "wait".into(),
                Admission::Reject(e) => format!("reject({})", short(&e.to_string())),
                other => format!("{other:?}"),
            }
        }
        "200" | "401-current" | "401-stale" | "403" => {
            let attempt = if input == "401-stale" {
                &f.stale
            } else {
                &f.current
            };
            let Some(a) = attempt.clone() else {
                return "-".into();
            };
            let status = match input {
                "200" => 200,
                "403" => 403,
                _ => 401,
            };
            answer = match sim.respond(&a, status) {
                Verdict::Done => "done".into(),
                Verdict::Replay(_) => "replay".into(),
                Verdict::Wait(_) => "wait".into(),
                Verdict::Fail(e) => format!("fail({})", short(&e.to_string())),
                other => format!("{other:?}"),
            };
        }
        "refresh-ok" | "refresh-transient" | "refresh-permanent" => {
            let Some(id) = in_flight else {
                return "-".into();
            };
            let outcome = match input {
                "refresh-ok" => ok("new", None, Some(3600)),
                "refresh-transient" => transient(),
                _ => permanent(),
            };
            sim.s.handle_refresh(sim.now, id, outcome);
        }
        "refresh-foreign" => {
            let Some(id) = f.refresh else {
                return "-".into();
            };
            // An id that is not the one in flight: the previous one, or the in-flight
            // one's outcome reported twice.
            sim.s.handle_refresh(sim.now, id, ok("x", None, None));
            if in_flight == Some(id) {
                sim.drain();
                sim.s.handle_refresh(sim.now, id, permanent());
            }
        }
        "cancel" => {
            let Some(w) = f.waiter else { return "-".into() };
            sim.s.cancel(w);
        }
        "invalidate-current" | "invalidate-stale" => {
            let attempt = if input == "invalidate-stale" {
                &f.stale
            } else {
                &f.current
            };
            let Some(a) = attempt else {
                return "-".into();
            };
            sim.s.invalidate(sim.now, a.generation());
        }
        "timeout-now" => sim.s.handle_timeout(sim.now),
        "timeout-far" => {
            sim.now += secs(100_000);
            sim.s.handle_timeout(sim.now);
        }
        _ => unreachable!(),
    }
    let mut kinds: Vec<&str> = Vec::new();
    while let Some(c) = sim.poll() {
        let k = match c {
            Command::StartRefresh { .. } => "start",
            Command::Resume { .. } => "resume",
            Command::Fail { .. } => "fail",
            Command::Store {
                op: StoreCommand::Write { record, .. },
                ..
            } => match record.entry {
                Entry::Tokens(_) => "persist",
                Entry::LoggedOut(_) => "tombstone",
            },
            // The lease and the re-reads: the protocol's plumbing, in the transcripts.
            Command::Store { .. } => continue,
            Command::Event(_) => "event",
            _ => "other",
        };
        if kinds.last() != Some(&k) {
            kinds.push(k);
        }
    }
    let sep = if answer.is_empty() { "" } else { " " };
    format!("{:?}:{sep}{answer} [{}]", sim.s.phase(), kinds.join(","))
}

fn short(msg: &str) -> String {
    msg.split(':').next().unwrap_or(msg).replace(' ', "-")
}

/// Rows: phases in `PHASES` order. Columns: inputs in `INPUTS` order. `-` marks a pair
/// that cannot occur (no attempt, waiter or refresh exists in that phase).
const TABLE: [[&str; 16]; 7] = include!("table.txt");

#[test]
fn every_phase_input_pair_has_the_expected_transition() {
    let mut actual = String::from("[\n");
    let mut mismatches = Vec::new();
    for (row, &phase) in PHASES.iter().enumerate() {
        actual.push_str("    [\n");
        for (col, &input) in INPUTS.iter().enumerate() {
            let got = run(phase, input);
            actual.push_str(&format!("        {got:?}, // {phase:?} x {input}\n"));
            if TABLE[row][col] != got {
                mismatches.push(format!(
                    "{phase:?} x {input}: expected {:?}, got {got:?}",
                    TABLE[row][col]
                ));
            }
        }
        actual.push_str("    ],\n");
    }
    actual.push(']');
    assert!(
        mismatches.is_empty(),
        "{}\n\nwhole table:\n{actual}",
        mismatches.join("\n")
    );
}
