//! Bytes per waiter in a storm: heap held by the session while N requests wait behind one
//! refresh, and the peak while they are resumed. Run with
//! `cargo bench -p reauth-core --bench storm_memory`.

use http::Uri;
use reauth_core::check::answer;
use reauth_core::{
    AccessToken, Command, Config, MemoryStore, Origin, RefreshOutcome, RefreshToken, Session,
    TokenSet,
};
use std::time::{Duration, Instant, SystemTime};

// dhat counts every allocation, so the figure is measured, not estimated.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn tokens() -> TokenSet {
    TokenSet::new(AccessToken::new("access-token").unwrap())
        .with_refresh_token(RefreshToken::new("refresh-token").unwrap())
        .with_expires_in(Duration::from_secs(3600))
}

/// Carries out every command, store operations answered at once; counts resumes.
fn drain(s: &mut Session, store: &MemoryStore, now: Instant) -> u64 {
    let mut resumed = 0;
    while let Some(c) = s.poll_command() {
        match c {
            Command::Store { id, op } => {
                let wall = SystemTime::now();
                s.handle_store(now, wall, id, answer(store, &op, now, wall));
            }
            Command::Resume { .. } => resumed += 1,
            _ => {}
        }
    }
    resumed
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let _profiler = dhat::Profiler::builder().testing().build();
    let uri: Uri = "https://api.example.com/v1/items/42".parse().unwrap();
    println!("waiters      held bytes/waiter   peak bytes/waiter (queue + resume)");
    for n in [1_000u64, 10_000, 100_000, 1_000_000] {
        let now = Instant::now();
        let mut s = Session::new(Config::new(
            Origin::parse("https://api.example.com").unwrap(),
        ));
        let store = MemoryStore::new();
        s.login(now, tokens());
        drain(&mut s, &store, now);
        let later = now + Duration::from_secs(3595);
        let base = dhat::HeapStats::get();
        for _ in 0..n {
            let _ = s.begin_request(later, &uri);
        }
        drain(&mut s, &store, later);
        let held = dhat::HeapStats::get().curr_bytes - base.curr_bytes;
        let id = s.refresh_in_flight().unwrap();
        s.handle_refresh(later, id, RefreshOutcome::Success(tokens()));
        let resumed = drain(&mut s, &store, later);
        assert_eq!(resumed, n);
        let peak = dhat::HeapStats::get().max_bytes - base.curr_bytes;
        println!(
            "{n:>9} {:>16.1} {:>19.1}",
            held as f64 / n as f64,
            peak as f64 / n as f64
        );
        drop(s);
    }
}
