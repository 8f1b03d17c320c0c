//! `store_file`: arbitrary bytes as a token file. `FileStore::parse_bytes` must answer a
//! typed result, never panic; whatever record it accepts (a version 2 record, or a
//! version 1 file read as the legacy record) must survive `to_bytes` and read back equal,
//! written in the current format; and no error may show text from the file (it may hold
//! tokens).

use reauth::{FileStore, Record};
use std::time::{Duration, SystemTime};

/// A fixed "now", so results do not depend on when the fuzzer runs: 2026-01-01.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

pub fn run(data: &[u8]) {
    let store = FileStore::new("fuzz-tokens.json");
    match store.parse_bytes(data, now()) {
        Ok(record) => round_trip(&store, &record),
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

fn round_trip(store: &FileStore, record: &Record) {
    let bytes = FileStore::to_bytes(record, now());
    let back = store
        .parse_bytes(&bytes, now())
        .expect("a file written for an accepted record is accepted");
    // Lineage, version, tokens or tombstone, expiry (already whole seconds): all equal.
    assert!(back == *record, "the record changed through a write");
    // Written in the current format, and writing it again gives the same bytes.
    let header: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(header["version"], 2, "not written in the current format");
    assert!(
        FileStore::to_bytes(&back, now()) == bytes,
        "a second write differs"
    );
}
