//! The committed seed corpus: every file runs through its target's checks, and the
//! `machine` seeds are exactly the named schedules below (so they stay meaningful if the
//! encoding of `Op` changes: regenerate them with
//! `cargo +nightly test --manifest-path fuzz/Cargo.toml --test corpus -- --ignored`).

use arbitrary::{Arbitrary, Unstructured};
use reauth_core::check::Op;
use reauth_fuzz::machine::{self, encode, MachineInput, Tweaks};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("{target}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("readable"))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "{target}: only {} seeds", out.len());
    out
}

fn run_all(target: &str, run: fn(&[u8])) {
    for (name, data) in files(target) {
        eprintln!("{target}/{name}");
        run(&data);
    }
}

#[test]
fn token_response_seeds() {
    run_all("token_response", reauth_fuzz::token_response::run);
}

#[test]
fn challenge_seeds() {
    run_all("challenge", reauth_fuzz::challenge::run);
}

#[test]
fn custom_protocol_seeds() {
    run_all("custom_protocol", reauth_fuzz::custom_protocol::run);
}

#[test]
fn store_file_seeds() {
    run_all("store_file", reauth_fuzz::store_file::run);
}

#[test]
fn sim_seeds() {
    run_all("sim", reauth_fuzz::sim::run);
}

#[test]
fn machine_seeds() {
    run_all("machine", machine::run);
}

const LOGIN: Op = Op::Login {
    lifetime_secs: Some(3600),
    refresh_token: true,
};

fn ok(lifetime: u16, rotate: bool) -> Op {
    Op::RefreshOk {
        stale: 0,
        lifetime_secs: Some(lifetime),
        rotate,
    }
}

fn tweaks() -> Tweaks {
    Tweaks {
        seed: 7,
        attempts: 3,
        log_out: false,
        requires_refresh_token: true,
        leeway_secs: 10,
        window_secs: 30,
        refresh_timeout_ms: 30_000,
        waiter_timeout_ms: 45_000,
        base_ms: 250,
        cap_ms: 30_000,
        max_retry_after_ms: 300_000,
    }
}

/// The machine seeds: name and schedule.
fn schedules() -> Vec<(&'static str, MachineInput)> {
    let plain = |ops: Vec<Op>| MachineInput {
        tweaks: None,
        login_first: false,
        ops,
    };
    vec![
        (
            // Found by the fuzzer: a zero refresh timeout makes store answers set a
            // deadline that is already due.
            "regression-zero-refresh-timeout",
            MachineInput {
                tweaks: Some(Tweaks {
                    seed: 10_696_804_097_392_903,
                    attempts: 250,
                    log_out: true,
                    requires_refresh_token: false,
                    leeway_secs: 0,
                    window_secs: 1,
                    refresh_timeout_ms: 0,
                    waiter_timeout_ms: 524_288,
                    base_ms: 1,
                    cap_ms: 1_073_741_824,
                    max_retry_after_ms: 2_863_311_617,
                }),
                login_first: false,
                ops: vec![
                    Op::Advance { millis: 16_804_522 },
                    Op::Begin { count: 3 },
                    Op::RefreshTransient {
                        stale: 0,
                        retry_after_ms: None,
                    },
                    Op::Begin { count: 1 },
                ],
            },
        ),
        (
            "invalidate-stale-then-current",
            plain(vec![
                LOGIN,
                Op::Begin { count: 3 },
                ok(3600, true),
                Op::Invalidate { stale: true },
                Op::Invalidate { stale: false },
                Op::Invalidate { stale: false },
                Op::Begin { count: 4 },
                ok(3600, true),
                Op::RespondAll {
                    unauthorized: false,
                },
            ]),
        ),
        (
            "storm-100-401s-one-refresh",
            plain(vec![
                LOGIN,
                Op::Begin { count: 100 },
                Op::RespondAll { unauthorized: true },
                ok(3600, true),
                Op::RespondAll {
                    unauthorized: false,
                },
            ]),
        ),
        (
            "stale-401-replays",
            plain(vec![
                LOGIN,
                Op::Begin { count: 5 },
                Op::Respond { pick: 0, status: 1 },
                ok(3600, false),
                Op::RespondAll { unauthorized: true },
                Op::RespondAll {
                    unauthorized: false,
                },
            ]),
        ),
        (
            "replay-401-fails-unauthorized",
            plain(vec![
                LOGIN,
                Op::Begin { count: 3 },
                Op::RespondAll { unauthorized: true },
                ok(3600, true),
                Op::RespondAll { unauthorized: true },
            ]),
        ),
        (
            "transient-backoff-retry-after",
            plain(vec![
                LOGIN,
                Op::Begin { count: 3 },
                Op::RespondAll { unauthorized: true },
                Op::RefreshTransient {
                    stale: 0,
                    retry_after_ms: Some(1000),
                },
                Op::AdvanceToDeadline,
                Op::RefreshTransient {
                    stale: 0,
                    retry_after_ms: None,
                },
                Op::AdvanceToDeadline,
                ok(3600, true),
                Op::RespondAll {
                    unauthorized: false,
                },
            ]),
        ),
        (
            "permanent-failure-logs-out",
            plain(vec![
                LOGIN,
                Op::Begin { count: 10 },
                Op::RespondAll { unauthorized: true },
                Op::RefreshPermanent { stale: 0 },
                Op::Begin { count: 1 },
                ok(3600, true),
                LOGIN,
                Op::Begin { count: 1 },
            ]),
        ),
        (
            "proactive-refresh-in-stale-window",
            plain(vec![
                Op::Login {
                    lifetime_secs: Some(120),
                    refresh_token: true,
                },
                Op::Advance { millis: 55_000 },
                Op::Begin { count: 2 },
                Op::RespondAll {
                    unauthorized: false,
                },
                Op::Advance { millis: 60_000 },
                Op::Begin { count: 2 },
                ok(120, true),
                Op::RespondAll {
                    unauthorized: false,
                },
            ]),
        ),
        (
            "cancel-and-waiter-timeout",
            plain(vec![
                LOGIN,
                Op::Begin { count: 20 },
                Op::RespondAll { unauthorized: true },
                Op::Cancel { pick: 3 },
                Op::Cancel { pick: 7 },
                Op::Advance { millis: 50_000 },
                ok(3600, true),
                Op::Begin { count: 2 },
            ]),
        ),
        (
            "late-outcome-after-logout-and-login",
            plain(vec![
                LOGIN,
                Op::Begin { count: 4 },
                Op::RespondAll { unauthorized: true },
                Op::Logout,
                ok(3600, true),
                LOGIN,
                Op::Begin { count: 1 },
                Op::RefreshOk {
                    stale: 1,
                    lifetime_secs: None,
                    rotate: true,
                },
            ]),
        ),
        (
            "client-credentials-from-empty",
            MachineInput {
                tweaks: Some(Tweaks {
                    requires_refresh_token: false,
                    ..tweaks()
                }),
                login_first: false,
                ops: vec![
                    Op::Begin { count: 5 },
                    Op::BeginForeign,
                    ok(60, false),
                    Op::RespondAll {
                        unauthorized: false,
                    },
                    Op::Advance { millis: 61_000 },
                    Op::Begin { count: 1 },
                ],
            },
        ),
        (
            "attempts-exhausted-log-out",
            MachineInput {
                tweaks: Some(Tweaks {
                    attempts: 2,
                    log_out: true,
                    ..tweaks()
                }),
                login_first: true,
                ops: vec![
                    Op::Begin { count: 8 },
                    Op::RespondAll { unauthorized: true },
                    Op::RefreshTransient {
                        stale: 0,
                        retry_after_ms: Some(500),
                    },
                    Op::AdvanceToDeadline,
                    Op::RefreshTransient {
                        stale: 0,
                        retry_after_ms: None,
                    },
                    Op::Begin { count: 1 },
                ],
            },
        ),
        (
            "zero-timeouts",
            MachineInput {
                tweaks: Some(Tweaks {
                    refresh_timeout_ms: 0,
                    waiter_timeout_ms: 0,
                    base_ms: 0,
                    ..tweaks()
                }),
                login_first: true,
                ops: vec![
                    Op::Begin { count: 3 },
                    Op::RespondAll { unauthorized: true },
                    Op::Advance { millis: 0 },
                    Op::AdvanceToDeadline,
                    Op::Begin { count: 1 },
                ],
            },
        ),
    ]
}

#[test]
fn machine_seeds_are_the_named_schedules() {
    for (name, schedule) in schedules() {
        let bytes = encode::input(&schedule);
        let decoded = MachineInput::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        assert_eq!(
            decoded, schedule,
            "{name}: the encoder disagrees with arbitrary"
        );
        let path = corpus("machine").join(name);
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{name}: stale seed; regenerate with --ignored write_machine_seeds"
        );
        machine::check(&schedule);
    }
}

#[test]
#[ignore = "writes the machine seed corpus"]
fn write_machine_seeds() {
    for (name, schedule) in schedules() {
        std::fs::write(corpus("machine").join(name), encode::input(&schedule)).unwrap();
    }
}
