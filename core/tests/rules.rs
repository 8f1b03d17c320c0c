//! Transcript tests: one per rule of DESIGN.md ("Rules the core must guarantee"), each
//! asserting the exact command sequence.

mod support;

use reauth_core::{
    Admission, Command, Config, Error, OnExhausted, Phase, RefreshError, RefreshErrorKind,
    RefreshOutcome, Verdict,
};
use support::*;

#[test]
fn rule1_any_number_of_401s_for_the_current_token_cause_exactly_one_refresh() {
    let mut sim = Sim::logged_in(Some(3600));
    let attempts: Vec<_> = (0..1000).map(|_| sim.send()).collect();
    assert_eq!(sim.drain(), Vec::<String>::new());
    let mut waiters = Vec::new();
    let mut commands = Vec::new();
    for a in &attempts {
        match sim.respond(a, 401) {
            Verdict::Wait(w) => waiters.push(w),
            other => panic!("{other:?}"),
        }
        commands.extend(sim.drain());
    }
    assert_eq!(commands, vec!["start r1 with refresh-1"]);
    assert_eq!(sim.s.phase(), Phase::Refreshing);
    assert_eq!(sim.s.waiting(), 1000);
    // New requests queue behind the same refresh.
    let late = sim.wait();
    assert_eq!(sim.drain(), Vec::<String>::new());
    let out = sim.refresh(
        sim.s.refresh_in_flight().unwrap(),
        ok("access-2", None, Some(3600)),
    );
    assert_eq!(out.len(), 2 + 1001);
    assert_eq!(out[0], "persist access-2 refresh-1");
    assert_eq!(out[1], "event refreshed g2");
    assert_eq!(out[2], format!("resume {} g2 replay", waiters[0]));
    assert_eq!(out[1002], format!("resume {late} g2"));
    assert_eq!(sim.s.phase(), Phase::Valid);
}

#[test]
fn rule2_a_stale_401_replays_with_the_current_credential_and_starts_no_refresh() {
    let mut sim = Sim::logged_in(Some(3600));
    let old = sim.send();
    let trigger = sim.send();
    let Verdict::Wait(_) = sim.respond(&trigger, 401) else {
        panic!()
    };
    let r1 = sim.started();
    sim.refresh(r1, ok("access-2", Some("refresh-2"), Some(3600)));
    // `old` was sent with generation 1 and answered after the refresh.
    match sim.respond(&old, 401) {
        Verdict::Replay(a) => {
            assert_eq!(a.generation(), sim.s.generation());
            assert!(a.is_replay());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.drain(), Vec::<String>::new());
    // A stale 401 while the next refresh is under way waits for it, still no new refresh.
    let cur = sim.send();
    let Verdict::Wait(_) = sim.respond(&cur, 401) else {
        panic!()
    };
    assert_eq!(sim.drain(), vec!["start r2 with refresh-2"]);
    let Verdict::Wait(w) = sim.respond(&old, 401) else {
        panic!()
    };
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!(sim.s.waiting(), 2);
    let out = sim.refresh(
        sim.s.refresh_in_flight().unwrap(),
        ok("access-3", None, None),
    );
    assert!(out.contains(&format!("resume {w} g3 replay")));
}

#[test]
fn rule3_a_replay_that_gets_401_fails_unauthorized_instead_of_looping() {
    let mut sim = Sim::logged_in(Some(3600));
    let a = sim.send();
    let Verdict::Wait(w) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    sim.s
        .handle_refresh(sim.now, r1, ok("access-2", None, Some(3600)));
    let replay = loop {
        match sim.poll() {
            Some(Command::Resume { waiter, attempt }) if waiter == w => break attempt,
            Some(_) => {}
            None => panic!("waiter not resumed"),
        }
    };
    assert!(replay.is_replay());
    match sim.respond(&replay, 401) {
        Verdict::Fail(Error::Unauthorized) => {}
        other => panic!("{other:?}"),
    }
    // No second refresh, and the session keeps the fresh token.
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!(sim.s.phase(), Phase::Valid);
    // A 200 on a replay is simply done.
    let b = sim.send();
    let Verdict::Wait(_) = sim.respond(&b, 401) else {
        panic!()
    };
    let r2 = sim.started();
    sim.s
        .handle_refresh(sim.now, r2, ok("access-3", None, None));
    let replay = sim
        .drain()
        .into_iter()
        .find(|l| l.starts_with("resume"))
        .unwrap();
    assert!(replay.ends_with("g3 replay"), "{replay}");
}

#[test]
fn rule4_every_waiter_is_resolved_exactly_once_on_logout() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let Verdict::Wait(w1) = sim.respond(&a, 401) else {
        panic!()
    };
    let w2 = sim.wait();
    sim.drain();
    sim.s.logout(sim.now);
    // The tombstone is written (under the refresh lease it still held), so every process
    // sharing the store sees the logout and none can bring the tokens back.
    assert_eq!(
        sim.drain(),
        vec![
            "tombstone v2: requested".to_string(),
            format!("fail {w1}: logged out: logout was requested"),
            format!("fail {w2}: logged out: logout was requested"),
            "event logged-out: logout was requested".to_string(),
        ]
    );
    sim.s.logout(sim.now);
    assert_eq!(sim.drain(), Vec::<String>::new(), "logout is idempotent");
    assert_eq!(sim.s.poll_timeout(), None);
}

#[test]
fn rule4_every_waiter_is_resolved_exactly_once_on_timeout_and_cancellation() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let Verdict::Wait(w1) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    sim.at(secs(10));
    let w2 = sim.wait();
    let w3 = sim.wait();
    sim.s.cancel(w2);
    sim.s.cancel(w2); // twice is harmless
                      // The refresh is overdue at 30 s but still in doubt: no other refresh starts, the
                      // waiters keep their own deadlines (w1 at 60 s, w3 at 70 s).
    let out = sim.at(secs(30));
    assert_eq!(out, vec![format!("event overdue {r1}")]);
    assert_eq!(sim.s.phase(), Phase::Refreshing);
    let mut out = Vec::new();
    while sim.s.poll_timeout().is_some_and(|t| t <= sim.t0 + secs(60)) {
        let at = sim.s.poll_timeout().unwrap() - sim.t0;
        out.extend(sim.at(at));
    }
    assert!(out.contains(&format!(
        "fail {w1}: timed out waiting for the token refresh"
    )));
    assert!(!out.iter().any(|l| l.contains(&w2.to_string())));
    assert!(!out.iter().any(|l| l.contains(&w3.to_string())));
    let out = sim.at(secs(70));
    assert!(out.contains(&format!(
        "fail {w3}: timed out waiting for the token refresh"
    )));
    assert_eq!(sim.s.waiting(), 0);
    // The late answer to the overdue refresh is taken: its rotated token is the live one.
    assert_eq!(
        sim.refresh(r1, ok("late", Some("late-r"), None)),
        vec!["persist late late-r", "event refreshed g2"]
    );
}

#[test]
fn rule4_a_waiter_cancelled_after_its_resolution_was_decided_gets_no_command() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let Verdict::Wait(w1) = sim.respond(&a, 401) else {
        panic!()
    };
    let w2 = sim.wait();
    let r = sim.started();
    sim.s.handle_refresh(sim.now, r, ok("access-2", None, None));
    sim.s.cancel(w1); // before the caller drained the batch
    let out = sim.drain();
    assert!(
        !out.iter().any(|l| l.contains(&format!("{w1} "))),
        "{out:?}"
    );
    assert!(out.contains(&format!("resume {w2} g2")));
}

#[test]
fn rule5_nothing_is_issued_after_logout_until_the_next_login() {
    let mut sim = Sim::logged_in(Some(3600));
    let a = sim.send();
    sim.s.logout(sim.now);
    sim.drain();
    assert!(matches!(
        sim.begin(),
        Admission::Reject(Error::LoggedOut(_))
    ));
    // A response to a request sent before the logout neither replays nor refreshes.
    assert!(matches!(
        sim.respond(&a, 401),
        Verdict::Fail(Error::LoggedOut(_))
    ));
    assert!(matches!(sim.respond(&a, 200), Verdict::Done));
    sim.at(secs(7200));
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!(sim.s.poll_timeout(), None);
    sim.s
        .login(sim.now, set("access-9", Some("refresh-9"), None));
    assert_eq!(sim.drain(), vec!["persist access-9 refresh-9"]);
    assert_eq!(sim.send().generation(), sim.s.generation());
}

#[test]
fn rule6_transient_failures_back_off_with_jitter_and_honour_retry_after() {
    let mut c = config();
    c.waiter_timeout = secs(600);
    let mut sim = Sim::new(c);
    sim.s
        .login(sim.now, set("access-1", Some("refresh-1"), None));
    sim.drain();
    let a = sim.send();
    let Verdict::Wait(w) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    let out = sim.refresh(r1, transient());
    assert_eq!(out.len(), 1);
    let retry = sim.s.poll_timeout().unwrap() - sim.now;
    assert!(retry <= std::time::Duration::from_millis(250), "{retry:?}");
    assert_eq!(sim.s.phase(), Phase::Backoff);
    // Waiters keep waiting through the backoff; the session is not logged out.
    assert!(matches!(sim.begin(), Admission::Wait(_)));
    let at = sim.s.poll_timeout().unwrap() - sim.t0;
    assert_eq!(sim.at(at), vec!["start r2 with refresh-1"]);
    // Retry-After (7 s) beats the jitter bound (500 ms).
    sim.refresh(sim.s.refresh_in_flight().unwrap(), transient_after(secs(7)));
    assert_eq!(sim.s.poll_timeout().unwrap() - sim.now, secs(7));
    let at = sim.s.poll_timeout().unwrap() - sim.t0;
    assert_eq!(sim.at(at), vec!["start r3 with refresh-1"]);
    let out = sim.refresh(
        sim.s.refresh_in_flight().unwrap(),
        ok("access-2", None, None),
    );
    assert!(out.contains(&format!("resume {w} g2 replay")));
    assert_eq!(sim.s.snapshot().failed_attempts, 0);
}

#[test]
fn rule6_backoff_is_deterministic_for_a_seed_and_bounded_by_the_cap() {
    let schedule = |seed: u64| {
        let mut c = config();
        c.seed = seed;
        c.waiter_timeout = secs(3600);
        c.backoff.max_attempts = 12;
        let mut sim = Sim::new(c);
        sim.s.login(sim.now, set("a", Some("r"), None));
        sim.drain();
        let a = sim.send();
        let _ = sim.respond(&a, 401);
        sim.drain();
        let mut delays = Vec::new();
        for _ in 0..11 {
            let id = sim.s.refresh_in_flight().unwrap();
            sim.refresh(id, transient());
            let d = sim.s.poll_timeout().unwrap() - sim.now;
            delays.push(d);
            let at = sim.s.poll_timeout().unwrap() - sim.t0;
            sim.at(at);
        }
        delays
    };
    let a = schedule(1);
    assert_eq!(a, schedule(1));
    assert_ne!(a, schedule(2));
    for (n, d) in a.iter().enumerate() {
        let bound = (std::time::Duration::from_millis(250) * (1 << n)).min(secs(30));
        assert!(*d <= bound, "attempt {n}: {d:?} > {bound:?}");
    }
}

#[test]
fn rule6_permanent_failure_logs_out_fails_waiters_and_writes_a_tombstone() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let Verdict::Wait(w) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    let out = sim.refresh(r1, permanent());
    let reason = "the refresh was rejected: the token endpoint answered error `invalid_grant`";
    assert_eq!(
        out,
        vec![
            "tombstone v2: refresh_rejected".to_string(),
            format!("fail {w}: logged out: {reason}"),
            format!("event logged-out: {reason}"),
        ]
    );
    assert_eq!(sim.s.phase(), Phase::LoggedOut);
    assert!(matches!(
        sim.begin(),
        Admission::Reject(Error::LoggedOut(_))
    ));
}

#[test]
fn rule6_a_configuration_error_fails_the_waiters_at_once_and_keeps_the_session() {
    let mut config = config();
    // Even where exhausted attempts log out: the tokens are not what failed.
    config.on_exhausted = OnExhausted::LogOut;
    let mut sim = Sim::new(config);
    sim.s
        .login(sim.now, set("access-1", Some("refresh-1"), None));
    sim.drain();
    let a = sim.send();
    let Verdict::Wait(w) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    let error = RefreshError::configuration(RefreshErrorKind::Redirected {
        location: "https://elsewhere.example/token".into(),
    });
    let out = sim.refresh(r1, RefreshOutcome::Failed(error));
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0].starts_with(&format!(
            "fail {w}: token refresh failed: the token endpoint redirected to https://elsewhere.example/token"
        )),
        "{out:?}"
    );
    assert!(out[1].starts_with("event refresh-failed"), "{out:?}");
    // No tombstone, no logout, no retry schedule: until the backoff cap, a request that
    // needs a refresh fails at once with the same error, and nothing is started.
    assert_eq!(sim.s.phase(), Phase::Expired);
    assert!(sim.s.snapshot().has_refresh_token);
    match sim.begin() {
        Admission::Reject(Error::RefreshFailed(e)) => assert!(e.is_configuration(), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.drain(), Vec::<String>::new());
    // After the cap (30 s by default), the next request tries once more.
    sim.at(secs(31));
    assert!(matches!(sim.begin(), Admission::Wait(_)));
    assert_eq!(sim.drain(), vec!["start r2 with refresh-1"]);
}

#[test]
fn rule6_invalid_client_keeps_the_tokens_and_holds_refreshing_until_a_login() {
    let mut sim = Sim::logged_in(Some(3600));
    let (a, b) = (sim.send(), sim.send());
    let Verdict::Wait(w) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    let body = br#"{"error":"invalid_client","error_description":"bad secret"}"#;
    let outcome = reauth_core::oauth2::parse_token_response(
        http::StatusCode::UNAUTHORIZED,
        &http::HeaderMap::new(),
        body,
        sim.wall(),
    );
    let out = sim.refresh(r1, outcome);
    assert_eq!(
        out[0],
        format!(
            "fail {w}: token refresh failed: the token endpoint answered error `invalid_client`: bad secret"
        )
    );
    assert!(
        !out.iter()
            .any(|c| c.contains("tombstone") || c.contains("logged-out")),
        "{out:?}"
    );
    assert_eq!(sim.s.phase(), Phase::Expired);
    // A 401 for the same token arriving now fails at once, with no second token call.
    assert!(matches!(
        sim.respond(&b, 401),
        Verdict::Fail(Error::RefreshFailed(_))
    ));
    assert_eq!(sim.drain(), Vec::<String>::new());
    // A login (the app fixed its configuration) is taken at once.
    sim.s
        .login(sim.now, set("access-2", Some("refresh-2"), Some(3600)));
    sim.drain();
    assert!(matches!(sim.begin(), Admission::Send(_)));
}

#[test]
fn rule6_exhausted_attempts_keep_the_session_by_default() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let Verdict::Wait(w) = sim.respond(&a, 401) else {
        panic!()
    };
    sim.drain();
    let mut last = Vec::new();
    for _ in 0..5 {
        let id = sim.s.refresh_in_flight().unwrap();
        last = sim.refresh(id, transient());
        if let Some(at) = sim.s.poll_timeout() {
            let at = at - sim.t0;
            sim.at(at);
        }
    }
    assert_eq!(
        last,
        vec![
            format!("fail {w}: token refresh failed: the token endpoint answered HTTP 503"),
            "event refresh-failed #5 exhausted".to_string(),
        ]
    );
    assert_eq!(sim.s.phase(), Phase::Expired);
    assert_eq!(sim.s.poll_timeout(), None);
    // The next request starts a fresh episode with the kept refresh token.
    let _ = sim.wait();
    assert_eq!(sim.drain(), vec!["start r6 with refresh-1"]);
    assert_eq!(sim.s.snapshot().failed_attempts, 0);
}

#[test]
fn rule6_exhausted_attempts_log_out_when_configured() {
    let mut c: Config = config();
    c.on_exhausted = OnExhausted::LogOut;
    c.backoff.max_attempts = 1;
    let mut sim = Sim::new(c);
    sim.s.login(sim.now, set("a", Some("r"), None));
    sim.drain();
    let a = sim.send();
    let _ = sim.respond(&a, 401);
    let r = sim.started();
    let out = sim.refresh(r, transient());
    assert_eq!(out[0], "tombstone v2: attempts_exhausted");
    assert!(out
        .last()
        .unwrap()
        .starts_with("event logged-out: refresh attempts were exhausted"));
    assert_eq!(sim.s.phase(), Phase::LoggedOut);
}

#[test]
fn rule7_a_refresh_in_doubt_is_never_superseded_and_late_outcomes_for_older_ones_are_ignored() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let _ = sim.respond(&a, 401);
    let r1 = sim.started();
    // Past the refresh timeout r1 is in doubt: the server may have rotated already, so no
    // second refresh presents refresh-1, whatever the requests and timers do.
    sim.at(secs(30));
    let _ = sim.wait();
    assert_eq!(sim.at(secs(59)), Vec::<String>::new());
    assert_eq!(sim.s.refresh_in_flight(), Some(r1));
    // The driver gives up at the deadline: a transient timeout, then a backoff retry.
    sim.refresh(
        r1,
        RefreshOutcome::Failed(RefreshError::transient(RefreshErrorKind::Timeout)),
    );
    let at = sim.s.poll_timeout().unwrap() - sim.t0;
    assert_eq!(sim.at(at), vec!["start r2 with refresh-1"]);
    // r1's success arriving after that is ignored, phase and generation unchanged.
    let before = sim.s.snapshot();
    assert_eq!(
        sim.refresh(r1, ok("late", Some("late-r"), None)),
        Vec::<String>::new()
    );
    assert_eq!(sim.s.snapshot(), before);
    let r2 = sim.s.refresh_in_flight().unwrap();
    sim.refresh(r2, ok("access-2", None, None));
    // A duplicate outcome for r2 is ignored too.
    assert_eq!(sim.refresh(r2, permanent()), Vec::<String>::new());
    assert_eq!(sim.s.phase(), Phase::Valid);
}

#[test]
fn rule8_a_background_refresh_runs_in_the_stale_window_while_requests_flow() {
    // Lifetime 3600 s, leeway 10 s, window 60 s: stale at 3530 s, hard at 3590 s.
    let mut sim = Sim::logged_in(Some(3600));
    assert_eq!(sim.s.poll_timeout(), Some(sim.t0 + secs(3530)));
    // A request 20 s before: requests are flowing (within the 60 s window).
    sim.now = sim.t0 + secs(3510);
    let _ = sim.send();
    assert_eq!(sim.at(secs(3530)), vec!["start r1 with refresh-1"]);
    assert_eq!(sim.s.phase(), Phase::ValidRefreshing);
    let a = sim.send();
    assert_eq!(a.generation().get(), 1);
    sim.refresh(
        sim.s.refresh_in_flight().unwrap(),
        ok("access-2", None, Some(3600)),
    );
    assert_eq!(sim.s.phase(), Phase::Valid);
    assert_eq!(sim.send().generation().get(), 2);
}

#[test]
fn rule8_near_expiry_requests_wait_instead_of_sending_a_dying_token() {
    let mut sim = Sim::logged_in(Some(3600));
    // No timer was fired (the caller was idle): the request itself notices.
    sim.now = sim.t0 + secs(3595);
    let _ = sim.wait();
    assert_eq!(sim.drain(), vec!["start r1 with refresh-1"]);
    assert_eq!(sim.s.phase(), Phase::Refreshing);
}

#[test]
fn rule8_requests_in_the_stale_window_start_the_background_refresh_themselves() {
    let mut sim = Sim::logged_in(Some(3600));
    sim.now = sim.t0 + secs(3540);
    let _ = sim.send();
    assert_eq!(sim.drain(), vec!["start r1 with refresh-1"]);
    let _ = sim.send();
    assert_eq!(
        sim.drain(),
        Vec::<String>::new(),
        "one background refresh only"
    );
}

#[test]
fn rule8_the_servers_401_wins_over_local_expiry() {
    let mut sim = Sim::logged_in(Some(3600));
    let a = sim.send();
    // Locally the token has an hour left, but the server says it is dead.
    let Verdict::Wait(_) = sim.respond(&a, 401) else {
        panic!()
    };
    assert_eq!(sim.drain(), vec!["start r1 with refresh-1"]);
}

#[test]
fn rule8_a_401_during_a_background_refresh_joins_it() {
    let mut sim = Sim::warm(Some(3600));
    sim.at(secs(3530));
    let a = sim.send();
    let Verdict::Wait(_) = sim.respond(&a, 401) else {
        panic!()
    };
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!(sim.s.phase(), Phase::Refreshing);
}

#[test]
fn rule8_short_lifetimes_do_not_refresh_immediately() {
    let mut sim = Sim::warm(Some(20));
    // Leeway 10 s and window 60 s exceed the lifetime: refresh no earlier than half-life.
    assert_eq!(sim.s.poll_timeout(), Some(sim.t0 + secs(10)));
    assert_eq!(sim.at(secs(10)), vec!["start r1 with refresh-1"]);
    // A refreshed token that arrives already expired is used reactively, not refreshed
    // again at once.
    sim.refresh(
        sim.s.refresh_in_flight().unwrap(),
        ok("access-2", None, Some(0)),
    );
    assert_eq!(sim.s.poll_timeout(), None);
    assert_eq!(sim.send().generation().get(), 2);
}

#[test]
fn rule9_a_rotated_refresh_token_replaces_the_old_one_in_one_persist() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let _ = sim.respond(&a, 401);
    let r1 = sim.started();
    assert_eq!(
        sim.refresh(r1, ok("access-2", Some("refresh-2"), None)),
        vec![
            "persist access-2 refresh-2",
            "event refreshed g2",
            "resume w1 g2 replay"
        ]
    );
    let a = sim.send();
    let _ = sim.respond(&a, 401);
    assert_eq!(sim.drain(), vec!["start r2 with refresh-2"]);
}

#[test]
fn rule9_a_response_without_a_refresh_token_keeps_the_old_one() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let _ = sim.respond(&a, 401);
    let r1 = sim.started();
    assert_eq!(
        sim.refresh(r1, ok("access-2", None, None))[0],
        "persist access-2 refresh-1"
    );
}

#[test]
fn after_handle_timeout_the_next_deadline_is_later() {
    let mut c = config();
    c.refresh_timeout = secs(0);
    c.backoff.base = secs(0);
    c.keep_warm = true;
    let mut sim = Sim::new(c);
    sim.s.login(sim.now, set("a", Some("r"), Some(1)));
    sim.drain();
    // Degenerate zero durations still terminate and leave no due deadline behind.
    let mut started = 0;
    for s in 0..100 {
        started += sim
            .at(secs(s))
            .iter()
            .filter(|l| l.starts_with("start"))
            .count();
        assert!(sim.s.poll_timeout().is_none_or(|t| t > sim.now));
    }
    // The refresh is overdue from the start, and in doubt until it answers: one only.
    assert_eq!(sim.s.phase(), Phase::Refreshing);
    assert_eq!(started, 1);
}

#[test]
fn time_going_backwards_is_ignored() {
    let mut sim = Sim::warm(Some(3600));
    sim.at(secs(3595));
    assert_eq!(sim.s.phase(), Phase::Refreshing);
    sim.now = sim.t0;
    sim.s.handle_timeout(sim.now);
    assert!(matches!(sim.begin(), Admission::Wait(_)));
}

#[test]
fn empty_sessions_reject_or_acquire_without_a_refresh_token() {
    let mut sim = Sim::new(config());
    assert!(matches!(
        sim.begin(),
        Admission::Reject(Error::NotAuthenticated)
    ));
    let mut c = config();
    c.requires_refresh_token = false;
    let mut sim = Sim::new(c);
    let w = sim.wait();
    assert_eq!(sim.drain(), vec!["start r1 with none"]);
    let out = sim.refresh(
        sim.s.refresh_in_flight().unwrap(),
        ok("cc-1", None, Some(3600)),
    );
    assert_eq!(
        out,
        vec![
            "persist cc-1 no-refresh".to_string(),
            "event refreshed g1".into(),
            format!("resume {w} g1")
        ]
    );
}

#[test]
fn an_expired_token_without_a_refresh_token_logs_out() {
    let mut sim = Sim::new(config());
    sim.s.login(sim.now, set("a", None, Some(100)));
    sim.drain();
    // Idle, the expiry passes unnoticed; the next request finds it.
    assert_eq!(sim.at(secs(95)), Vec::<String>::new());
    assert!(matches!(
        sim.begin(),
        Admission::Reject(Error::LoggedOut(_))
    ));
    assert_eq!(
        sim.drain(),
        vec![
            "tombstone v2: no_refresh_token",
            "event logged-out: the access token expired and there is no refresh token"
        ]
    );
}

#[test]
fn login_resumes_waiters_and_abandons_the_refresh_in_flight() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    let Verdict::Wait(w) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    sim.s.login(sim.now, set("fresh", Some("fresh-r"), None));
    // The login's tokens go to the store first (a new lineage, replacing whatever it
    // holds, before the refresh lease is given back), then requests use them.
    assert_eq!(
        sim.drain(),
        vec![
            "persist fresh fresh-r".to_string(),
            format!("resume {w} g2 replay"),
        ]
    );
    assert_eq!(sim.refresh(r1, permanent()), Vec::<String>::new());
    assert_eq!(sim.s.phase(), Phase::Valid);
}

#[test]
fn login_with_an_expired_token_refreshes_before_resuming() {
    let mut sim = Sim::new(config());
    sim.s
        .login(sim.now, set("old", Some("refresh-old"), Some(0)));
    assert_eq!(
        sim.drain(),
        vec!["persist old refresh-old", "start r1 with refresh-old"]
    );
    assert!(matches!(sim.begin(), Admission::Wait(_)));
}

#[test]
fn foreign_origins_never_get_the_credential() {
    let mut sim = Sim::logged_in(None);
    for uri in [
        "https://evil.test/",
        "http://api.test/",
        "https://api.test:8443/",
        "https://api.test.evil.test/",
        "/relative",
    ] {
        let target: http::Uri = uri.parse().unwrap();
        let a = sim.s.begin_request(sim.now, &target);
        assert!(matches!(a, Admission::Anonymous), "{uri}: {a:?}");
        assert!(!sim.s.is_allowed(&target));
    }
}

#[test]
fn forbidden_and_insufficient_scope_never_refresh() {
    let mut sim = Sim::logged_in(None);
    let a = sim.send();
    assert!(matches!(sim.respond(&a, 403), Verdict::Done));
    assert!(matches!(sim.respond(&a, 500), Verdict::Done));
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!(sim.s.phase(), Phase::Valid);
}

#[test]
fn rule6_retry_after_is_honoured_up_to_its_cap() {
    let mut c = config();
    c.waiter_timeout = secs(3600);
    c.backoff.max_retry_after = secs(300);
    let mut sim = Sim::new(c);
    sim.s.login(sim.now, set("a", Some("r"), None));
    sim.drain();
    let a = sim.send();
    let _ = sim.respond(&a, 401);
    let r = sim.started();
    // The server asks for an hour; the session waits its cap, 5 minutes, no more.
    sim.refresh(r, transient_after(secs(3600)));
    assert_eq!(sim.s.poll_timeout().unwrap() - sim.now, secs(300));
}

#[test]
fn login_writes_its_record_before_giving_the_refresh_lease_back() {
    // Found by the simulator: a login that gave the lease back before its write landed let
    // a process of the old lineage take the lease, read the old record and present the
    // refresh token the abandoned refresh had presented: a reuse the server punishes.
    let mut sim = Sim::logged_in(Some(3600));
    let a = sim.send();
    let Verdict::Wait(_) = sim.respond(&a, 401) else {
        panic!()
    };
    let r1 = sim.started();
    sim.show_store = true;
    sim.s
        .login(sim.now, set("access-9", Some("refresh-9"), Some(3600)));
    let out = sim.drain();
    let write = out.iter().position(|l| l == "persist access-9 refresh-9");
    let release = out.iter().position(|l| l.starts_with("store Release"));
    assert!(
        write.is_some() && release.is_some() && write < release,
        "{out:?}"
    );
    // The abandoned refresh's answer changes nothing.
    assert_eq!(
        sim.refresh(r1, ok("access-2", Some("refresh-2"), Some(3600))),
        Vec::<String>::new()
    );
}

// ---- invalidate: "this token is bad", learned outside HTTP --------------------------------

#[test]
fn invalidate_for_the_current_generation_starts_one_refresh_and_requests_wait() {
    let mut sim = Sim::logged_in(Some(3600));
    let seen = sim.s.snapshot().generation;
    // Any number of reports (a websocket per task, say) cause one refresh.
    for _ in 0..10 {
        sim.s.invalidate(sim.now, seen);
    }
    assert_eq!(sim.drain(), vec!["start r1 with refresh-1"]);
    assert_eq!(sim.s.phase(), Phase::Refreshing);
    // The bad token is not sent any more: requests wait for the refresh.
    let w = sim.wait();
    // A 401 for the same token joins the same refresh.
    let out = sim.refresh(
        sim.s.refresh_in_flight().unwrap(),
        ok("access-2", None, Some(3600)),
    );
    assert_eq!(
        out,
        vec![
            "persist access-2 refresh-1".to_string(),
            "event refreshed g2".to_string(),
            format!("resume {w} g2"),
        ]
    );
    assert_eq!(sim.s.phase(), Phase::Valid);
}

#[test]
fn invalidate_during_a_background_refresh_joins_it() {
    let mut sim = Sim::logged_in(Some(3600));
    let seen = sim.s.generation();
    // Inside the stale window a request starts the background refresh.
    sim.at(secs(3600 - 30));
    let _ = sim.send();
    let r1 = sim.started();
    assert_eq!(sim.s.phase(), Phase::ValidRefreshing);
    sim.s.invalidate(sim.now, seen);
    assert_eq!(sim.drain(), Vec::<String>::new(), "no second refresh");
    assert_eq!(sim.s.phase(), Phase::Refreshing);
    let w = sim.wait();
    let out = sim.refresh(r1, ok("access-2", None, Some(3600)));
    assert!(out.contains(&format!("resume {w} g2")), "{out:?}");
}

#[test]
fn invalidate_for_a_stale_generation_does_nothing() {
    let mut sim = Sim::logged_in(Some(3600));
    let old = sim.s.generation();
    let trigger = sim.send();
    let Verdict::Wait(_) = sim.respond(&trigger, 401) else {
        panic!()
    };
    let r1 = sim.started();
    sim.refresh(r1, ok("access-2", Some("refresh-2"), Some(3600)));
    assert!(sim.s.generation() > old);
    // The report is about the token replaced meanwhile, like a stale 401.
    sim.s.invalidate(sim.now, old);
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!(sim.s.phase(), Phase::Valid);
    assert_eq!(sim.send().generation(), sim.s.generation());
    // During the next refresh a stale report changes nothing either.
    let current = sim.s.generation();
    sim.s.invalidate(sim.now, current);
    let r2 = sim.started();
    sim.s.invalidate(sim.now, old);
    sim.s.invalidate(sim.now, current);
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert_eq!(sim.s.refresh_in_flight(), Some(r2));
}

#[test]
fn invalidate_when_logged_out_or_empty_does_nothing() {
    let mut sim = Sim::logged_in(Some(3600));
    let seen = sim.s.generation();
    sim.s.logout(sim.now);
    sim.drain();
    sim.s.invalidate(sim.now, seen);
    assert_eq!(sim.drain(), Vec::<String>::new());
    assert!(matches!(sim.s.phase(), Phase::LoggedOut));
    assert!(matches!(
        sim.begin(),
        Admission::Reject(Error::LoggedOut(_))
    ));

    let mut empty = Sim::new(support::config());
    let never = empty.s.generation();
    empty.s.invalidate(empty.now, never);
    assert_eq!(empty.drain(), Vec::<String>::new());
    assert_eq!(empty.s.phase(), Phase::Empty);
}
