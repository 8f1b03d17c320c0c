//! `examples/custom_runtime.rs` run as a test: the example's body is its `run` function,
//! included here as a module, so the test checks what a newcomer would see.

#[allow(dead_code)] // `main` is the example's, not the test's
#[path = "../examples/custom_runtime.rs"]
mod example;

#[test]
fn the_custom_runtime_example_runs_every_step() {
    let s = example::run().expect("the example runs");
    // 1 + 5 replays + the network failure's retry + the request after the timer.
    assert_eq!(s.ok, 8, "{s:?}");
    assert_eq!(s.unauthorized, 5, "{s:?}");
    // The five 401s waited for the one refresh, or (answered after it) replayed at once.
    assert!((1..=5).contains(&s.resumed), "{s:?}");
    assert_eq!(s.network_failures, 1, "{s:?}");
    assert!(s.timers_fired >= 1, "{s:?}");
    // One refresh for the five 401s, one fired by the timer.
    assert_eq!((s.refreshed, s.token_calls), (2, 2), "{s:?}");
}
