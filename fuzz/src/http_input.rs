//! The input format of the response targets: an HTTP response written as text, so seed
//! files are readable and mutations stay meaningful.
//!
//! ```text
//! HTTP/1.1 400 Bad Request          <- status line: the first 3-digit word is the status
//! Content-Type: application/json    <- headers, one per line, until an empty line
//! Retry-After: 120
//! x-fuzz-now: 1700000000            <- controls for the harness (not passed on)
//!
//! {"error":"invalid_grant"}         <- body: every byte after the empty line, as is
//! ```
//!
//! Lines end with `\n` or `\r\n`. A status line without a valid status means 200. Header
//! lines that are not `name: value` with a valid name and value are skipped. Without an
//! empty line the body is empty.
//!
//! Controls (case-insensitive names, never passed to the code under test):
//! - `x-fuzz-now: <seconds since the epoch>`: the wall clock for HTTP-date `Retry-After`
//!   (default [`DEFAULT_NOW_SECS`]);
//! - `x-fuzz-pad: <n>`: append `n` spaces (at most [`MAX_PAD`]) to the body, so bodies
//!   larger than the size caps are reachable from small inputs;
//! - `x-fuzz-permanent: <status>`: for `custom_protocol`, one more status that means
//!   "the refresh token is dead".

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::time::{Duration, SystemTime};

/// The default wall clock: 2023-11-14T22:13:20Z.
pub const DEFAULT_NOW_SECS: u64 = 1_700_000_000;

/// The largest `x-fuzz-pad`: a little over the 64 KiB body caps.
pub const MAX_PAD: usize = 70_000;

/// A decoded response.
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers, controls removed.
    pub headers: HeaderMap,
    /// The body, padded.
    pub body: Vec<u8>,
    /// The wall clock.
    pub now: SystemTime,
    /// `x-fuzz-permanent` values.
    pub permanent: Vec<StatusCode>,
}

/// Splits `data` into lines (without their `\n` / `\r\n`) and the rest after the first
/// empty line, if there is one.
fn split_head(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = after;
        if line.is_empty() && !lines.is_empty() {
            return (lines, rest);
        }
        lines.push(line);
    }
    (lines, rest)
}

fn status_of(line: &[u8]) -> StatusCode {
    line.split(|b| b.is_ascii_whitespace())
        .find(|w| w.len() == 3 && w.iter().all(u8::is_ascii_digit))
        .and_then(|w| StatusCode::from_bytes(w).ok())
        .unwrap_or(StatusCode::OK)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

fn number<T: std::str::FromStr>(value: &[u8]) -> Option<T> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Decodes `data`; never fails.
pub fn parse(data: &[u8]) -> Response {
    let (lines, body) = split_head(data);
    let mut response = Response {
        status: lines.first().map_or(StatusCode::OK, |l| status_of(l)),
        headers: HeaderMap::new(),
        body: body.to_vec(),
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(DEFAULT_NOW_SECS),
        permanent: Vec::new(),
    };
    let mut pad = 0;
    for line in lines.iter().skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (trim(&line[..colon]), trim(&line[colon + 1..]));
        match name.to_ascii_lowercase().as_slice() {
            b"x-fuzz-now" => {
                if let Some(at) = number::<u64>(value)
                    .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
                {
                    response.now = at;
                }
            }
            b"x-fuzz-pad" => pad = number::<usize>(value).unwrap_or(0).min(MAX_PAD),
            b"x-fuzz-permanent" => {
                if let Some(status) =
                    number::<u16>(value).and_then(|s| StatusCode::from_u16(s).ok())
                {
                    response.permanent.push(status);
                }
            }
            _ => {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
                {
                    response.headers.append(name, value);
                }
            }
        }
    }
    response.body.resize(response.body.len() + pad, b' ');
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_response() {
        let r = parse(
            b"HTTP/1.1 401 Unauthorized\r\nRetry-After: 7\r\nbad line\r\nx-fuzz-pad: 3\r\nX-Fuzz-Now: 5\r\n\r\n{\"a\":1}\n\nmore",
        );
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers["retry-after"], "7");
        assert_eq!(r.body, b"{\"a\":1}\n\nmore   ");
        assert_eq!(r.now, SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn defaults() {
        let r = parse(b"");
        assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
        let r = parse(b"nonsense 1234\nx-fuzz-permanent: 400");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.permanent, [StatusCode::BAD_REQUEST]);
        assert!(r.body.is_empty());
        let r = parse(b"\n\nbody");
        assert_eq!(r.body, b"body");
    }
}
