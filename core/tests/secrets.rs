//! No token text in `Debug` or `Display` of any type that holds one.

mod support;

use reauth_core::{Admission, Command, StoreCommand, Verdict};
use support::*;

const ACCESS: &str = "ACCESS-SECRET-a1b2c3";
const REFRESH: &str = "REFRESH-SECRET-d4e5f6";
const ROTATED: &str = "ROTATED-SECRET-g7h8i9";

fn assert_clean(what: &str, text: &str) {
    for secret in [ACCESS, REFRESH, ROTATED, "SECRET"] {
        assert!(!text.contains(secret), "{what} shows a token: {text}");
    }
}

#[test]
fn debug_and_display_never_show_token_text() {
    let mut sim = Sim::new(config());
    let tokens = set(ACCESS, Some(REFRESH), Some(3600));
    assert_clean("TokenSet", &format!("{tokens:?}"));
    assert_clean("AccessToken", &format!("{:?}", tokens.access_token()));
    assert_clean("RefreshToken", &format!("{:?}", tokens.refresh_token()));
    sim.s.login(sim.now, tokens);
    let mut seen = Vec::new();
    while let Some(c) = sim.poll() {
        seen.push(c);
    }
    let a = sim.send();
    assert_clean("Attempt", &format!("{a:?}"));
    assert_clean("Credential", &format!("{:?}", a.credential()));
    assert_clean("HeaderValue", &format!("{:?}", a.header_value()));
    assert!(a.header_value().is_sensitive());
    assert_eq!(
        a.header_value().to_str().unwrap(),
        format!("Bearer {ACCESS}")
    );
    assert_clean("Admission", &format!("{:?}", sim.begin()));
    let v = sim.respond(&a, 401);
    assert!(matches!(v, Verdict::Wait(_)));
    assert_clean("Verdict", &format!("{v:?}"));
    // The session itself, with a refresh pending and waiters queued.
    assert_clean("Session", &format!("{:?}", sim.s));
    while let Some(c) = sim.poll() {
        seen.push(c);
    }
    let id = sim.s.refresh_in_flight().unwrap();
    sim.s.handle_refresh(
        sim.now,
        id,
        ok("ROTATED-SECRET-g7h8i9", Some(ROTATED), None),
    );
    while let Some(c) = sim.poll() {
        seen.push(c);
    }
    let writes = |c: &Command| match c {
        Command::Store {
            op: StoreCommand::Write { record, .. },
            ..
        } => record.tokens().cloned(),
        _ => None,
    };
    assert!(seen.iter().any(|c| writes(c).is_some()));
    assert!(seen
        .iter()
        .any(|c| matches!(c, Command::StartRefresh { .. })));
    for c in &seen {
        assert_clean("Command", &format!("{c:?}"));
        if let Some(stored) = writes(c) {
            assert_clean("StoredTokens", &format!("{stored:?}"));
            assert_clean("TokenSet", &format!("{:?}", stored.to_token_set(sim.now)));
        }
    }
    assert_clean("Snapshot", &format!("{:?}", sim.s.snapshot()));
    sim.s.logout(sim.now);
    while let Some(c) = sim.poll() {
        assert_clean("Command", &format!("{c:?}"));
    }
    if let Admission::Reject(e) = sim.begin() {
        assert_clean("Error", &format!("{e:?} {e}"));
    } else {
        panic!("expected a rejection");
    }
}
