//! `store_file`: arbitrary bytes as a token file. `FileStore::parse_bytes` must answer a
//! typed result, never panic; whatever it accepts must survive a write and read back
//! unchanged; and no error may show text from the file (it may hold tokens).

use reauth::{FileStore, SavedTokens};
use std::time::{Duration, SystemTime};

/// A fixed "now", so results do not depend on when the fuzzer runs: 2026-01-01.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

pub fn run(data: &[u8]) {
    let store = FileStore::new("fuzz-tokens.json");
    match store.parse_bytes(data, now()) {
        Ok(tokens) => round_trip(&store, &tokens),
        Err(e) => {
            // Errors carry fixed texts, positions and field names only: the same error
            // for the input with every letter and digit rotated.
            let rotated: Vec<u8> = data.iter().map(|&b| crate::rotate_byte(b)).collect();
            if let Err(again) = store.parse_bytes(&rotated, now()) {
                let (a, b) = (e.to_string(), again.to_string());
                let kind = |s: &str| s.split(':').next().unwrap_or("").to_owned();
                assert_eq!(
                    kind(&a),
                    kind(&b),
                    "error kind depends on the text: {a} / {b}"
                );
            }
        }
    }
}

fn round_trip(store: &FileStore, tokens: &SavedTokens) {
    let bytes = FileStore::to_bytes(tokens, now());
    let back = store
        .parse_bytes(&bytes, now())
        .expect("a file written for accepted tokens is accepted");
    assert_eq!(back.access_token, tokens.access_token);
    assert_eq!(back.refresh_token, tokens.refresh_token);
    assert_eq!(back.scope, tokens.scope);
    // Expiry is stored in whole seconds.
    assert_eq!(back.expires_at, tokens.expires_at);
}
