//! Core benchmarks: the fast path against the tutorials' pattern, and a storm of waiters
//! queued behind one refresh. Run with `cargo bench -p reauth-core --bench machine`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use reauth_core::check::answer;
use reauth_core::{
    AccessToken, Admission, Command, Config, MemoryStore, Origin, RefreshId, RefreshOutcome,
    RefreshToken, Session, TokenSet, Verdict,
};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

const TOKEN: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCIsImV4cCI6NDEwMjQ0NDgwMH0.c2lnbmF0dXJlLWJ5dGVz";

fn tokens() -> TokenSet {
    TokenSet::new(AccessToken::new(TOKEN).unwrap())
        .with_refresh_token(RefreshToken::new("refresh-token").unwrap())
        .with_expires_in(Duration::from_secs(3600))
}

fn session(now: Instant) -> Session {
    let mut s = Session::new(Config::new(
        Origin::parse("https://api.example.com").unwrap(),
    ));
    s.login(now, tokens());
    drain(&mut s, &MemoryStore::new(), now);
    s
}

/// Carries out every command, store operations answered at once from `store`. Returns
/// the refresh started, if any, and how many waiters resumed.
fn drain(s: &mut Session, store: &MemoryStore, now: Instant) -> (Option<RefreshId>, u64) {
    let (mut refresh, mut resumed) = (None, 0);
    while let Some(c) = s.poll_command() {
        match c {
            Command::Store { id, op } => {
                let wall = SystemTime::now();
                s.handle_store(now, wall, id, answer(store, &op, now, wall));
            }
            Command::StartRefresh { id, .. } => refresh = Some(id),
            Command::Resume { attempt, .. } => {
                black_box(attempt.header_value());
                resumed += 1;
            }
            other => {
                black_box(other);
            }
        }
    }
    (refresh, resumed)
}

fn fast_path(c: &mut Criterion) {
    let uri: Uri = "https://api.example.com/v1/items/42".parse().unwrap();
    let headers = HeaderMap::new();
    let now = Instant::now();
    let mut g = c.benchmark_group("fast_path");

    // The tutorials' pattern: read the token under a mutex, format the header, parse it.
    let stored = Mutex::new(TOKEN.to_string());
    g.bench_function("tutorial_mutex_format_parse", |b| {
        b.iter(|| {
            let token = stored.lock().unwrap().clone();
            let header = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
            black_box(header)
        })
    });

    let mut s = session(now);
    g.bench_function("session_begin_and_200", |b| {
        b.iter(|| {
            let Admission::Send(a) = s.begin_request(now, black_box(&uri)) else {
                unreachable!()
            };
            let header = a.header_value().clone();
            let v = s.handle_response(now, &a, StatusCode::OK, &headers, true);
            debug_assert!(matches!(v, Verdict::Done));
            black_box((header, v))
        })
    });

    // What an adapter does: the same under a short mutex, locked once per call.
    let shared = Mutex::new(session(now));
    g.bench_function("session_in_mutex_begin_and_200", |b| {
        b.iter(|| {
            let a = match shared.lock().unwrap().begin_request(now, black_box(&uri)) {
                Admission::Send(a) => a,
                _ => unreachable!(),
            };
            let header = a.header_value().clone();
            let v = shared
                .lock()
                .unwrap()
                .handle_response(now, &a, StatusCode::OK, &headers, true);
            black_box((header, v))
        })
    });
    g.finish();
}

/// A session in the Refreshing phase with `n` waiters queued behind one refresh.
fn queued(n: u64, now: Instant, uri: &Uri) -> (Session, MemoryStore, RefreshId) {
    let mut s = session(now);
    let store = MemoryStore::new();
    let later = now + Duration::from_secs(3595); // past the leeway: requests must wait
    for _ in 0..n {
        let _ = s.begin_request(later, uri);
    }
    let (id, _) = drain(&mut s, &store, later);
    (s, store, id.expect("one refresh started"))
}

fn storm(c: &mut Criterion) {
    let uri: Uri = "https://api.example.com/v1/items/42".parse().unwrap();
    let now = Instant::now();
    let mut g = c.benchmark_group("storm");
    for n in [1_000u64, 1_000_000] {
        if n >= 1_000_000 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Elements(n));
        // Queue n waiters, then resume them all with one successful refresh.
        g.bench_function(format!("queue_and_resume/{n}"), |b| {
            b.iter_batched(
                || (session(now), MemoryStore::new()),
                |(mut s, store)| {
                    let later = now + Duration::from_secs(3595);
                    for _ in 0..n {
                        let _ = s.begin_request(later, &uri);
                    }
                    let (id, _) = drain(&mut s, &store, later);
                    s.handle_refresh(later, id.unwrap(), RefreshOutcome::Success(tokens()));
                    let (_, resumed) = drain(&mut s, &store, later);
                    assert_eq!(resumed, n);
                    s
                },
                BatchSize::PerIteration,
            )
        });
        // Only the resume half: one refresh outcome wakes n queued waiters.
        g.bench_function(format!("resume_only/{n}"), |b| {
            b.iter_batched(
                || queued(n, now, &uri),
                |(mut s, store, id)| {
                    let later = now + Duration::from_secs(3596);
                    s.handle_refresh(later, id, RefreshOutcome::Success(tokens()));
                    drain(&mut s, &store, later);
                    s
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, fast_path, storm);
criterion_main!(benches);
