//! Searching captured logs for secrets, whole or in pieces, after putting back together
//! what HTTP stacks log of the bytes on the wire.
//!
//! A wire dump spreads a token over many lines: ureq-proto logs every byte sent and
//! received at trace level as rows of 16 (hex, then text), reqwest's
//! `connection_verbose` logs each read and write as an escaped byte string (`b"…"`). A
//! plain substring search over such logs finds nothing, yet the token is there. So
//! [`LogScan`] decodes every hex row and byte string, joins what one thread or one
//! connection dumped in order, and searches those streams as well as each line of text.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Captured log text, with its wire dumps reassembled.
///
/// ```
/// use reauth_testkit::LogScan;
///
/// // A token split across two rows of ureq-proto's hex dump, on one thread.
/// let logs = "\
/// 2026-01-01T00:00:00Z TRACE ThreadId(7) ureq_proto::util: 4175 7468 6f72 697a 6174 696f 6e3a 2042  Authorization:.B
/// 2026-01-01T00:00:00Z TRACE ThreadId(7) ureq_proto::util: 6561 7265 7220 7365 6372 6574 2d74 6f6b  earer.secret-tok
/// 2026-01-01T00:00:00Z TRACE ThreadId(7) ureq_proto::util: 656e 0d0a ---- ---- ---- ---- ---- ----  en..............
/// ";
/// let scan = LogScan::new(logs);
/// assert!(!logs.contains("secret-token"));
/// assert!(scan.find("secret-token", 12).is_some());
/// assert!(scan.find("another-token", 12).is_none());
/// ```
#[derive(Debug, Default)]
pub struct LogScan {
    lines: Vec<String>,
    /// Decoded wire bytes, per stream (a thread, or a connection and direction), in order.
    streams: BTreeMap<String, Vec<u8>>,
}

impl LogScan {
    /// Reads `logs` (one event per line, as `tracing-subscriber`'s fmt writes them; with
    /// thread ids on, the dumps of concurrent threads are told apart).
    pub fn new(logs: &str) -> Self {
        let mut scan = LogScan::default();
        for line in logs.lines() {
            scan.lines.push(line.to_owned());
            if let Some(bytes) = hex_row(line) {
                scan.stream(thread(line)).extend(bytes);
            }
            let strings = byte_strings(line);
            if !strings.is_empty() {
                let key = connection(line).unwrap_or_else(|| thread(line));
                let stream = scan.stream(key);
                for s in strings {
                    stream.extend(s);
                }
            }
        }
        scan
    }

    fn stream(&mut self, key: String) -> &mut Vec<u8> {
        self.streams.entry(key).or_default()
    }

    /// How many wire bytes were decoded, over all streams.
    pub fn wire_bytes(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }

    /// Where `secret`, or any `piece` consecutive bytes of it, appears: the number of the
    /// line of text, or the reassembled stream (never the secret itself). `None` if it
    /// appears nowhere. A `piece` of 0, or one longer than the secret, means the whole
    /// secret.
    pub fn find(&self, secret: &str, piece: usize) -> Option<String> {
        let piece = if piece == 0 || piece > secret.len() {
            secret.len()
        } else {
            piece
        };
        let pieces: Vec<&[u8]> = secret.as_bytes().windows(piece).collect();
        for (i, line) in self.lines.iter().enumerate() {
            if pieces.iter().any(|p| contains(line.as_bytes(), p)) {
                return Some(format!("log line {}", i + 1));
            }
        }
        for (key, bytes) in &self.streams {
            if pieces.iter().any(|p| contains(bytes, p)) {
                return Some(format!("the wire bytes dumped by {key}"));
            }
        }
        None
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || needle.len() > haystack.len() {
        return false;
    }
    // A fast first-byte scan; the full comparison only where it matches.
    let (first, rest) = (needle[0], &needle[1..]);
    let last_start = haystack.len() - needle.len();
    let mut from = 0;
    while let Some(i) = haystack[from..=last_start].iter().position(|&b| b == first) {
        let at = from + i;
        if &haystack[at + 1..at + needle.len()] == rest {
            return true;
        }
        from = at + 1;
        if from > last_start {
            break;
        }
    }
    false
}

/// The thread a line was logged on (`ThreadId(N)`), or one stream for all.
fn thread(line: &str) -> String {
    line.find("ThreadId(")
        .and_then(|i| line[i..].find(')').map(|j| line[i..=i + j].to_owned()))
        .unwrap_or_else(|| "the log".to_owned())
}

/// reqwest's verbose connection lines: `{id:08x} read: b"…"` or `{id:08x} write…: b"…"`.
fn connection(line: &str) -> Option<String> {
    let at = line.find(" read: ").or_else(|| line.find(" write"))?;
    let id = line[..at].rsplit(' ').next()?;
    let direction = if line[at..].starts_with(" read") {
        "read"
    } else {
        "write"
    };
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("connection {id} ({direction})"))
}

/// The bytes of a row of ureq-proto's hex dump: eight groups of four hex digits (`--`
/// for none), then the same bytes as text.
fn hex_row(line: &str) -> Option<Vec<u8>> {
    let groups: Vec<&str> = line.split(' ').collect();
    let start = groups
        .windows(8)
        .position(|w| w.iter().all(|g| is_hex_group(g)))?;
    let mut bytes = Vec::with_capacity(16);
    for group in &groups[start..start + 8] {
        for pair in [&group[..2], &group[2..]] {
            if pair != "--" {
                bytes.push(u8::from_str_radix(pair, 16).ok()?);
            }
        }
    }
    Some(bytes)
}

fn is_hex_group(g: &str) -> bool {
    g.len() == 4
        && g.as_bytes().chunks(2).all(|pair| {
            pair == b"--"
                || pair
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
}

/// Every escaped byte string in a line (`b"…"`, Rust's escapes), decoded.
fn byte_strings(line: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("b\"") {
        let body = &rest[start + 2..];
        let (decoded, used) = unescape(body);
        out.push(decoded);
        rest = &body[used.min(body.len())..];
    }
    out
}

/// Decodes up to the closing quote; returns the bytes and how much of `s` was read.
fn unescape(s: &str) -> (Vec<u8>, usize) {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return (out, i + 1),
            b'\\' if i + 1 < b.len() => {
                let (byte, len) = match b[i + 1] {
                    b'n' => (Some(b'\n'), 2),
                    b'r' => (Some(b'\r'), 2),
                    b't' => (Some(b'\t'), 2),
                    b'0' => (Some(0), 2),
                    b'x' => (
                        s.get(i + 2..i + 4)
                            .and_then(|h| u8::from_str_radix(h, 16).ok()),
                        4,
                    ),
                    other => (Some(other), 2),
                };
                out.extend(byte);
                i += len;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    (out, i)
}

impl std::fmt::Display for LogScan {
    /// A summary: lines and decoded bytes per stream (no content).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} lines", self.lines.len())?;
        for (key, bytes) in &self.streams {
            let mut s = String::new();
            let _ = write!(s, "; {key}: {} bytes", bytes.len());
            f.write_str(&s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_byte_strings_are_joined_per_connection() {
        let logs = "\
TRACE reqwest::connect::verbose: 0a1b2c3d write: b\"GET / HTTP/1.1\\r\\nauthorization: Bearer sec\"
TRACE reqwest::connect::verbose: 99999999 read: b\"HTTP/1.1 200 OK\\r\\n\"
TRACE reqwest::connect::verbose: 0a1b2c3d write: b\"ret-token\\r\\n\\x00\\\"\"
";
        let scan = LogScan::new(logs);
        assert_eq!(
            scan.find("secret-token", 12).as_deref(),
            Some("the wire bytes dumped by connection 0a1b2c3d (write)")
        );
        assert_eq!(scan.find("secret-token", 4).as_deref(), Some("log line 3"));
        assert_eq!(scan.wire_bytes(), 41 + 17 + 13);
    }

    #[test]
    fn rows_of_other_threads_do_not_join() {
        let row = |thread: u32, hex: &str| {
            format!("TRACE ThreadId({thread}) ureq_proto::util: {hex}  ................\n")
        };
        let logs = [
            row(1, "7365 6372 6574 2d2d ---- ---- ---- ----"),
            row(2, "746f 6b65 6e21 ---- ---- ---- ---- ----"),
        ]
        .concat();
        let scan = LogScan::new(&logs);
        assert_eq!(scan.wire_bytes(), 14);
        assert!(scan.find("secret--token!", 0).is_none());
        assert!(scan.find("secret--", 0).is_some());
        assert!(scan.to_string().contains("ThreadId(2): 6 bytes"));
    }
}
