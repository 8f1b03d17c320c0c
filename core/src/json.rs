//! Careful JSON reading shared by the token-response codecs: a size cap, strict UTF-8, one
//! flat object, duplicate keys refused, and lenient lifetimes (`expires_in`).
//!
//! Error details are fixed texts and field names only: nothing from the body is ever
//! echoed, because the body may hold token text.

use crate::error::{RefreshError, RefreshErrorKind};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

/// Why a body is not a usable JSON object. Each becomes a transient [`RefreshError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    TooLarge { limit: usize },
    Empty,
    NotUtf8,
    NotObject,
    Syntax { line: usize, column: usize },
    Duplicate(&'static str),
}

impl BodyError {
    /// The refresh error a 2xx response with this body means: transient, because a
    /// garbled success is most likely a proxy or a server hiccup, not a dead session.
    pub(crate) fn into_refresh_error(self) -> RefreshError {
        match self {
            Self::TooLarge { limit } => {
                RefreshError::transient(RefreshErrorKind::TooLarge { limit })
            }
            Self::Empty => malformed("the body is empty"),
            Self::NotUtf8 => malformed("the body is not valid UTF-8"),
            Self::NotObject => malformed("the body is not a JSON object"),
            Self::Syntax { line, column } => {
                malformed(format!("invalid JSON at line {line} column {column}"))
            }
            Self::Duplicate(name) => malformed(format!("duplicate key `{name}`")),
        }
    }
}

/// A transient [`RefreshErrorKind::Malformed`] error with a fixed detail.
pub(crate) fn malformed(detail: impl Into<String>) -> RefreshError {
    RefreshError::transient(RefreshErrorKind::Malformed).with_detail(detail)
}

/// Reads `body` as one JSON object and returns the values of the `names` fields, in order.
/// A `null` value counts as absent; other keys are skipped without being kept. A key
/// listed in `names` that appears twice is refused: two parsers could disagree on which
/// copy wins, so the body is ambiguous.
pub(crate) fn read_object<const N: usize>(
    body: &[u8],
    limit: usize,
    names: [&'static str; N],
) -> Result<[Option<Value>; N], BodyError> {
    if body.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    let trimmed = text.trim_start_matches([' ', '\t', '\r', '\n']);
    match trimmed.as_bytes().first() {
        None => return Err(BodyError::Empty),
        // serde would also accept a JSON array for a struct; only an object is a response.
        Some(b) if *b != b'{' => return Err(BodyError::NotObject),
        Some(_) => {}
    }
    let duplicate = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(trimmed);
    let seed = Fields {
        names,
        duplicate: &duplicate,
    };
    let syntax = |e: serde_json::Error| match duplicate.get() {
        Some(name) => BodyError::Duplicate(name),
        None => BodyError::Syntax {
            line: e.line(),
            column: e.column(),
        },
    };
    let values = seed.deserialize(&mut de).map_err(syntax)?;
    de.end().map_err(syntax)?;
    Ok(values)
}

struct Fields<'a, const N: usize> {
    names: [&'static str; N],
    duplicate: &'a Cell<Option<&'static str>>,
}

impl<'de, const N: usize> DeserializeSeed<'de> for Fields<'_, N> {
    type Value = [Option<Value>; N];

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Fields<'_, N> {
    type Value = [Option<Value>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values: [Option<Value>; N] = std::array::from_fn(|_| None);
        let mut seen = [false; N];
        while let Some(key) = map.next_key::<String>()? {
            match self.names.iter().position(|n| *n == key) {
                Some(i) => {
                    if seen[i] {
                        self.duplicate.set(Some(self.names[i]));
                        return Err(de::Error::custom("duplicate key"));
                    }
                    seen[i] = true;
                    let value: Value = map.next_value()?;
                    values[i] = (!value.is_null()).then_some(value);
                }
                // Unknown fields are skipped without building a value.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

/// Takes an optional string field; any other JSON type is an error naming the field.
pub(crate) fn string_field(
    value: Option<Value>,
    name: &'static str,
) -> Result<Option<String>, RefreshError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(format!("`{name}` is not a string"))),
    }
}

/// Reads a lifetime in seconds (`expires_in`). Accepted: a JSON integer or float, or a
/// string holding a decimal number (real servers send `"3600"`). Zero or negative means
/// already expired ([`Duration::ZERO`]); anything huge is capped at
/// [`MAX_LIFETIME`](crate::MAX_LIFETIME). Other types, non-numeric strings and the words
/// `inf`/`NaN` are errors naming the field. JSON numbers beyond the `f64` range are
/// already refused by the JSON parser (the body is then malformed).
pub(crate) fn lifetime_field(
    value: Option<Value>,
    name: &'static str,
) -> Result<Option<Duration>, RefreshError> {
    let bad = || malformed(format!("`{name}` is not a number of seconds"));
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(secs) = n.as_u64() {
                Ok(Some(capped(Duration::from_secs(secs))))
            } else if n.as_i64().is_some() {
                // Only negative integers are i64 but not u64.
                Ok(Some(Duration::ZERO))
            } else {
                n.as_f64().map(from_f64).map(Some).ok_or_else(bad)
            }
        }
        Some(Value::String(s)) => numeric_string(&s).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

fn capped(d: Duration) -> Duration {
    d.min(crate::MAX_LIFETIME)
}

fn from_f64(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else if secs >= crate::MAX_LIFETIME.as_secs_f64() {
        crate::MAX_LIFETIME
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(crate::MAX_LIFETIME)
    }
}

/// A decimal number in a string: digits, sign, point and exponent only, so Rust's float
/// parser never sees `inf`, `NaN` or hex.
fn numeric_string(s: &str) -> Option<Duration> {
    let s = s.trim_matches([' ', '\t']);
    let plausible = !s.is_empty()
        && s.len() <= 64
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if !plausible {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(capped(Duration::from_secs(secs)));
    }
    if s.parse::<i64>().is_ok() {
        return Some(Duration::ZERO);
    }
    // Overflow to infinity is fine here: the characters were checked, so it means "huge".
    s.parse::<f64>().ok().map(from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(json: &str) -> Result<Option<Duration>, RefreshError> {
        let [v] = read_object(json.as_bytes(), 1 << 16, ["e"]).unwrap();
        lifetime_field(v, "e")
    }

    #[test]
    fn lifetimes() {
        let max = Some(crate::MAX_LIFETIME);
        assert_eq!(
            life(r#"{"e":3600}"#).unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            life(r#"{"e":"3600"}"#).unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            life(r#"{"e":" 60 "}"#).unwrap(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            life(r#"{"e":1.5}"#).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            life(r#"{"e":"2.5e1"}"#).unwrap(),
            Some(Duration::from_secs(25))
        );
        assert_eq!(life(r#"{"e":0}"#).unwrap(), Some(Duration::ZERO));
        assert_eq!(life(r#"{"e":-5}"#).unwrap(), Some(Duration::ZERO));
        assert_eq!(life(r#"{"e":-0.0}"#).unwrap(), Some(Duration::ZERO));
        assert_eq!(life(r#"{"e":"-1e400"}"#).unwrap(), Some(Duration::ZERO));
        assert_eq!(life(r#"{"e":1e300}"#).unwrap(), max);
        assert_eq!(life(r#"{"e":18446744073709551616}"#).unwrap(), max);
        assert_eq!(life(r#"{"e":"18446744073709551616"}"#).unwrap(), max);
        assert_eq!(life(r#"{"e":"1e400"}"#).unwrap(), max);
        assert_eq!(life(r#"{"e":null}"#).unwrap(), None);
        assert_eq!(life(r#"{}"#).unwrap(), None);
        for bad in [
            "true",
            "{}",
            "[]",
            r#""""#,
            r#""abc""#,
            r#""inf""#,
            r#""NaN""#,
            r#""0x10""#,
            r#""1-2""#,
            r#""..""#,
            r#""+""#,
            r#""infinity""#,
        ] {
            let err = life(&format!(r#"{{"e":{bad}}}"#)).unwrap_err();
            assert_eq!(err.kind(), &RefreshErrorKind::Malformed, "{bad}");
        }
    }

    #[test]
    fn objects_only_no_duplicates() {
        let read = |s: &str| read_object(s.as_bytes(), 100, ["a"]);
        assert_eq!(read(""), Err(BodyError::Empty));
        assert_eq!(read("  \n"), Err(BodyError::Empty));
        assert_eq!(read(r#"["a"]"#), Err(BodyError::NotObject));
        assert_eq!(read(r#""a""#), Err(BodyError::NotObject));
        assert_eq!(read(r#"{"a":1,"a":2}"#), Err(BodyError::Duplicate("a")));
        assert!(matches!(
            read(r#"{"a":1} x"#),
            Err(BodyError::Syntax { .. })
        ));
        assert!(matches!(read(r#"{"a":1"#), Err(BodyError::Syntax { .. })));
        assert_eq!(
            read(&" ".repeat(101)),
            Err(BodyError::TooLarge { limit: 100 })
        );
        assert_eq!(
            read_object(b"{\"a\":\"\xff\"}", 100, ["a"]),
            Err(BodyError::NotUtf8)
        );
        // Unknown keys may repeat: they are ignored anyway.
        assert_eq!(read(r#"{"b":1,"b":2,"a":3}"#).unwrap()[0], Some(3.into()));
        // An escaped key is the same key.
        assert_eq!(read(r#"{"\u0061":3}"#).unwrap()[0], Some(3.into()));
    }
}
