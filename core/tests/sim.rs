//! The multi-session simulator over many seeds, and the planted bugs it must catch.
//! `SIM_SEEDS=10000` raises the seed count; `SIM_SEED=n` replays one seed in `one_seed`.

use reauth_core::sim::{plant, run, Bug, SimConfig};
use std::time::Instant;

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeds_hold_every_rule() {
    let seeds = env("SIM_SEEDS").unwrap_or(300);
    let started = Instant::now();
    let mut totals = reauth_core::sim::Report::default();
    for seed in 0..seeds {
        let r = run(seed, SimConfig::default()).unwrap_or_else(|f| panic!("{f}"));
        totals.add(&r);
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{seeds} seeds in {secs:.2}s ({:.0} seeds/s): {totals:?}",
        seeds as f64 / secs
    );
}

#[test]
fn one_seed() {
    let seed = env("SIM_SEED").unwrap_or(0);
    let mut config = SimConfig::default();
    config.verbose = true;
    match run(seed, config) {
        Ok(r) => eprintln!("seed {seed}: {r:?}"),
        Err(f) => panic!("{f}"),
    }
}

#[test]
fn a_seed_names_one_run() {
    for seed in [1, 2, 3, 99] {
        assert_eq!(
            run(seed, SimConfig::default()),
            run(seed, SimConfig::default())
        );
    }
}

#[test]
fn a_store_that_is_away_logs_nobody_out() {
    let mut config = SimConfig::default();
    config.store_failures = Some(true);
    for seed in 0..100 {
        let r = run(seed, config.clone()).unwrap_or_else(|f| panic!("{f}"));
        assert!(r.steps > 0);
    }
}

/// Plants `bug`, runs seeds from 0 until one fails, checks which rule caught it and
/// returns how many seeds that took.
fn hunt(bug: Bug, config: SimConfig, rules: &[&str]) -> u64 {
    plant(Some(bug));
    for seed in 0..20_000 {
        if let Err(f) = run(seed, config.clone()) {
            plant(None);
            assert!(
                rules.contains(&f.rule),
                "{bug:?} was caught by the wrong rule: {f}"
            );
            eprintln!(
                "planted {bug:?}: caught by `{}` at seed {seed} step {} ({} seeds)",
                f.rule,
                f.step,
                seed + 1
            );
            return seed + 1;
        }
    }
    plant(None);
    panic!("{bug:?} survived 20,000 seeds");
}

#[test]
fn planted_bug_1_is_caught() {
    hunt(
        Bug::SaveOverTombstone,
        SimConfig::default(),
        &["tombstone-sticks"],
    );
}

#[test]
fn planted_bug_2_is_caught() {
    hunt(
        Bug::TombstoneAsEmpty,
        SimConfig::default(),
        &["tombstone-seen"],
    );
}

#[test]
fn planted_bug_3_is_caught() {
    hunt(
        Bug::AdoptOtherLineage,
        SimConfig::default(),
        &["model-episode", "foreign-credential"],
    );
}

#[test]
fn planted_bug_4_is_caught() {
    // The server rotates at once, so that the overdue refresh is one whose answer is late
    // after rotating (with a call the server has not taken yet, `single-flight` fires).
    let mut config = SimConfig::default();
    config.rotate_at_once = Some(true);
    hunt(
        Bug::OverdueIsFailed,
        config,
        &["late-success", "reuse-detection"],
    );
}

#[test]
fn planted_bug_5_is_caught() {
    hunt(
        Bug::SlowIsFailed,
        SimConfig::default(),
        &["single-flight", "reuse-detection"],
    );
}

#[test]
fn planted_bug_6_is_caught() {
    hunt(
        Bug::ReplayFailsFirst,
        SimConfig::default(),
        &["replay-generation"],
    );
}

#[test]
fn planted_bug_7_is_caught() {
    hunt(Bug::NoHoldBack, SimConfig::default(), &["hold-back"]);
}

#[test]
fn planted_bug_8_is_caught() {
    let mut config = SimConfig::default();
    config.notifications = Some(true);
    hunt(Bug::CheckAdoptsAnyLineage, config, &["foreign-credential"]);
}

#[test]
#[ignore = "a long sweep over every knob; run with --ignored"]
fn sweep_every_knob() {
    let seeds = env("SIM_SEEDS").unwrap_or(2_000);
    for sessions in [Some(1), Some(2), Some(8)] {
        for store_failures in [Some(false), Some(true)] {
            for grace in [Some(false), Some(true)] {
                for rotate_at_once in [Some(false), Some(true)] {
                    let mut config = SimConfig::default();
                    config.sessions = sessions;
                    config.store_failures = store_failures;
                    config.grace = grace;
                    config.rotate_at_once = rotate_at_once;
                    for seed in 0..seeds {
                        if let Err(f) = run(seed, config.clone()) {
                            panic!("{config:?}\n{f}");
                        }
                    }
                }
            }
        }
    }
}
