//! The record as a Redis hash, layout (`format`) 1, as the crate docs show it.
//!
//! A hash, so that the swap script compares two fields without parsing anything. Every
//! field is checked on read, and an unknown one is refused: a later layout gets a new
//! `format`, which older builds report and never overwrite.

use reauth_core::{
    AccessToken, Entry, Lineage, Record, RefreshToken, SavedTokens, Tombstone, MAX_LIFETIME,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The layout this build writes, and the newest it reads.
pub(crate) const FORMAT: u64 = 1;
/// Clock skew tolerated between the machine that wrote a record and the one reading it.
const SKEW: Duration = Duration::from_secs(24 * 3600);
/// Longer values are not tokens: refused before they are checked.
const MAX_VALUE: usize = 16 * 1024;

/// Why the fields are not a record this build can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bad {
    /// A newer layout: its `format` field.
    Newer(String),
    /// Anything else; the reason never holds token text.
    Corrupt(String),
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, ms)
}

/// The hash's field/value pairs for `record`, written at wall time `now`.
pub(crate) fn encode(record: &Record, now: SystemTime) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("format", FORMAT.to_string()),
        ("lineage", record.lineage.to_string()),
        ("version", record.version.to_string()),
    ];
    match &record.entry {
        Entry::Tokens(t) => {
            fields.push(("access_token", t.access_token.secret().to_owned()));
            if let Some(r) = &t.refresh_token {
                fields.push(("refresh_token", r.secret().to_owned()));
            }
            if let Some(at) = t.expires_at {
                fields.push(("expires_at", millis(at).to_string()));
            }
            if let Some(s) = &t.scope {
                fields.push(("scope", s.clone()));
            }
        }
        Entry::LoggedOut(reason) => fields.push(("logged_out", reason.as_str().to_owned())),
    }
    fields.push(("saved_at", millis(now).to_string()));
    fields
}

fn corrupt(what: &str, why: impl std::fmt::Display) -> Bad {
    Bad::Corrupt(format!("{what}: {why}"))
}

/// The fields of a record hash, read at wall time `now`; `None` for no fields (no key).
pub(crate) fn decode(
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    now: SystemTime,
) -> Result<Option<Record>, Bad> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut f = Fields::default();
    let mut unknown = None;
    for (name, value) in fields {
        let slot = match name.as_slice() {
            b"format" => &mut f.format,
            b"lineage" => &mut f.lineage,
            b"version" => &mut f.version,
            b"access_token" => &mut f.access_token,
            b"refresh_token" => &mut f.refresh_token,
            b"expires_at" => &mut f.expires_at,
            b"scope" => &mut f.scope,
            b"logged_out" => &mut f.logged_out,
            b"saved_at" => &mut f.saved_at,
            other => {
                unknown.get_or_insert_with(|| other.to_vec());
                continue;
            }
        };
        *slot = Some(value);
    }
    let format = text(
        "format",
        f.format.ok_or_else(|| corrupt("format", "missing"))?,
    )?;
    match format.parse::<u64>() {
        Ok(FORMAT) => {}
        Ok(n) if n > FORMAT => return Err(Bad::Newer(format)),
        _ => return Err(corrupt("format", "not a known layout")),
    }
    // Only after the format: a newer layout may well have fields this build does not know.
    if let Some(name) = unknown {
        // The name is ours to show: it is not a value.
        let name = String::from_utf8_lossy(&name[..name.len().min(64)]).into_owned();
        return Err(corrupt("unknown field", name));
    }
    let lineage = f
        .lineage
        .map(|l| text("lineage", l))
        .transpose()?
        .and_then(|l| Lineage::parse(&l))
        .ok_or_else(|| corrupt("lineage", "missing or not 32 hex digits"))?;
    let version = number("version", f.version)?.ok_or_else(|| corrupt("version", "missing"))?;
    let saved_at = number("saved_at", f.saved_at)?.ok_or_else(|| corrupt("saved_at", "missing"))?;
    if saved_at > millis(now).saturating_add(ms(SKEW)) {
        return Err(corrupt("saved_at", "in the future"));
    }
    let entry = match f.logged_out {
        Some(reason) => {
            if f.access_token.is_some() || f.refresh_token.is_some() {
                return Err(corrupt("logged_out", "a tombstone that still holds tokens"));
            }
            Entry::LoggedOut(Tombstone::parse(&text("logged_out", reason)?))
        }
        None => {
            let access = f
                .access_token
                .ok_or_else(|| corrupt("access_token", "missing"))?;
            let access_token = AccessToken::new(text("access_token", access)?)
                .map_err(|e| corrupt("access_token", e))?;
            let refresh_token = f
                .refresh_token
                .map(|r| text("refresh_token", r))
                .transpose()?
                .map(RefreshToken::new)
                .transpose()
                .map_err(|e| corrupt("refresh_token", e))?;
            let latest = millis(now).saturating_add(ms(MAX_LIFETIME + SKEW));
            let expires_at = match number("expires_at", f.expires_at)? {
                Some(at) if at > latest => {
                    return Err(corrupt("expires_at", "implausibly far away"))
                }
                at => at.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            };
            let scope = f.scope.map(|s| text("scope", s)).transpose()?;
            if scope
                .as_ref()
                .is_some_and(|s| s.len() > 4096 || s.chars().any(char::is_control))
            {
                return Err(corrupt("scope", "not a scope string"));
            }
            Entry::Tokens(SavedTokens {
                access_token,
                refresh_token,
                expires_at,
                scope,
            })
        }
    };
    Ok(Some(Record {
        lineage,
        version,
        entry,
    }))
}

#[derive(Default)]
struct Fields {
    format: Option<Vec<u8>>,
    lineage: Option<Vec<u8>>,
    version: Option<Vec<u8>>,
    access_token: Option<Vec<u8>>,
    refresh_token: Option<Vec<u8>>,
    expires_at: Option<Vec<u8>>,
    scope: Option<Vec<u8>>,
    logged_out: Option<Vec<u8>>,
    saved_at: Option<Vec<u8>>,
}

/// A field's value as text; the error names the field, never the value.
fn text(what: &str, value: Vec<u8>) -> Result<String, Bad> {
    if value.len() > MAX_VALUE {
        return Err(corrupt(what, "too long"));
    }
    String::from_utf8(value).map_err(|_| corrupt(what, "not UTF-8"))
}

fn number(what: &str, value: Option<Vec<u8>>) -> Result<Option<u64>, Bad> {
    value
        .map(|v| {
            let t = text(what, v)?;
            // Only canonical decimals: the script compares versions as text.
            match t.parse::<u64>() {
                Ok(n) if n.to_string() == t => Ok(n),
                _ => Err(corrupt(what, "not a decimal number")),
            }
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn record() -> Record {
        Record {
            lineage: Lineage::from_u128(0xabc),
            version: u64::MAX,
            entry: Entry::Tokens(SavedTokens {
                access_token: AccessToken::new("SECRET-A").unwrap(),
                refresh_token: Some(RefreshToken::new("SECRET-R").unwrap()),
                expires_at: Some(now() + Duration::from_millis(3_600_900)),
                scope: Some("read write".into()),
            }),
        }
    }

    fn bytes(fields: Vec<(&'static str, String)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        fields
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
            .collect()
    }

    fn edit(name: &str, value: Option<&str>) -> Result<Option<Record>, Bad> {
        let mut fields = encode(&record(), now());
        fields.retain(|(k, _)| *k != name);
        let mut fields = bytes(fields);
        if let Some(v) = value {
            fields.push((name.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        decode(fields, now())
    }

    #[test]
    fn round_trips_to_the_millisecond() {
        assert_eq!(
            decode(bytes(encode(&record(), now())), now()),
            Ok(Some(record()))
        );
        let tomb = Record {
            entry: Entry::LoggedOut(Tombstone::AttemptsExhausted),
            ..record()
        };
        assert_eq!(decode(bytes(encode(&tomb, now())), now()), Ok(Some(tomb)));
        assert_eq!(decode(Vec::new(), now()), Ok(None));
    }

    #[test]
    fn bad_fields_are_named_without_their_text() {
        for (name, value, says) in [
            ("access_token", Some("SECRET A"), "access_token"),
            ("access_token", None, "access_token: missing"),
            ("version", Some("07"), "not a decimal"),
            ("version", Some("SECRET-V"), "not a decimal"),
            ("lineage", Some("SECRET"), "lineage"),
            ("expires_at", Some("99999999999999999"), "implausibly"),
            ("saved_at", Some("99999999999999999"), "in the future"),
            ("format", Some("x"), "format"),
            ("format", None, "format: missing"),
            ("logged_out", Some("requested"), "still holds tokens"),
            ("SECRET-field", Some("1"), "unknown field"),
        ] {
            let err = format!("{:?}", edit(name, value));
            assert!(err.contains(says), "{name}: {err}");
            assert!(
                !err.contains("SECRET-A") && !err.contains("SECRET A"),
                "{err}"
            );
        }
        assert_eq!(edit("format", Some("2")), Err(Bad::Newer("2".into())));
        assert_eq!(
            edit("access_token", Some(&"a".repeat(MAX_VALUE + 1))),
            Err(corrupt("access_token", "too long"))
        );
    }
}
