//! Making server-supplied text (e.g. `error_description`) safe to put in an error detail.

/// Longest detail kept, in characters. Enough for a human-readable reason.
pub(crate) const MAX_DETAIL_CHARS: usize = 200;

/// Words at least this long are replaced by `[…]`: a badly written server may echo the
/// token it rejected, and tokens are long unbroken words while prose is not.
const MAX_WORD_CHARS: usize = 24;

/// Cleans `text` for a log line: control characters become spaces, runs of whitespace
/// collapse, token-like long words are elided and the result is cut to
/// [`MAX_DETAIL_CHARS`]. Returns `None` if nothing printable is left.
pub(crate) fn server_text(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = 0;
    // Bounded: stop reading once the output is full.
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        let long = word.chars().nth(MAX_WORD_CHARS - 1).is_some();
        let word = if long { "[…]" } else { word };
        let len = word.chars().count();
        if chars + len + usize::from(chars > 0) > MAX_DETAIL_CHARS {
            out.push('…');
            break;
        }
        if chars > 0 {
            out.push(' ');
            chars += 1;
        }
        out.push_str(word);
        chars += len;
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_server_text() {
        assert_eq!(
            server_text("  The  token\r\nexpired\u{7}"),
            Some("The token expired".into())
        );
        assert_eq!(server_text(" \n "), None);
        assert_eq!(
            server_text("token 2YotnFZFEjr1zCsicMWpAAxyz1234 is revoked"),
            Some("token […] is revoked".into())
        );
        let long = server_text(&"word ".repeat(1000)).unwrap();
        assert!(
            long.chars().count() <= MAX_DETAIL_CHARS + 1,
            "{}",
            long.len()
        );
        assert!(long.ends_with('…'));
    }
}
