//! The token record's format, version 2 (a `FileStore`'s file, a `KeyringStore`'s
//! entry): JSON holding the session record (lineage, record
//! version, and the tokens or a tombstone), with the expiry as UNIX seconds and a CRC-32
//! over the record.
//!
//! ```json
//! {
//!   "format": "reauth-tokens",
//!   "version": 2,
//!   "checksum": "crc32:1c291ca3",
//!   "record": {
//!     "lineage": "8f1c…(32 hex digits)",
//!     "version": 7,
//!     "access_token": "…",
//!     "refresh_token": "…",
//!     "expires_at": 1767229200,
//!     "scope": "read write",
//!     "logged_out": null,
//!     "saved_at": 1767225600
//!   }
//! }
//! ```
//!
//! A logged-out record has `"logged_out": "<reason>"` and no tokens. The checksum is over
//! the compact JSON serialization of `record` (fixed field order, no floats, so it is the
//! same on every platform), not over the file's bytes: re-indenting the file keeps it
//! valid, changing any value does not. Unknown fields are refused: a later format that
//! needs new fields gets a new `version`, which older readers report as
//! a newer format (`FutureVersion`) and never touch. Version 1 files (tokens only, from before the session record) are read as
//! [`LEGACY`]'s record at version 0, so every process reading one agrees on it, and the
//! first write replaces it with version 2.

use reauth_core::{
    AccessToken, Entry, Lineage, Record, RefreshToken, SavedTokens, Tombstone, MAX_LIFETIME,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `format` field: marks the file as ours.
pub(crate) const FORMAT: &str = "reauth-tokens";
/// The version this build writes, and the newest it reads.
pub(crate) const VERSION: u64 = 2;
/// Larger files are not token files: refused without reading them whole.
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Clock skew tolerated between the writer and the reader.
const SKEW: Duration = Duration::from_secs(24 * 3600);
/// The lineage of a version 1 file's tokens.
pub(crate) const LEGACY: Lineage = Lineage::from_u128(0);

/// Why the bytes are not a valid token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Cut off: empty, or the JSON ends early.
    Truncated,
    /// A newer format version.
    FutureVersion(u64),
    /// Anything else; the reason never holds token text.
    Corrupt(String),
}

/// Only the fields that decide how to read the rest; anything else is ignored here.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV2 {
    format: String,
    version: u64,
    checksum: String,
    record: PayloadV2,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadV2 {
    lineage: String,
    version: u64,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_at: Option<u64>,
    scope: Option<String>,
    logged_out: Option<String>,
    saved_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: String,
    version: u64,
    checksum: String,
    tokens: PayloadV1,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadV1 {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<u64>,
    scope: Option<String>,
    saved_at: u64,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn checksum(payload: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(payload).expect("a struct of strings and integers serializes");
    format!("crc32:{:08x}", crc32fast::hash(&bytes))
}

/// The file's bytes for `record`, saved at wall time `now`: indented, for a file a person
/// may open.
#[cfg_attr(not(feature = "file-store"), allow(dead_code))]
pub(crate) fn encode(record: &Record, now: SystemTime) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&document(record, now))
        .expect("a struct of strings and integers serializes");
    bytes.push(b'\n');
    bytes
}

/// The same document without whitespace, for stores with small size limits (a Windows
/// credential holds 2560 bytes). [`decode`] reads both.
#[cfg_attr(not(feature = "keyring"), allow(dead_code))]
pub(crate) fn encode_compact(record: &Record, now: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&document(record, now)).expect("a struct of strings and integers serializes")
}

fn document(record: &Record, now: SystemTime) -> FileV2 {
    let (tokens, logged_out) = match &record.entry {
        Entry::Tokens(t) => (Some(t), None),
        Entry::LoggedOut(t) => (None, Some(t.as_str().to_owned())),
    };
    let payload = PayloadV2 {
        lineage: record.lineage.to_string(),
        version: record.version,
        access_token: tokens.map(|t| t.access_token.secret().to_owned()),
        refresh_token: tokens
            .and_then(|t| t.refresh_token.as_ref())
            .map(|r| r.secret().to_owned()),
        // Rounded down: a token is never believed to live longer than it does.
        expires_at: tokens.and_then(|t| t.expires_at).map(unix_secs),
        scope: tokens.and_then(|t| t.scope.clone()),
        logged_out,
        saved_at: unix_secs(now),
    };
    FileV2 {
        format: FORMAT.to_owned(),
        version: VERSION,
        checksum: checksum(&payload),
        record: payload,
    }
}

/// Reads and checks a token file read at wall time `now`.
pub(crate) fn decode(bytes: &[u8], now: SystemTime) -> Result<Record, Bad> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Bad::Truncated);
    }
    let header: Header = serde_json::from_slice(bytes).map_err(json_error)?;
    if header.format.as_deref() != Some(FORMAT) {
        return Err(Bad::Corrupt(format!(
            "not a reauth token file (no \"format\": \"{FORMAT}\")"
        )));
    }
    match header.version {
        None => Err(Bad::Corrupt("no format version".into())),
        Some(v) if v > VERSION => Err(Bad::FutureVersion(v)),
        Some(VERSION) => {
            let file: FileV2 = serde_json::from_slice(bytes).map_err(json_error)?;
            if file.checksum != checksum(&file.record) {
                return Err(altered());
            }
            validate_v2(file.record, now)
        }
        Some(1) => {
            let file: FileV1 = serde_json::from_slice(bytes).map_err(json_error)?;
            if file.checksum != checksum(&file.tokens) {
                return Err(altered());
            }
            let p = file.tokens;
            let tokens = validate_tokens(
                Some(p.access_token),
                p.refresh_token,
                p.expires_at,
                p.scope,
                p.saved_at,
                now,
            )?;
            Ok(Record {
                lineage: LEGACY,
                version: 0,
                entry: Entry::Tokens(tokens),
            })
        }
        Some(v) => Err(Bad::Corrupt(format!("unknown format version {v}"))),
    }
}

fn altered() -> Bad {
    Bad::Corrupt("checksum mismatch: the record was altered or damaged".into())
}

fn corrupt(what: &str, why: &dyn std::fmt::Display) -> Bad {
    Bad::Corrupt(format!("{what}: {why}"))
}

fn validate_v2(p: PayloadV2, now: SystemTime) -> Result<Record, Bad> {
    let lineage =
        Lineage::parse(&p.lineage).ok_or_else(|| corrupt("lineage", &"not 32 hex digits"))?;
    let entry = match p.logged_out {
        Some(reason) => {
            if p.access_token.is_some() || p.refresh_token.is_some() {
                return Err(corrupt(
                    "logged_out",
                    &"a tombstone that still holds tokens",
                ));
            }
            if p.saved_at > unix_secs(now).saturating_add(SKEW.as_secs()) {
                return Err(corrupt("saved_at", &"in the future"));
            }
            Entry::LoggedOut(Tombstone::parse(&reason))
        }
        None => Entry::Tokens(validate_tokens(
            p.access_token,
            p.refresh_token,
            p.expires_at,
            p.scope,
            p.saved_at,
            now,
        )?),
    };
    Ok(Record {
        lineage,
        version: p.version,
        entry,
    })
}

/// Every field, checked as the rest of reauth would: the tokens must be sendable, the
/// times plausible.
fn validate_tokens(
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_at: Option<u64>,
    scope: Option<String>,
    saved_at: u64,
    now: SystemTime,
) -> Result<SavedTokens, Bad> {
    let access_token = access_token.ok_or_else(|| corrupt("access_token", &"missing"))?;
    let access_token = AccessToken::new(access_token).map_err(|e| corrupt("access_token", &e))?;
    let refresh_token = refresh_token
        .map(RefreshToken::new)
        .transpose()
        .map_err(|e| corrupt("refresh_token", &e))?;
    let latest = unix_secs(now).saturating_add((MAX_LIFETIME + SKEW).as_secs());
    if saved_at > unix_secs(now).saturating_add(SKEW.as_secs()) {
        return Err(corrupt("saved_at", &"in the future"));
    }
    let expires_at = match expires_at {
        None => None,
        Some(at) if at < saved_at => {
            return Err(corrupt("expires_at", &"before the tokens were saved"))
        }
        Some(at) if at > latest => return Err(corrupt("expires_at", &"implausibly far away")),
        Some(at) => Some(UNIX_EPOCH + Duration::from_secs(at)),
    };
    if let Some(scope) = &scope {
        if scope.len() > 4096 || scope.chars().any(char::is_control) {
            return Err(corrupt("scope", &"not a scope string"));
        }
    }
    Ok(SavedTokens {
        access_token,
        refresh_token,
        expires_at,
        scope,
    })
}

/// serde_json's messages may quote the offending value (a token, maybe): keep only the
/// category and the position.
fn json_error(e: serde_json::Error) -> Bad {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => return Bad::Truncated,
        Category::Syntax => "JSON syntax error",
        Category::Data => "unexpected or missing field",
        Category::Io => "read error",
    };
    Bad::Corrupt(format!("{what} at line {} column {}", e.line(), e.column()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn tokens() -> Record {
        Record {
            lineage: Lineage::from_u128(0xabc),
            version: 3,
            entry: Entry::Tokens(SavedTokens {
                access_token: AccessToken::new("SECRET-A").unwrap(),
                refresh_token: Some(RefreshToken::new("SECRET-R").unwrap()),
                expires_at: Some(now() + Duration::from_millis(3_600_900)),
                scope: Some("read write".into()),
            }),
        }
    }

    #[test]
    fn round_trips_with_the_expiry_rounded_down() {
        let bytes = encode(&tokens(), now());
        let back = decode(&bytes, now()).unwrap();
        assert_eq!((back.lineage, back.version), (Lineage::from_u128(0xabc), 3));
        let t = back.tokens().unwrap();
        assert_eq!(t.expires_at, Some(now() + Duration::from_secs(3600)));
        assert_eq!(t.refresh_token, tokens().tokens().unwrap().refresh_token);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        assert!(text.contains("\"expires_at\": 1800003600"), "{text}");
        let tombstone = Record {
            entry: Entry::LoggedOut(Tombstone::RefreshRejected),
            ..tokens()
        };
        let back = decode(&encode(&tombstone, now()), now()).unwrap();
        assert_eq!(back, tombstone);
    }

    #[test]
    fn the_compact_form_reads_back_the_same_record() {
        let pretty = encode(&tokens(), now());
        let compact = encode_compact(&tokens(), now());
        assert!(compact.len() < pretty.len() && !compact.contains(&b'\n'));
        assert_eq!(decode(&compact, now()), decode(&pretty, now()));
        assert_eq!(decode(&compact, now()).unwrap(), as_saved(tokens()));
    }

    /// The record as it reads back: the expiry at whole seconds.
    fn as_saved(mut r: Record) -> Record {
        if let Entry::Tokens(t) = &mut r.entry {
            t.expires_at = Some(now() + Duration::from_secs(3600));
        }
        r
    }

    #[test]
    fn a_version_1_file_reads_as_the_legacy_lineage_at_version_0() {
        let payload = PayloadV1 {
            access_token: "SECRET-A".into(),
            refresh_token: Some("SECRET-R".into()),
            expires_at: Some(1_800_003_600),
            scope: None,
            saved_at: 1_800_000_000,
        };
        let file = FileV1 {
            format: FORMAT.into(),
            version: 1,
            checksum: checksum(&payload),
            tokens: payload,
        };
        let back = decode(&serde_json::to_vec(&file).unwrap(), now()).unwrap();
        assert_eq!((back.lineage, back.version), (LEGACY, 0));
        assert_eq!(
            back.tokens()
                .unwrap()
                .refresh_token
                .as_ref()
                .unwrap()
                .secret(),
            "SECRET-R"
        );
    }

    #[test]
    fn reformatting_keeps_the_file_valid_but_editing_a_value_does_not() {
        let bytes = encode(&tokens(), now());
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let compact = serde_json::to_vec(&value).unwrap();
        assert!(decode(&compact, now()).is_ok());
        let edited = String::from_utf8(bytes)
            .unwrap()
            .replace("SECRET-R", "SECRET-X");
        assert_eq!(
            decode(edited.as_bytes(), now()),
            Err(Bad::Corrupt(
                "checksum mismatch: the record was altered or damaged".into()
            ))
        );
    }

    #[test]
    fn every_prefix_is_an_error_never_a_panic() {
        let bytes = encode(&tokens(), now());
        for cut in 0..bytes.len() - 1 {
            match decode(&bytes[..cut], now()) {
                Err(Bad::Truncated) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_fields_are_named_without_their_text() {
        let edit = |from: &str, to: &str| {
            let text = String::from_utf8(encode(&tokens(), now())).unwrap();
            let mut value: serde_json::Value =
                serde_json::from_str(&text.replace(from, to)).unwrap();
            // Re-seal, so only the field check can object.
            let payload: PayloadV2 = serde_json::from_value(value["record"].clone()).unwrap();
            value["checksum"] = checksum(&payload).into();
            decode(&serde_json::to_vec(&value).unwrap(), now())
        };
        let err = format!("{:?}", edit("SECRET-A", "SECRET A"));
        assert!(
            err.contains("access_token") && !err.contains("SECRET"),
            "{err}"
        );
        let err = format!("{:?}", edit("1800003600", "999999999999"));
        assert!(err.contains("implausibly"), "{err}");
        let err = format!("{:?}", edit("1800003600", "17"));
        assert!(err.contains("before the tokens were saved"), "{err}");
        // A token where a number belongs: serde_json would quote it, we do not.
        let text = String::from_utf8(encode(&tokens(), now())).unwrap();
        let swapped = text.replace("1800003600", "\"SECRET-Z\"");
        let err = format!("{:?}", decode(swapped.as_bytes(), now()));
        assert!(
            err.contains("unexpected") && !err.contains("SECRET"),
            "{err}"
        );
    }

    #[test]
    fn versions_and_foreign_files() {
        let future = br#"{"format":"reauth-tokens","version":7,"whatever":{}}"#;
        assert_eq!(decode(future, now()), Err(Bad::FutureVersion(7)));
        let zero = br#"{"format":"reauth-tokens","version":0}"#;
        assert!(matches!(decode(zero, now()), Err(Bad::Corrupt(_))));
        assert!(matches!(decode(b"[1,2]", now()), Err(Bad::Corrupt(_))));
        assert!(matches!(decode(b"{\"a\":1}", now()), Err(Bad::Corrupt(_))));
        assert!(matches!(
            decode(b"\x00\x01garbage", now()),
            Err(Bad::Corrupt(_))
        ));
        assert_eq!(decode(b"", now()), Err(Bad::Truncated));
        assert_eq!(decode(b"  \n", now()), Err(Bad::Truncated));
    }
}
