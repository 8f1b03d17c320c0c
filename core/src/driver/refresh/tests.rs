use super::*;
use crate::store::MemoryStore;
use crate::token::{AccessToken, TokenSet};
use crate::{Config, Origin, Session};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A store shared "between processes": it has a lock and records every call, with
/// whether the lock was held at that moment.
#[derive(Default)]
struct SharedStore {
    saved: Mutex<Option<SavedTokens>>,
    log: Arc<Mutex<Vec<String>>>,
    held: Arc<Mutex<bool>>,
    lock_times_out: bool,
}

struct Held(Arc<Mutex<bool>>, Arc<Mutex<Vec<String>>>);

impl RefreshLock for Held {}

impl Drop for Held {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = false;
        self.1.lock().unwrap().push("unlock".into());
    }
}

impl SharedStore {
    fn holding(tokens: SavedTokens) -> Self {
        let s = Self::default();
        *s.saved.lock().unwrap() = Some(tokens);
        s
    }

    fn note(&self, what: &str) {
        let held = *self.held.lock().unwrap();
        let line = if held {
            format!("{what} locked")
        } else {
            what.to_owned()
        };
        self.log.lock().unwrap().push(line);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn refresh_token(&self) -> Option<String> {
        let saved = self.saved.lock().unwrap();
        saved
            .as_ref()
            .and_then(|s| s.refresh_token.as_ref().map(|r| r.secret().to_owned()))
    }
}

impl TokenStore for SharedStore {
    fn load(&self) -> Result<Option<SavedTokens>, StoreError> {
        self.note("load");
        Ok(self.saved.lock().unwrap().clone())
    }

    fn save(&self, tokens: &SavedTokens) -> Result<(), StoreError> {
        self.note("save");
        *self.saved.lock().unwrap() = Some(tokens.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.note("clear");
        *self.saved.lock().unwrap() = None;
        Ok(())
    }

    fn lock_refresh(&self, _wait: Duration) -> Result<Option<Box<dyn RefreshLock>>, StoreError> {
        if self.lock_times_out {
            return Err(StoreError::with_kind(StoreErrorKind::LockTimeout, "held"));
        }
        self.note("lock");
        *self.held.lock().unwrap() = true;
        Ok(Some(Box::new(Held(self.held.clone(), self.log.clone()))))
    }
}

fn rt(s: &str) -> RefreshToken {
    RefreshToken::new(s).unwrap()
}

fn saved(access: &str, refresh: &str, expires_at: Option<SystemTime>) -> SavedTokens {
    SavedTokens {
        access_token: AccessToken::new(access).unwrap(),
        refresh_token: Some(rt(refresh)),
        expires_at,
        scope: Some("read".into()),
    }
}

fn success(access: &str, refresh: Option<&str>) -> RefreshOutcome {
    let mut set =
        TokenSet::new(AccessToken::new(access).unwrap()).with_expires_in(Duration::from_secs(3600));
    if let Some(r) = refresh {
        set = set.with_refresh_token(rt(r));
    }
    RefreshOutcome::Success(set)
}

fn tokens(done: &RefreshDone) -> &TokenSet {
    match done.outcome() {
        RefreshOutcome::Success(set) => set,
        other => panic!("not a success: {other:?}"),
    }
}

const WAIT: Duration = Duration::from_secs(1);

fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn proceed(start: RefreshStart) -> RefreshGuard {
    match start {
        RefreshStart::Proceed(g) => g,
        RefreshStart::Done(d) => panic!("expected to proceed, got {d:?}"),
    }
}

#[test]
fn saves_the_rotated_tokens_before_releasing_the_lock() {
    let store = SharedStore::holding(saved("a1", "r1", Some(wall())));
    let guard = proceed(begin_refresh(&store, Some(rt("r1")), WAIT, wall));
    assert!(guard.is_locked());
    assert_eq!(guard.refresh_token(), Some(&rt("r1")));
    let done = finish_refresh(&store, guard, success("a2", Some("r2")), wall());
    assert!(done.store_done() && !done.adopted());
    assert_eq!(
        store.log(),
        [
            "lock",
            "load locked",
            "load locked",
            "save locked",
            "unlock"
        ]
    );
    let stored = store.saved.lock().unwrap().clone().unwrap();
    assert_eq!(stored.refresh_token, Some(rt("r2")));
    // The expiry is absolute, the scope kept from before.
    assert_eq!(stored.expires_at, Some(wall() + Duration::from_secs(3600)));
    assert_eq!(stored.scope.as_deref(), Some("read"));
}

#[test]
fn adopts_tokens_another_process_rotated() {
    let later = wall() + Duration::from_secs(600);
    let store = SharedStore::holding(saved("a2", "r2", Some(later)));
    let RefreshStart::Done(done) = begin_refresh(&store, Some(rt("r1")), WAIT, wall) else {
        panic!("expected adoption")
    };
    assert!(done.adopted() && done.store_done());
    let set = tokens(&done);
    assert_eq!(set.access_token().secret(), "a2");
    assert_eq!(set.refresh_token(), Some(&rt("r2")));
    assert_eq!(set.expires_in(), Some(Duration::from_secs(600)));
    assert_eq!(store.log(), ["lock", "load locked", "unlock"]);
}

#[test]
fn an_expired_rotation_is_refreshed_with_the_newest_refresh_token() {
    let store = SharedStore::holding(saved("a2", "r2", Some(wall())));
    let guard = proceed(begin_refresh(&store, Some(rt("r1")), WAIT, wall));
    assert_eq!(guard.refresh_token(), Some(&rt("r2")));
    // The response carries no refresh token: the presented one is kept, not the
    // session's stale r1.
    let done = finish_refresh(&store, guard, success("a3", None), wall());
    assert_eq!(tokens(&done).refresh_token(), Some(&rt("r2")));
    assert_eq!(store.refresh_token().as_deref(), Some("r2"));
}

#[test]
fn a_permanent_failure_clears_the_store_under_the_lock() {
    let store = SharedStore::holding(saved("a1", "r1", None));
    let guard = proceed(begin_refresh(&store, Some(rt("r1")), WAIT, wall));
    let dead = RefreshOutcome::Failed(RefreshError::permanent(RefreshErrorKind::OAuth {
        code: "invalid_grant".into(),
    }));
    let done = finish_refresh(&store, guard, dead, wall());
    assert!(matches!(done.outcome(), RefreshOutcome::Failed(e) if e.is_permanent()));
    assert!(done.store_done());
    assert_eq!(store.log().last().map(String::as_str), Some("unlock"));
    assert!(store.log().contains(&"clear locked".to_owned()));
    assert_eq!(store.refresh_token(), None);
}

#[test]
fn a_transient_failure_leaves_the_store_alone() {
    let store = SharedStore::holding(saved("a1", "r1", None));
    let guard = proceed(begin_refresh(&store, Some(rt("r1")), WAIT, wall));
    let busy = RefreshOutcome::Failed(RefreshError::transient(RefreshErrorKind::Network));
    let done = finish_refresh(&store, guard, busy, wall());
    assert!(!done.store_done());
    assert_eq!(store.refresh_token().as_deref(), Some("r1"));
    assert!(!store.log().iter().any(|l| l.starts_with("save")));
}

#[test]
fn a_write_without_the_lock_during_the_refresh_wins() {
    // A login elsewhere wrote new tokens while this refresh was on the wire.
    let store = SharedStore::holding(saved("a1", "r1", None));
    let guard = proceed(begin_refresh(&store, Some(rt("r1")), WAIT, wall));
    *store.saved.lock().unwrap() = Some(saved("login-a", "login-r", None));
    let done = finish_refresh(&store, guard, success("a2", Some("r2")), wall());
    assert!(done.adopted());
    assert_eq!(tokens(&done).refresh_token(), Some(&rt("login-r")));
    assert_eq!(store.refresh_token().as_deref(), Some("login-r"));

    // An invalid_grant is not final either when new tokens appeared meanwhile.
    let guard = proceed(begin_refresh(&store, Some(rt("login-r")), WAIT, wall));
    *store.saved.lock().unwrap() = Some(saved("b", "rb", None));
    let dead = RefreshOutcome::Failed(RefreshError::permanent(RefreshErrorKind::OAuth {
        code: "invalid_grant".into(),
    }));
    let done = finish_refresh(&store, guard, dead, wall());
    assert_eq!(tokens(&done).refresh_token(), Some(&rt("rb")));

    // A logout elsewhere during the refresh: the new tokens are not written back.
    let guard = proceed(begin_refresh(&store, Some(rt("rb")), WAIT, wall));
    *store.saved.lock().unwrap() = None;
    let done = finish_refresh(&store, guard, success("c", Some("rc")), wall());
    assert!(matches!(done.outcome(), RefreshOutcome::Failed(e) if e.is_permanent()));
    assert_eq!(store.refresh_token(), None);
}

#[test]
fn an_empty_store_is_refreshed_into() {
    let store = SharedStore::default();
    let guard = proceed(begin_refresh(&store, Some(rt("r1")), WAIT, wall));
    let done = finish_refresh(&store, guard, success("a2", Some("r2")), wall());
    assert!(done.store_done());
    assert_eq!(store.refresh_token().as_deref(), Some("r2"));
}

#[test]
fn a_lock_timeout_is_a_transient_store_failure() {
    let store = SharedStore {
        lock_times_out: true,
        ..SharedStore::default()
    };
    let RefreshStart::Done(done) = begin_refresh(&store, Some(rt("r1")), WAIT, wall) else {
        panic!("expected a failure")
    };
    match done.outcome() {
        RefreshOutcome::Failed(e) => {
            assert!(!e.is_permanent());
            assert_eq!(e.kind(), &RefreshErrorKind::Store);
        }
        other => panic!("{other:?}"),
    }
    assert!(done.lock_busy());
    assert_eq!(done.store_errors().len(), 1);
    assert!(store.log().is_empty());
}

#[test]
fn a_store_without_a_lock_is_left_to_the_session() {
    let store = MemoryStore::new();
    store.save(&saved("a9", "r9", None)).unwrap();
    let guard = proceed(begin_refresh(&store, Some(rt("r1")), WAIT, wall));
    assert!(!guard.is_locked());
    // Not even read: the session's token is presented as before.
    assert_eq!(guard.refresh_token(), Some(&rt("r1")));
    let done = finish_refresh(&store, guard, success("a2", None), wall());
    assert!(!done.store_done());
    assert_eq!(tokens(&done).refresh_token(), Some(&rt("r1")));
    assert_eq!(store.load().unwrap().unwrap().refresh_token, Some(rt("r9")));
}

#[test]
fn the_hub_skips_the_store_write_the_refresh_already_made() {
    let mut hub: super::super::Hub<()> = super::super::Hub::new(Session::new(Config::new(
        Origin::parse("https://api.test").unwrap(),
    )));
    let t0 = Instant::now();
    let set = TokenSet::new(AccessToken::new("a1").unwrap())
        .with_refresh_token(rt("r1"))
        .with_expires_in(Duration::ZERO);
    // Loaded from the store: not written back; already expired, so a refresh starts.
    hub.restore(t0, set);
    let fx = hub.drain(t0, wall);
    assert!(fx.store.is_empty(), "{fx:?}");
    let [(id, Some(ref token))] = fx.refreshes[..] else {
        panic!("{fx:?}")
    };
    let store = SharedStore::holding(saved("a1", "r1", Some(wall())));
    let done = run_refresh(&store, Some(token.clone()), WAIT, wall, |presented| {
        assert_eq!(presented, Some(rt("r1")));
        success("a2", Some("r2"))
    });
    hub.refresh_finished(t0, id, done);
    let fx = hub.drain(t0, wall);
    assert!(fx.store.is_empty(), "{fx:?}");
    assert_eq!(fx.events.len(), 1);
    // The next store command is carried out again.
    hub.session_mut().logout(t0);
    let fx = hub.drain(t0, wall);
    assert!(matches!(&fx.store[..], [super::super::StoreOp::Clear]));
}
