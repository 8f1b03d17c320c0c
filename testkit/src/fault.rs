//! Faults the token endpoints can be told to inject, and their textual names.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A misbehaviour injected into the next token-endpoint call (`/oauth/token` or
/// `/auth/refresh`). Queue them with [`TestServer::push_fault`](crate::TestServer::push_fault).
///
/// Every fault can also be written as a name (see [`Fault::parse`]); `Display` writes
/// the canonical name back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// 500 Internal Server Error.
    ServerError,
    /// 503 Service Unavailable, with `Retry-After` (delta-seconds) if given.
    Unavailable {
        /// Value of the `Retry-After` header, rounded up to whole seconds.
        retry_after: Option<Duration>,
    },
    /// 429 Too Many Requests, with `Retry-After` (delta-seconds) if given.
    TooManyRequests {
        /// Value of the `Retry-After` header, rounded up to whole seconds.
        retry_after: Option<Duration>,
    },
    /// 400 `invalid_grant`, without revoking anything.
    InvalidGrant,
    /// 401 `invalid_client` with `WWW-Authenticate: Basic`.
    InvalidClient,
    /// 200 with a truncated JSON body.
    MalformedJson,
    /// 200 with a JSON body larger than 1 MiB.
    Oversized,
    /// No response: HTTP/1.1 closes the connection, HTTP/2 resets the stream.
    ConnectionReset,
    /// Never answers. The handler ends when the client disconnects or the server shuts
    /// down, so nothing is leaked.
    Hang,
    /// Processes the call normally (a refresh rotates the refresh token, a
    /// `client_credentials` grant issues its token, counters move), then waits this long
    /// before sending that answer. A client that gives up first has lost the new tokens.
    RotateThenDelay(Duration),
    /// Processes the call normally, then sends no response: HTTP/1.1 closes the
    /// connection, HTTP/2 resets the stream. The server has rotated; the client never
    /// learns the new refresh token.
    RotateThenDrop,
    /// Processes the call normally, then never answers (like [`Hang`](Self::Hang): the
    /// handler ends when the client disconnects or the server shuts down).
    RotateThenHang,
    /// This redirect status (300 to 399) with a `Location` on the leak listener
    /// (`/token-sink?next=here`): a client that follows it sends its refresh request,
    /// refresh token and client credentials included, to another origin, and
    /// [`Stats::leak_requests`](crate::Stats::leak_requests) counts it.
    Redirect(u16),
}

/// The valid fault names, for error messages and `--help` texts.
pub const FAULT_NAMES: &str = "delay:<N>ms|delay:<N>s, 500, 503[:<N>s], 429[:<N>s], \
invalid_grant, invalid_client, malformed, oversized, reset, hang, \
rotate-delay:<N>ms|rotate-delay:<N>s, rotate-drop, rotate-hang, redirect:<3xx>";

/// [`Fault::parse`] did not recognise the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {input:?}; valid faults: {valid}", valid = FAULT_NAMES)]
pub struct ParseFaultError {
    input: String,
}

impl ParseFaultError {
    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl Fault {
    /// Parses a fault name: `delay:500ms`, `delay:2s`, `500`, `503`, `503:5s`
    /// (with `Retry-After: 5`), `429`, `429:1s`, `invalid_grant`, `invalid_client`,
    /// `malformed`, `oversized`, `reset`, `hang`, and the late answers
    /// `rotate-delay:2s`, `rotate-drop`, `rotate-hang`, and `redirect:307` (any 3xx). Names are case-insensitive; a few
    /// aliases (`server_error`, `unavailable`, `too_many_requests`, `malformed_json`,
    /// `connection_reset`, and `_` for `-` in the `rotate-*` names) are accepted too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reauth_testkit::Fault;
    ///
    /// assert_eq!(Fault::parse("delay:250ms"), Ok(Fault::Delay(Duration::from_millis(250))));
    /// assert_eq!(
    ///     Fault::parse("503:2s"),
    ///     Ok(Fault::Unavailable { retry_after: Some(Duration::from_secs(2)) })
    /// );
    /// assert!(Fault::parse("explode").unwrap_err().to_string().contains("hang"));
    /// ```
    pub fn parse(s: &str) -> Result<Fault, ParseFaultError> {
        let err = || ParseFaultError {
            input: s.to_owned(),
        };
        let lower = s.trim().to_ascii_lowercase();
        let (name, arg) = match lower.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (lower.as_str(), None),
        };
        let retry_after = || arg.map(|a| parse_duration(a).ok_or_else(err)).transpose();
        let no_arg = |f: Fault| if arg.is_none() { Ok(f) } else { Err(err()) };
        match name {
            "delay" => Ok(Fault::Delay(
                parse_duration(arg.ok_or_else(err)?).ok_or_else(err)?,
            )),
            "500" | "server_error" => no_arg(Fault::ServerError),
            "503" | "unavailable" => Ok(Fault::Unavailable {
                retry_after: retry_after()?,
            }),
            "429" | "too_many_requests" => Ok(Fault::TooManyRequests {
                retry_after: retry_after()?,
            }),
            "invalid_grant" => no_arg(Fault::InvalidGrant),
            "invalid_client" => no_arg(Fault::InvalidClient),
            "malformed" | "malformed_json" => no_arg(Fault::MalformedJson),
            "oversized" => no_arg(Fault::Oversized),
            "reset" | "connection_reset" => no_arg(Fault::ConnectionReset),
            "hang" => no_arg(Fault::Hang),
            "rotate-delay" | "rotate_delay" => Ok(Fault::RotateThenDelay(
                parse_duration(arg.ok_or_else(err)?).ok_or_else(err)?,
            )),
            "rotate-drop" | "rotate_drop" => no_arg(Fault::RotateThenDrop),
            "rotate-hang" | "rotate_hang" => no_arg(Fault::RotateThenHang),
            "redirect" => match arg.ok_or_else(err)?.parse::<u16>() {
                Ok(status @ 300..=399) => Ok(Fault::Redirect(status)),
                _ => Err(err()),
            },
            _ => Err(err()),
        }
    }

    /// The stable snake_case kind name, used as the counter key in [`Stats`](crate::Stats).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Delay(_) => "delay",
            Fault::ServerError => "server_error",
            Fault::Unavailable { .. } => "unavailable",
            Fault::TooManyRequests { .. } => "too_many_requests",
            Fault::InvalidGrant => "invalid_grant",
            Fault::InvalidClient => "invalid_client",
            Fault::MalformedJson => "malformed_json",
            Fault::Oversized => "oversized",
            Fault::ConnectionReset => "connection_reset",
            Fault::Hang => "hang",
            Fault::RotateThenDelay(_) => "rotate_then_delay",
            Fault::RotateThenDrop => "rotate_then_drop",
            Fault::RotateThenHang => "rotate_then_hang",
            Fault::Redirect(_) => "redirect",
        }
    }
}

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::parse(s)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_retry = |f: &mut fmt::Formatter<'_>, code: &str, ra: &Option<Duration>| match ra {
            Some(d) => write!(f, "{code}:{}s", ceil_secs(*d)),
            None => f.write_str(code),
        };
        match self {
            Fault::Delay(d) => write!(f, "delay:{}ms", d.as_millis()),
            Fault::ServerError => f.write_str("500"),
            Fault::Unavailable { retry_after } => with_retry(f, "503", retry_after),
            Fault::TooManyRequests { retry_after } => with_retry(f, "429", retry_after),
            Fault::InvalidGrant => f.write_str("invalid_grant"),
            Fault::InvalidClient => f.write_str("invalid_client"),
            Fault::MalformedJson => f.write_str("malformed"),
            Fault::Oversized => f.write_str("oversized"),
            Fault::ConnectionReset => f.write_str("reset"),
            Fault::Hang => f.write_str("hang"),
            Fault::RotateThenDelay(d) => write!(f, "rotate-delay:{}ms", d.as_millis()),
            Fault::RotateThenDrop => f.write_str("rotate-drop"),
            Fault::RotateThenHang => f.write_str("rotate-hang"),
            Fault::Redirect(status) => write!(f, "redirect:{status}"),
        }
    }
}

/// Whole seconds, rounded up (`Retry-After` is delta-seconds).
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `250ms`, `2s`, `1m`. A bare number is refused: the unit would be a guess.
fn parse_duration(s: &str) -> Option<Duration> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let all = [
            Fault::Delay(Duration::from_millis(1500)),
            Fault::ServerError,
            Fault::Unavailable { retry_after: None },
            Fault::Unavailable {
                retry_after: Some(Duration::from_secs(3)),
            },
            Fault::TooManyRequests { retry_after: None },
            Fault::TooManyRequests {
                retry_after: Some(Duration::from_secs(1)),
            },
            Fault::InvalidGrant,
            Fault::InvalidClient,
            Fault::MalformedJson,
            Fault::Oversized,
            Fault::ConnectionReset,
            Fault::Hang,
            Fault::RotateThenDelay(Duration::from_millis(250)),
            Fault::RotateThenDelay(Duration::from_secs(3)),
            Fault::RotateThenDrop,
            Fault::RotateThenHang,
            Fault::Redirect(307),
            Fault::Redirect(302),
        ];
        for f in all {
            assert_eq!(Fault::parse(&f.to_string()), Ok(f), "{f}");
        }
    }

    #[test]
    fn bad_names_are_rejected() {
        for bad in [
            "",
            "delay",
            "delay:",
            "delay:5",
            "delay:xs",
            "500:1s",
            "hang:1s",
            "nope",
            "503:",
            "delay:ms",
            "rotate-delay",
            "rotate-delay:5",
            "rotate-drop:1s",
            "rotate-hang:",
            "rotate",
            "redirect",
            "redirect:200",
            "redirect:abc",
        ] {
            let e = Fault::parse(bad).unwrap_err();
            assert_eq!(e.input(), bad);
            assert!(e.to_string().contains("invalid_grant"), "{e}");
        }
        assert_eq!(Fault::parse(" HANG "), Ok(Fault::Hang));
        assert_eq!(
            Fault::parse("delay:2m"),
            Ok(Fault::Delay(Duration::from_secs(120)))
        );
        assert_eq!(
            Fault::parse("Rotate_Delay:2s"),
            Ok(Fault::RotateThenDelay(Duration::from_secs(2)))
        );
        assert_eq!(Fault::parse("rotate_drop"), Ok(Fault::RotateThenDrop));
        assert_eq!(Fault::parse("ROTATE-HANG"), Ok(Fault::RotateThenHang));
    }
}
