//! Session configuration. Every default is overridable; see the field docs for why each
//! default is what it is.

use crate::origin::Origin;
use http::{HeaderMap, StatusCode};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How the session behaves. Build with [`Config::new`], then adjust the public fields.
///
/// ```
/// use reauth_core::{Config, Origin};
/// use std::time::Duration;
///
/// let mut config = Config::new(Origin::parse("https://api.example.com").unwrap());
/// config.leeway = Duration::from_secs(30);
/// config.allowed_origins.push(Origin::parse("https://files.example.com").unwrap());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Origins that may receive the access token. Default: only the API origin given to
    /// [`Config::new`]. A request to any other origin is sent without a credential.
    pub allowed_origins: Vec<Origin>,
    /// Requests stop using a token this long before its expiry and wait for a refresh
    /// instead, so a token never dies in flight. Default 10 s (covers network latency and
    /// modest clock drift; the server's 401 always wins anyway).
    pub leeway: Duration,
    /// Before the leeway, a background refresh starts this early while requests keep using
    /// the current token. Default 60 s: one refresh round trip fits many times over.
    pub refresh_window: Duration,
    /// A refresh that has not answered by then is reported overdue
    /// ([`Event::RefreshOverdue`](crate::Event::RefreshOverdue)). It stays in doubt: with
    /// refresh-token rotation the server may have rotated already, so presenting the same
    /// refresh token again could revoke the session. Default 30 s.
    pub refresh_timeout: Duration,
    /// The hard cap of one refresh: the driver aborts the call this long after it started
    /// and reports a transient timeout (the deadline is in
    /// [`Command::StartRefresh`](crate::Command::StartRefresh)). The store's refresh lease
    /// lives a little longer, so no other process presents the same refresh token while
    /// this one may still be answered. Default 120 s.
    pub refresh_deadline: Duration,
    /// The store's refresh lease lives `refresh_deadline` plus this, so that no other
    /// process presents the same refresh token while this one's call may still be
    /// answered; a holder that dies frees it when its time is up. Default 10 s.
    pub lease_margin: Duration,
    /// If true, the session refreshes on its timers even when no request is flowing, so a
    /// token is always warm. Default false: an idle session does not rotate tokens (a
    /// server's refresh-token idle timeout then works as meant); the next request
    /// refreshes. "Flowing" means a request began within the last
    /// [`refresh_window`](Self::refresh_window).
    pub keep_warm: bool,
    /// A queued request fails with [`Error::Timeout`](crate::Error::Timeout) after this
    /// long. Default 60 s: long enough to ride out a few backoffs, short enough that no
    /// caller waits forever.
    pub waiter_timeout: Duration,
    /// Retry schedule for transient refresh failures.
    pub backoff: Backoff,
    /// What exhausted attempts mean. Default: keep the session.
    pub on_exhausted: OnExhausted,
    /// If true (the default), a refresh needs a refresh token; without one an expired
    /// session is logged out. Set false for grants that need none (client credentials):
    /// the first request then acquires a token.
    pub requires_refresh_token: bool,
    /// Which responses mean "the token is bad, refresh it". Default: RFC 6750 (a 401);
    /// [`RefreshTrigger::Rfc6750OrBare403`] for APIs that answer expiry with a bare 403.
    pub trigger: RefreshTrigger,
    /// Seed of the backoff jitter. Adapters seed it randomly so that many clients do not
    /// retry in lockstep; tests fix it for determinism.
    pub seed: u64,
}

impl Config {
    /// The defaults, allowing the token only at `api_origin`.
    pub fn new(api_origin: Origin) -> Self {
        Self {
            allowed_origins: vec![api_origin],
            leeway: Duration::from_secs(10),
            refresh_window: Duration::from_secs(60),
            refresh_timeout: Duration::from_secs(30),
            refresh_deadline: Duration::from_secs(120),
            lease_margin: Duration::from_secs(10),
            keep_warm: false,
            waiter_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
            on_exhausted: OnExhausted::KeepSession,
            requires_refresh_token: true,
            trigger: RefreshTrigger::default(),
            seed: 0x5EED_F00D_u64,
        }
    }
}

/// Exponential backoff with full jitter: the n-th retry waits a uniformly random time in
/// `[0, min(cap, base * 2^n))`, but never less than the server's `Retry-After`.
///
/// The same schedule holds back refreshing when fresh tokens keep being refused (an API
/// that rejects every token): once n ≥ 2 refreshed tokens in a row were refused within
/// `cap` of their arrival, the next refresh waits at least half of
/// `min(cap, base * 2^(n-2))` after the last one arrived, and requests meanwhile fail
/// [`Unauthorized`](crate::Error::Unauthorized) at once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// First retry's upper bound. Default 250 ms.
    pub base: Duration,
    /// Largest upper bound. Default 30 s.
    pub cap: Duration,
    /// Refresh tries per episode, the first included. Default 5; at least 1 is made.
    pub max_attempts: u32,
    /// Largest `Retry-After` honoured; longer requests are cut to this. Default 5 min.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            max_attempts: 5,
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// What happens when transient failures exhaust the refresh attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnExhausted {
    /// Keep the tokens, fail the current waiters with a transient error, and let the next
    /// request start a new refresh. An outage must not log users out.
    #[default]
    KeepSession,
    /// Log the session out.
    LogOut,
}

/// A predicate over a response's status and headers.
pub type TriggerFn = Arc<dyn Fn(StatusCode, &HeaderMap) -> bool + Send + Sync>;

/// Decides whether a response means the access token is no longer good.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum RefreshTrigger {
    /// RFC 6750: a 401 refreshes unless its `Bearer` challenge rules it out (e.g.
    /// `insufficient_scope`); a 403 never refreshes.
    #[default]
    Rfc6750,
    /// [`Rfc6750`](Self::Rfc6750), and a 403 refreshes too unless a `Bearer` challenge
    /// gives another reason: a bare 403 (no `WWW-Authenticate`, or only other schemes) or
    /// one whose challenge says `error="invalid_token"` refreshes; a 403 whose challenge
    /// says `insufficient_scope`, any other error, or no error, never does.
    ///
    /// For APIs that answer an expired token with a bare 403. Known to need it:
    /// django-oauth-toolkit's stock resource views and decorators (`ProtectedResourceView`,
    /// `ScopedProtectedResourceView`, `ReadWriteScopedResourceView`,
    /// `@protected_resource()`, `@rw_protected_resource()`), which answer every refused
    /// token with `HttpResponseForbidden`. (Its Django REST framework authentication class
    /// answers 401 with a challenge: [`Rfc6750`](Self::Rfc6750) suffices there.)
    ///
    /// The price: such a server's 403 for a token that lacks a scope looks the same, so it
    /// costs a refresh and one replay, and the caller gets
    /// [`Error::Unauthorized`](crate::Error::Unauthorized) instead of the 403. If fresh
    /// tokens keep being refused, refreshing is held back (see [`Backoff`]).
    ///
    /// ```
    /// use http::{header::WWW_AUTHENTICATE, HeaderMap, HeaderValue, StatusCode};
    /// use reauth_core::{Config, Origin, RefreshTrigger};
    ///
    /// let mut config = Config::new(Origin::parse("https://api.example.com")?);
    /// config.trigger = RefreshTrigger::Rfc6750OrBare403;
    ///
    /// assert!(config.trigger.fires(StatusCode::FORBIDDEN, &HeaderMap::new()));
    /// let mut scope = HeaderMap::new();
    /// scope.insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="insufficient_scope""#));
    /// assert!(!config.trigger.fires(StatusCode::FORBIDDEN, &scope));
    /// assert!(config.trigger.fires(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Rfc6750OrBare403,
    /// For gRPC (and plain HTTP on the same client): a trailers-only `UNAUTHENTICATED`
    /// (`grpc-status: 16` in the response headers, whatever the HTTP status, normally 200)
    /// refreshes, and otherwise what [`Rfc6750`](Self::Rfc6750) says. `PERMISSION_DENIED`
    /// (7) never refreshes. An `UNAUTHENTICATED` in the trailers of a streamed response
    /// comes too late for a trigger: see the tower adapter's `ResponseBody`.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, StatusCode};
    /// use reauth_core::RefreshTrigger;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("grpc-status", HeaderValue::from_static("16"));
    /// assert!(RefreshTrigger::Grpc.fires(StatusCode::OK, &headers));
    /// assert!(!RefreshTrigger::Grpc.fires(StatusCode::OK, &HeaderMap::new()));
    /// assert!(RefreshTrigger::Grpc.fires(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
    /// ```
    Grpc,
    /// Any of these statuses refreshes, whatever the headers say.
    Statuses(Vec<StatusCode>),
    /// A predicate over status and headers, for APIs that signal expiry their own way.
    Custom(TriggerFn),
}

impl RefreshTrigger {
    /// A trigger from a predicate.
    pub fn custom(f: impl Fn(StatusCode, &HeaderMap) -> bool + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// True if this response should refresh the token.
    pub fn fires(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        match self {
            Self::Rfc6750 => crate::challenge::should_refresh(status, headers),
            Self::Rfc6750OrBare403 => crate::challenge::should_refresh_or_bare_403(status, headers),
            Self::Grpc => {
                crate::challenge::grpc_unauthenticated(headers)
                    || crate::challenge::should_refresh(status, headers)
            }
            Self::Statuses(list) => list.contains(&status),
            Self::Custom(f) => f(status, headers),
        }
    }
}

impl fmt::Debug for RefreshTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rfc6750 => f.write_str("Rfc6750"),
            Self::Rfc6750OrBare403 => f.write_str("Rfc6750OrBare403"),
            Self::Grpc => f.write_str("Grpc"),
            Self::Statuses(s) => f.debug_tuple("Statuses").field(s).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
