//! The bodies of the cargo-fuzz targets for `reauth-core`, plus the helpers and oracles
//! they share. Each target in `fuzz_targets/` is one line calling into a module here, so
//! the same code also runs under `cargo test` (over the committed seed corpus) and can be
//! read without libFuzzer.
//!
//! | target | input | checked beyond "no panic, no hang" |
//! |---|---|---|
//! | [`machine`] | `arbitrary` bytes: a config tweak and a schedule of [`reauth_core::check::Op`]s | every invariant of [`reauth_core::check::Harness`] after every step, then `finish()` |
//! | [`token_response`] | an HTTP response as text (status line, headers, blank line, body) | outcome vs an independent reading of the body; secrets never shown |
//! | [`challenge`] | `WWW-Authenticate` values, one per line | structure, caps, round trip, class-only parsing; `should_refresh` only on 401 |
//! | [`custom_protocol`] | an HTTP response as text | as `token_response`, for `JsonRefreshProtocol` |
//! | [`store_file`] | the bytes of a token file | typed errors that never depend on the text; accepted records (v2, or v1 read as the legacy record) round-trip into the current format |
//! | [`sim`] | a seed and a few knobs | every rule of the multi-session simulator ([`reauth_core::sim`]) after every step |

#![forbid(unsafe_code)]

pub mod challenge;
pub mod custom_protocol;
pub mod http_input;
pub mod json_scan;
pub mod machine;
pub mod sim;
pub mod store_file;
pub mod token_response;

/// Maps each ASCII letter and digit to the next one (`z` to `a`, `9` to `0`) and leaves
/// every other character alone. Letters stay letters and digits stay digits, so every
/// decision a parser takes on character classes (token characters, visible ASCII,
/// separators) is the same for `rotate(x)` as for `x`; only the text differs. A parser
/// whose output changes under this rotation of a secret is showing the secret.
pub fn rotate_byte(b: u8) -> u8 {
    match b {
        b'z' => b'a',
        b'Z' => b'A',
        b'9' => b'0',
        b'a'..=b'y' | b'A'..=b'Y' | b'0'..=b'8' => b + 1,
        other => other,
    }
}

/// [`rotate_byte`] over a whole string.
pub fn rotate_str(s: &str) -> String {
    s.chars()
        .map(|c| match u8::try_from(c) {
            Ok(b) if b.is_ascii() => char::from(rotate_byte(b)),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_classes() {
        assert_eq!(rotate_str("az-AZ_09 ü\"\\"), "ba-BA_10 ü\"\\");
        for b in 0..=u8::MAX {
            let r = rotate_byte(b);
            assert_eq!(b.is_ascii_alphabetic(), r.is_ascii_alphabetic());
            assert_eq!(b.is_ascii_uppercase(), r.is_ascii_uppercase());
            assert_eq!(b.is_ascii_digit(), r.is_ascii_digit());
            assert_eq!(b.is_ascii_graphic(), r.is_ascii_graphic());
            if !b.is_ascii_alphanumeric() {
                assert_eq!(b, r);
            }
        }
    }
}
