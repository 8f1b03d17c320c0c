//! An independent reading of a token-response body for the oracles: the top-level entries
//! of a JSON object, with where each value sits in the body. It uses `serde_json` like
//! the code under test but none of its code, so the two can be compared.

use serde::de::{self, Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;

/// One top-level entry.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The key, unescaped.
    pub key: String,
    /// The value's JSON text, exactly as in the body.
    pub raw: &'a str,
    /// Where `raw` starts in the body.
    pub offset: usize,
}

/// What [`scan`] found.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// The entries read before the end or the first error, in order, duplicates kept.
    pub entries: Vec<Entry<'a>>,
    /// True if the whole body is UTF-8 and exactly one JSON object (whitespace around it
    /// allowed).
    pub complete: bool,
}

impl<'a> Scan<'a> {
    /// The entries named `key`.
    pub fn all(&self, key: &str) -> impl Iterator<Item = &Entry<'a>> {
        let key = key.to_owned();
        self.entries.iter().filter(move |e| e.key == key)
    }

    /// True if `key` appears more than once.
    pub fn repeated(&self, key: &str) -> bool {
        self.all(key).nth(1).is_some()
    }

    /// The value of `key` if it appears exactly once (`None` if absent or repeated),
    /// parsed; `Err` if it does not parse as a `Value` (e.g. a number beyond `f64`).
    pub fn value(&self, key: &str) -> Option<Result<Value, ()>> {
        if self.repeated(key) {
            return None;
        }
        self.all(key)
            .next()
            .map(|e| serde_json::from_str(e.raw).map_err(|_| ()))
    }
}

struct Entries<'s, 'a> {
    body: &'a [u8],
    out: &'s RefCell<Vec<Entry<'a>>>,
}

impl<'de, 's> Visitor<'de> for Entries<'s, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let raw: &'de RawValue = map.next_value()?;
            let text = raw.get();
            let offset = (text.as_ptr() as usize).wrapping_sub(self.body.as_ptr() as usize);
            if offset > self.body.len() {
                return Err(de::Error::custom("raw value outside the body"));
            }
            self.out.borrow_mut().push(Entry {
                key,
                raw: text,
                offset,
            });
        }
        Ok(())
    }
}

/// Reads the top-level entries of `body`. Entries before a syntax error are kept, so a
/// truncated body still shows where its secrets are.
pub fn scan(body: &[u8]) -> Scan<'_> {
    let out = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = de.deserialize_map(Entries { body, out: &out });
    let complete = read.is_ok() && de.end().is_ok() && std::str::from_utf8(body).is_ok();
    Scan {
        entries: out.into_inner(),
        complete,
    }
}

/// `body` with every top-level string value of the `keys` rotated ([`crate::rotate_byte`]
/// on each letter and digit written literally, escapes untouched), or `None` if that
/// changes nothing. The rotated body has the same length, the same JSON structure and the
/// same validity for every token; only the secrets' text differs.
pub fn rotate_values(body: &[u8], scan: &Scan<'_>, keys: &[&str]) -> Option<Vec<u8>> {
    let mut out = body.to_vec();
    let mut changed = false;
    for e in scan
        .entries
        .iter()
        .filter(|e| keys.contains(&e.key.as_str()))
    {
        let raw = e.raw.as_bytes();
        if raw.first() != Some(&b'"') {
            continue;
        }
        let mut i = 1;
        while i + 1 < raw.len() {
            match raw[i] {
                b'\\' if raw.get(i + 1) == Some(&b'u') => i += 6,
                b'\\' => i += 2,
                b => {
                    let r = crate::rotate_byte(b);
                    changed |= r != b;
                    out[e.offset + i] = r;
                    i += 1;
                }
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_and_rotates() {
        let body = br#" {"a":"xz9\"\u0041q", "b":[1,{"a":2}], "a":null} "#;
        let s = scan(body);
        assert!(s.complete);
        assert_eq!(s.entries.len(), 3);
        assert!(s.repeated("a"));
        assert_eq!(s.value("b"), Some(Ok(serde_json::json!([1, {"a": 2}]))));
        let rotated = rotate_values(body, &s, &["a"]).unwrap();
        assert_eq!(
            std::str::from_utf8(&rotated).unwrap(),
            r#" {"a":"ya0\"\u0041r", "b":[1,{"a":2}], "a":null} "#
        );
        assert_eq!(rotate_values(body, &s, &["b"]), None);
    }

    #[test]
    fn keeps_entries_before_an_error() {
        let s = scan(br#"{"k":"v","x":tru"#);
        assert!(!s.complete);
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.entries[0].raw, r#""v""#);
        assert!(!scan(br#"{"k":1} {"#).complete);
        assert!(!scan(b"[1]").complete);
        assert!(!scan(b"{\"k\":1}\xff").complete);
        assert_eq!(
            scan(br#"{"k":1e400}"#).value("k"),
            Some(Err(())),
            "beyond f64: the raw value is fine, the Value is not"
        );
    }
}
