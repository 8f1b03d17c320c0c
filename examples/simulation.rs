//! The core on its own: no HTTP client, no runtime, no clock. A hand-written loop plays
//! the network and the token endpoint, moves time by arithmetic, and prints every command
//! the machine emits: a storm of 401s, one refresh that fails (503 with Retry-After), the
//! backoff, the retry, and every waiter resumed. Store operations (the refresh lease, the
//! re-read, the compare-and-swap) are answered at once from a `MemoryStore`.
//!
//! ```sh
//! cargo run --example simulation
//! ```

use http::{HeaderMap, StatusCode, Uri};
use reauth::{
    AccessToken, Admission, Command, Config, Event, MemoryStore, Origin, RefreshError,
    RefreshErrorKind, RefreshOutcome, RefreshToken, Session, StoreCommand, StoreReply, TokenSet,
    TokenStore, Verdict,
};
use std::time::{Duration, Instant, SystemTime};

fn drain(
    session: &mut Session,
    store: &MemoryStore,
    t0: Instant,
    now: Instant,
    refresh: &mut Option<reauth::RefreshId>,
) {
    // The wall clock, by arithmetic too.
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + (now - t0);
    while let Some(command) = session.poll_command() {
        let at = now.duration_since(t0).as_millis();
        match &command {
            Command::Store { id, op } => {
                println!("{at:>6} ms  store: {}", describe(op));
                let outcome = match op {
                    StoreCommand::Lease { lineage, ttl } => {
                        store.lease(*lineage, *ttl).map(StoreReply::Lease)
                    }
                    StoreCommand::Read => store.read().map(StoreReply::Read),
                    StoreCommand::Write { expect, record } => store
                        .compare_and_swap(*expect, &(**record).clone().saved(now, wall))
                        .map(StoreReply::Swap),
                    StoreCommand::Release { lineage, lease } => store
                        .release(*lineage, *lease)
                        .map(|()| StoreReply::Released),
                    other => unreachable!("{other:?}"),
                };
                session.handle_store(now, wall, *id, outcome);
            }
            Command::StartRefresh { id, .. } => {
                println!("{at:>6} ms  start refresh {id}");
                *refresh = Some(*id);
            }
            Command::Resume { waiter, attempt } => {
                println!(
                    "{at:>6} ms  resume {waiter} with {} (replay: {})",
                    attempt.generation(),
                    attempt.is_replay()
                )
            }
            Command::Fail { waiter, error } => println!("{at:>6} ms  fail {waiter}: {error}"),
            Command::Event(Event::RefreshFailed {
                error,
                attempt,
                retry_at,
                ..
            }) => println!(
                "{at:>6} ms  event: refresh failed (attempt {attempt}): {error}; retry in {:?}",
                retry_at.map(|r| r.duration_since(now))
            ),
            Command::Event(Event::Refreshed { generation, .. }) => {
                println!("{at:>6} ms  event: refreshed, now at {generation}")
            }
            Command::Event(e) => println!("{at:>6} ms  event {e:?}"),
            other => println!("{at:>6} ms  {other:?}"),
        }
    }
}

fn describe(op: &StoreCommand) -> String {
    match op {
        StoreCommand::Lease { .. } => "take the refresh lease".into(),
        StoreCommand::Read => "re-read the record".into(),
        StoreCommand::Write { record, .. } if record.tokens().is_some() => {
            format!("write the tokens as version {}", record.version)
        }
        StoreCommand::Write { record, .. } => {
            format!("write a tombstone, version {}", record.version)
        }
        StoreCommand::Release { .. } => "release the lease".into(),
        other => format!("{other:?}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut session = Session::new(Config::new(Origin::parse("https://api.example.com")?));
    let store = MemoryStore::new();
    let t0 = Instant::now();
    let mut now = t0;
    let mut refresh = None;
    session.login(
        now,
        TokenSet::new(AccessToken::new("access-1")?)
            .with_refresh_token(RefreshToken::new("refresh-1")?)
            .with_expires_in(Duration::from_secs(3600)),
    );
    drain(&mut session, &store, t0, now, &mut refresh);

    // Five requests go out; the server has revoked the token and answers 401 to all.
    let uri: Uri = "https://api.example.com/items".parse()?;
    let mut sent = Vec::new();
    for _ in 0..5 {
        if let Admission::Send(a) = session.begin_request(now, &uri) {
            sent.push(a);
        }
    }
    now += Duration::from_millis(40);
    for attempt in &sent {
        if let Verdict::Wait(w) = session.handle_response(
            now,
            attempt,
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            true,
        ) {
            println!(
                "{:>6} ms  401 -> {w} waits",
                now.duration_since(t0).as_millis()
            );
        }
        drain(&mut session, &store, t0, now, &mut refresh);
    }

    // The token endpoint is overloaded: 503, Retry-After: 2.
    now += Duration::from_millis(30);
    let failure = RefreshError::transient(RefreshErrorKind::Status { status: 503 })
        .with_retry_after(Duration::from_secs(2));
    session.handle_refresh(
        now,
        refresh.take().expect("a refresh"),
        RefreshOutcome::Failed(failure),
    );
    drain(&mut session, &store, t0, now, &mut refresh);

    // Sleep until the next deadline (the backoff), as a real loop would.
    let deadline = session.poll_timeout().expect("a backoff deadline");
    now = deadline;
    session.handle_timeout(now);
    drain(&mut session, &store, t0, now, &mut refresh);

    // This time the endpoint answers with rotated tokens.
    now += Duration::from_millis(25);
    let tokens = TokenSet::new(AccessToken::new("access-2")?)
        .with_refresh_token(RefreshToken::new("refresh-2")?)
        .with_expires_in(Duration::from_secs(3600));
    session.handle_refresh(
        now,
        refresh.take().expect("a retry"),
        RefreshOutcome::Success(tokens),
    );
    drain(&mut session, &store, t0, now, &mut refresh);
    println!(
        "phase: {:?}; next deadline in {:?}",
        session.phase(),
        session.poll_timeout().map(|t| t - now)
    );
    Ok(())
}
