//! The gRPC test code in `tests/grpc/reauth.test.rs` is generated from `items.proto` with
//! protox and tonic-prost-build (pure Rust: no system `protoc`) and checked in. This test
//! generates it again and fails if the checked-in copy differs; `REGENERATE=1` writes it.

use std::path::Path;

#[test]
fn generated_code_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc");
    let fds = protox::compile([dir.join("items.proto")], [&dir]).expect("items.proto compiles");
    let out = std::env::temp_dir().join(format!("reauth-tower-gen-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    tonic_prost_build::configure()
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)
        .expect("code generation");
    let fresh = std::fs::read_to_string(out.join("reauth.test.rs")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let checked_in = dir.join("reauth.test.rs");
    if std::env::var_os("REGENERATE").is_some() {
        std::fs::write(&checked_in, &fresh).unwrap();
    }
    let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        current == fresh,
        "tests/grpc/reauth.test.rs is stale: run `REGENERATE=1 cargo test -p reauth-tower --test generated`"
    );
}
