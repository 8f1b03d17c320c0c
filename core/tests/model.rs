//! Property tests: random schedules of up to 1,000 concurrent logical requests with
//! arbitrary interleavings of every input, checked after every step by the shared
//! invariant checker (`reauth_core::check`). CI runs the main property with
//! `PROPTEST_CASES=10000`.

use proptest::prelude::*;
use reauth_core::check::{Harness, Op};
use reauth_core::{Config, OnExhausted};
use std::time::Duration;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u16..=8).prop_map(|count| Op::Begin { count }),
        1 => (1u16..=1000).prop_map(|count| Op::Begin { count }),
        1 => Just(Op::BeginForeign),
        6 => (any::<u16>(), 0u8..3).prop_map(|(pick, status)| Op::Respond { pick, status }),
        2 => any::<bool>().prop_map(|unauthorized| Op::RespondAll { unauthorized }),
        4 => (prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
              proptest::option::of(0u16..4000), any::<bool>())
            .prop_map(|(stale, lifetime_secs, rotate)| Op::RefreshOk { stale, lifetime_secs, rotate }),
        3 => (prop_oneof![4 => Just(0u8), 1 => any::<u8>()], proptest::option::of(0u16..20_000))
            .prop_map(|(stale, retry_after_ms)| Op::RefreshTransient { stale, retry_after_ms }),
        1 => prop_oneof![4 => Just(0u8), 1 => any::<u8>()].prop_map(|stale| Op::RefreshPermanent { stale }),
        2 => any::<u16>().prop_map(|pick| Op::Cancel { pick }),
        3 => (0u32..90_000).prop_map(|millis| Op::Advance { millis }),
        2 => Just(Op::AdvanceToDeadline),
        1 => Just(Op::Logout),
        1 => any::<bool>().prop_map(|stale| Op::Invalidate { stale }),
        2 => (proptest::option::of(0u16..4000), any::<bool>())
            .prop_map(|(lifetime_secs, refresh_token)| Op::Login { lifetime_secs, refresh_token }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        any::<u64>(),
        1u32..6,
        any::<bool>(),
        any::<bool>(),
        0u64..20,
        0u64..40,
    )
        .prop_map(|(seed, attempts, log_out, requires_rt, leeway, window)| {
            let mut c = Harness::default_config();
            c.seed = seed;
            c.backoff.max_attempts = attempts;
            c.on_exhausted = if log_out {
                OnExhausted::LogOut
            } else {
                OnExhausted::KeepSession
            };
            c.requires_refresh_token = requires_rt;
            c.leeway = Duration::from_secs(leeway);
            c.refresh_window = Duration::from_secs(window);
            c
        })
}

fn login_first() -> Op {
    Op::Login {
        lifetime_secs: Some(600),
        refresh_token: true,
    }
}

proptest! {
    /// The main property: every guarantee holds after every step of any schedule, and at
    /// the end nothing is left waiting.
    #[test]
    fn every_invariant_holds_for_any_schedule(
        config in config(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut h = Harness::new(config);
        h.apply(&login_first()).map_err(|v| TestCaseError::fail(v.to_string()))?;
        for op in &ops {
            h.apply(op).map_err(|v| TestCaseError::fail(format!("{v} (after {op:?})")))?;
        }
        h.finish().map_err(|v| TestCaseError::fail(v.to_string()))?;
    }

    /// Any number of concurrent 401s for the current token: exactly one refresh, and every
    /// request completes once it succeeds.
    #[test]
    fn a_storm_of_401s_causes_exactly_one_refresh(n in 1u16..=1000, cancel in 0u16..50) {
        let mut h = Harness::new(Harness::default_config());
        h.apply(&login_first()).unwrap();
        h.apply(&Op::Begin { count: n }).unwrap();
        h.apply(&Op::RespondAll { unauthorized: true }).unwrap();
        prop_assert_eq!(h.refreshes_started(), 1);
        let cancelled = cancel.min(n);
        for _ in 0..cancelled {
            h.apply(&Op::Cancel { pick: 0 }).unwrap();
        }
        h.apply(&Op::RefreshOk { stale: 0, lifetime_secs: Some(600), rotate: true }).unwrap();
        h.apply(&Op::RespondAll { unauthorized: false }).unwrap();
        prop_assert_eq!(h.refreshes_started(), 1);
        prop_assert_eq!(h.completed(), u64::from(n - cancelled));
        h.finish().unwrap();
    }
}
