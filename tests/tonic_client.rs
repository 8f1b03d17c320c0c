//! `examples/tonic_client.rs` run as a test: the example's body is its `run` function,
//! included here as a module, so the test checks what a newcomer would see.

#[allow(dead_code)] // `main` is the example's, not the test's
#[path = "../examples/tonic_client.rs"]
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tonic_client_example_keeps_its_promise() {
    let s = tokio::time::timeout(std::time::Duration::from_secs(60), example::run())
        .await
        .expect("the example finishes within a minute")
        .expect("the example runs");
    assert!(s.kept(), "{s:?}");
    assert_eq!((s.ok, s.token_calls), (example::CALLS, 1), "{s:?}");
    // The calls met the expired token: the server refused at least one, and each refusal
    // was replayed (every call succeeded).
    assert!(
        (1..=u64::from(example::CALLS)).contains(&s.unauthenticated),
        "{s:?}"
    );
}
