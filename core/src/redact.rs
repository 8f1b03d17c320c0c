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
        let word = if token_like(word) { "[…]" } else { word };
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

/// Shortest word that [`token_like`] judges by its letters and digits.
const MIN_MIXED_CHARS: usize = 8;

/// True for a word that may be a token a server echoed back: a long unbroken word, or a
/// shorter one that mixes letters with digits (`a1B2c3d4`, `rt-7f3k92`) or cases inside
/// the word (`tGzvJOkFxQ`), which prose rarely does.
fn token_like(word: &str) -> bool {
    let word = word.trim_matches(|c: char| "\"'`.,;:!?()[]{}<>".contains(c));
    let len = word.chars().count();
    if len >= MAX_WORD_CHARS {
        return true;
    }
    if len < MIN_MIXED_CHARS {
        return false;
    }
    let digits = word.chars().any(|c| c.is_ascii_digit());
    let letters = word.chars().any(char::is_alphabetic);
    let inner_upper = word.chars().skip(1).any(char::is_uppercase);
    let lower = word.chars().any(char::is_lowercase);
    (digits && letters) || (inner_upper && lower)
}

/// The RFC 6749 (section 5.2 and 4.1.2.1) and RFC 6750 (section 3.1) error codes, shown
/// as they are. Any other `error` a server sends is shown as `other`: it is server text,
/// and a badly written server may put anything there, a token included.
const KNOWN_CODES: [&str; 12] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "unsupported_response_type",
    "server_error",
    "temporarily_unavailable",
    "invalid_token",
    "insufficient_scope",
];

/// `code` if it is a registered OAuth2 error code, else `other`.
pub(crate) fn error_code(code: &str) -> &str {
    if KNOWN_CODES.contains(&code) {
        code
    } else {
        "other"
    }
}

/// A `Location` header value safe to show: no query, fragment or user information (they
/// may carry secrets), token-like path segments elided, cut to [`MAX_DETAIL_CHARS`].
pub(crate) fn location(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let text = text.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    let (authority, path) = match scheme {
        Some(_) => rest.split_at(rest.find('/').unwrap_or(rest.len())),
        None => ("", rest),
    };
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let path = path
        .split('/')
        .map(|segment| {
            if segment.chars().nth(MAX_WORD_CHARS - 1).is_some() {
                "[…]"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let whole = match scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => path,
    };
    let clean: String = whole
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DETAIL_CHARS)
        .collect();
    if clean.trim().is_empty() {
        "(empty)".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_in_server_text_are_elided() {
        assert_eq!(
            server_text("token 'rt-7f3k92x' was revoked (a1B2c3d4)"),
            Some("token […] was revoked […]".into())
        );
        assert_eq!(
            server_text("bad token tGzvJOkFxQ; see RFC 6749, section 5.2"),
            Some("bad token […] see RFC 6749, section 5.2".into())
        );
        assert_eq!(
            server_text("The refresh_token expired on 2024-01-01"),
            Some("The refresh_token expired on 2024-01-01".into())
        );
        assert_eq!(error_code("invalid_grant"), "invalid_grant");
        assert_eq!(error_code("insufficient_scope"), "insufficient_scope");
        assert_eq!(error_code("rt-secret-echo"), "other");
        assert_eq!(error_code("Invalid_Grant"), "other");
    }

    #[test]
    fn a_location_loses_what_may_be_secret() {
        assert_eq!(
            location(b"https://user:pw@evil.example:8443/a/b?refresh_token=x#f"),
            "https://evil.example:8443/a/b"
        );
        assert_eq!(location(b"/next?code=1"), "/next");
        assert_eq!(
            location(b"https://h/cb/2YotnFZFEjr1zCsicMWpAAxyz1234/x"),
            "https://h/cb/[…]/x"
        );
        assert_eq!(location(b"?only=query"), "(empty)");
        assert!(location("x".repeat(1000).as_bytes()).chars().count() <= MAX_DETAIL_CHARS);
    }

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
