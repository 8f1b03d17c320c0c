//! Transcript tests of change notifications (`Session::handle_changed`): two processes
//! over one store, one refreshing or logging out, the other told that the record changed.
//! A notification decides nothing by itself; the session re-reads and acts on the record.

mod support;

use reauth_core::{Phase, TokenStore, Verdict};
use support::*;

/// A second process over `a`'s store, restored from what it holds, on `a`'s clock.
fn second(a: &Sim) -> Sim {
    let mut b = Sim::new(config());
    b.store = a.store.clone();
    b.t0 = a.t0;
    b.now = a.now;
    let record = b.store.read().unwrap();
    b.s.restore(b.now, b.wall(), record);
    b.drain();
    b.show_store = true;
    b
}

#[test]
fn a_process_waiting_on_the_lease_adopts_at_the_notification_not_at_its_next_poll() {
    let mut a = Sim::logged_in(Some(3600));
    let mut b = second(&a);
    let x = a.send();
    let Verdict::Wait(_) = a.respond(&x, 401) else {
        panic!()
    };
    let r = a.started();
    let y = b.send();
    let Verdict::Wait(w) = b.respond(&y, 401) else {
        panic!()
    };
    // b finds the lease taken: it waits, and would poll again only at its retry timer.
    let out = b.drain();
    assert!(
        out.len() == 1 && out[0].starts_with("store Lease"),
        "{out:?}"
    );
    assert_eq!(b.s.phase(), Phase::Refreshing);
    let retry = b.s.poll_timeout().unwrap();
    a.refresh(r, ok("access-2", Some("refresh-2"), Some(3600)));
    b.s.handle_changed(b.now);
    let out = b.drain();
    let generation = b.s.generation();
    assert_eq!(
        out,
        vec![
            "store Read".to_string(),
            format!("event adopted {generation}"),
            format!("resume {w} {generation} replay"),
        ]
    );
    assert!(b.now < retry, "adopted before the retry was due");
    assert_eq!(b.s.phase(), Phase::Valid);
    // b never called the token endpoint, and its retry timer is gone.
    assert!(b.s.refresh_in_flight().is_none());
    assert!(b.at(secs(1)).is_empty());
}

#[test]
fn an_idle_process_adopts_newer_tokens_and_follows_a_logout() {
    let mut a = Sim::logged_in(Some(3600));
    let mut b = second(&a);
    let before = b.s.generation();
    let x = a.send();
    let Verdict::Wait(_) = a.respond(&x, 401) else {
        panic!()
    };
    let r = a.started();
    a.refresh(r, ok("access-2", Some("refresh-2"), Some(3600)));
    b.s.handle_changed(b.now);
    let out = b.drain();
    assert!(b.s.generation() > before, "{out:?}");
    assert_eq!(
        out,
        vec![
            "store Read".to_string(),
            format!("event adopted {}", b.s.generation())
        ]
    );
    // b's next request carries a's tokens, with no 401 of its own first.
    let z = b.send();
    assert_eq!(z.generation(), b.s.generation());
    // a logs out: b follows at the notification, before sending anything else.
    a.s.logout(a.now);
    a.drain();
    b.s.handle_changed(b.now);
    let out = b.drain();
    assert_eq!(out[0], "store Read");
    assert_eq!(b.s.phase(), Phase::LoggedOut, "{out:?}");
    assert!(
        out.iter().any(|l| l.starts_with("event logged-out")),
        "{out:?}"
    );
    // Logged out by a tombstone: b writes none of its own.
    assert!(!out.iter().any(|l| l.starts_with("tombstone")), "{out:?}");
}

#[test]
fn notifications_with_nothing_new_change_nothing_and_repeats_cost_one_read() {
    let a = Sim::logged_in(Some(3600));
    let mut b = second(&a);
    let generation = b.s.generation();
    let deadline = b.s.poll_timeout();
    // Three notifications before the store answers: one read.
    b.s.handle_changed(b.now);
    b.s.handle_changed(b.now);
    b.s.handle_changed(b.now);
    assert_eq!(b.drain(), vec!["store Read"]);
    assert_eq!(
        (b.s.phase(), b.s.generation(), b.s.poll_timeout()),
        (Phase::Valid, generation, deadline)
    );
}

#[test]
fn a_notification_during_the_episode_s_own_call_does_nothing() {
    let mut a = Sim::logged_in(Some(3600));
    a.show_store = true;
    let x = a.send();
    let Verdict::Wait(_) = a.respond(&x, 401) else {
        panic!()
    };
    let out = a.drain();
    assert!(out.iter().any(|l| l.starts_with("start ")), "{out:?}");
    a.s.handle_changed(a.now);
    assert_eq!(a.drain(), Vec::<String>::new());
    assert_eq!(a.s.phase(), Phase::Refreshing);
}

#[test]
fn another_login_in_the_store_supersedes_an_idle_process() {
    let mut a = Sim::logged_in(Some(3600));
    let mut b = second(&a);
    a.s.login(a.now, set("access-9", Some("refresh-9"), Some(3600)));
    a.drain();
    b.s.handle_changed(b.now);
    let out = b.drain();
    assert_eq!(b.s.phase(), Phase::LoggedOut, "{out:?}");
    // Never adopted, never overwritten.
    assert!(!out
        .iter()
        .any(|l| l.starts_with("persist") || l.starts_with("tombstone")));
    let held = a.store.read().unwrap().unwrap();
    assert!(held.tokens().is_some());
}

#[test]
fn a_logged_out_session_reads_nothing() {
    let mut a = Sim::logged_in(Some(3600));
    a.s.logout(a.now);
    a.drain();
    a.show_store = true;
    a.s.handle_changed(a.now);
    assert_eq!(a.drain(), Vec::<String>::new());
}

#[test]
fn a_session_that_never_had_tokens_takes_up_what_another_process_wrote() {
    // b started before anything was in the store (or while it could not be read).
    let a = Sim::new(config());
    let mut b = Sim::new(config());
    b.store = a.store.clone();
    b.show_store = true;
    b.s.handle_changed(b.now);
    assert_eq!(b.drain(), vec!["store Read"]);
    assert_eq!(b.s.phase(), Phase::Empty, "an empty store leaves it empty");
    // Another process logs in: b takes its tokens up at the notification.
    let mut a = Sim::logged_in(Some(3600));
    b.store = a.store.clone();
    b.s.handle_changed(b.now);
    let out = b.drain();
    assert_eq!(
        out,
        vec![
            "store Read".to_string(),
            format!("event adopted {}", b.s.generation())
        ]
    );
    assert_eq!(b.s.phase(), Phase::Valid);
    let z = b.send();
    assert_eq!(z.generation(), b.s.generation());
    // And follows that login from then on: a's logout logs b out.
    a.s.logout(a.now);
    a.drain();
    b.s.handle_changed(b.now);
    b.drain();
    assert_eq!(b.s.phase(), Phase::LoggedOut);
}
