//! The core on its own: no HTTP client, no runtime, no clock. A hand-written loop plays
//! the network and the token endpoint, moves time by arithmetic, and prints every command
//! the machine emits: a storm of 401s, one refresh that fails (503 with Retry-After), the
//! backoff, the retry, and every waiter resumed.
//!
//! ```sh
//! cargo run --example simulation
//! ```

use http::{HeaderMap, StatusCode, Uri};
use reauth::{
    AccessToken, Admission, Command, Config, Event, Origin, RefreshError, RefreshErrorKind,
    RefreshOutcome, RefreshToken, Session, TokenSet, Verdict,
};
use std::time::{Duration, Instant};

fn drain(
    session: &mut Session,
    t0: Instant,
    now: Instant,
    refresh: &mut Option<reauth::RefreshId>,
) {
    while let Some(command) = session.poll_command() {
        let at = now.duration_since(t0).as_millis();
        match &command {
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
            Command::Persist(_) => println!("{at:>6} ms  persist the new tokens"),
            Command::Forget => println!("{at:>6} ms  forget the tokens"),
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut session = Session::new(Config::new(Origin::parse("https://api.example.com")?));
    let t0 = Instant::now();
    let mut now = t0;
    let mut refresh = None;
    session.login(
        now,
        TokenSet::new(AccessToken::new("access-1")?)
            .with_refresh_token(RefreshToken::new("refresh-1")?)
            .with_expires_in(Duration::from_secs(3600)),
    );
    drain(&mut session, t0, now, &mut refresh);

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
        if let Verdict::Wait(w) =
            session.handle_response(now, attempt, StatusCode::UNAUTHORIZED, &HeaderMap::new())
        {
            println!(
                "{:>6} ms  401 -> {w} waits",
                now.duration_since(t0).as_millis()
            );
        }
        drain(&mut session, t0, now, &mut refresh);
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
    drain(&mut session, t0, now, &mut refresh);

    // Sleep until the next deadline (the backoff), as a real loop would.
    let deadline = session.poll_timeout().expect("a backoff deadline");
    now = deadline;
    session.handle_timeout(now);
    drain(&mut session, t0, now, &mut refresh);

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
    drain(&mut session, t0, now, &mut refresh);
    println!(
        "phase: {:?}; next deadline in {:?}",
        session.phase(),
        session.poll_timeout().map(|t| t - now)
    );
    Ok(())
}
