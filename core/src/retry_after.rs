//! `Retry-After` (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date.

use http::header::RETRY_AFTER;
use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// The delay a response's `Retry-After` header asks for.
///
/// Accepts delta-seconds (`120`; values beyond `u64` saturate) or an HTTP-date in any of
/// the three RFC 9110 formats, converted with `now` (the caller's wall clock: the core
/// never reads one). A date in the past means zero. A missing, empty or unparseable value
/// is ignored (`None`); only the first `Retry-After` field is considered.
///
/// ```
/// use http::{header::RETRY_AFTER, HeaderMap, HeaderValue};
/// use std::time::{Duration, SystemTime};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
/// assert_eq!(
///     reauth_core::parse_retry_after(&headers, SystemTime::now()),
///     Some(Duration::from_secs(120))
/// );
/// ```
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits, so parsing can only fail by overflow.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(value: &[u8], now: SystemTime) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_bytes(value).unwrap());
        parse_retry_after(&h, now)
    }

    #[test]
    fn rfc9110_examples() {
        // "Fri, 31 Dec 1999 23:59:59 GMT" is 946684799 s after the epoch.
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_799);
        let before = date - Duration::from_secs(90);
        assert_eq!(
            parse(b"Fri, 31 Dec 1999 23:59:59 GMT", before),
            Some(Duration::from_secs(90))
        );
        // Obsolete formats too (RFC 850, asctime).
        assert_eq!(
            parse(b"Friday, 31-Dec-99 23:59:59 GMT", before),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse(b"Fri Dec 31 23:59:59 1999", before),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse(b"120", before), Some(Duration::from_secs(120)));
    }

    #[test]
    fn past_dates_garbage_and_overflow() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert_eq!(
            parse(b"Fri, 31 Dec 1999 23:59:59 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse(b" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse(b"99999999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for garbage in [
            &b""[..],
            b"-1",
            b"1.5",
            b"soon",
            b"120, 60",
            b"\xff\xfe",
            b"0x10",
        ] {
            assert_eq!(parse(garbage, now), None, "{garbage:?}");
        }
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }
}
