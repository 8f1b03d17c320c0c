//! Server configuration.

use std::time::Duration;

/// How a [`TestServer`](crate::TestServer) behaves. Build it from [`ServerConfig::default`]
/// and adjust the public fields or use the `with_*` helpers.
///
/// ```
/// use std::time::Duration;
/// use reauth_testkit::ServerConfig;
///
/// let config = ServerConfig::default()
///     .with_access_token_lifetime(Duration::from_secs(60))
///     .with_reuse_grace(Duration::from_secs(2))
///     .with_scope("read write admin");
/// assert!(config.rotate_refresh_tokens);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Lifetime of every issued access token (default 3600 s). `expires_in` is this,
    /// rounded up to whole seconds; the server enforces the exact duration.
    pub access_token_lifetime: Duration,
    /// Rotate the refresh token on every refresh (default `true`). When off, the OAuth
    /// response carries no `refresh_token` (the client keeps its old one) and replaying a
    /// refresh token is never a reuse.
    pub rotate_refresh_tokens: bool,
    /// How long an already-rotated refresh token is still tolerated (default zero).
    /// Inside the window a replay gets a fresh access token plus the family's current
    /// refresh token; after it, a replay revokes the whole family (RFC 9700 §4.14.2).
    pub reuse_grace: Duration,
    /// Revoke the family's earlier access tokens at every refresh (default `false`), as
    /// django-oauth-toolkit does: a request still in flight with the previous token gets
    /// 401 once the next one is issued.
    pub revoke_access_on_rotation: bool,
    /// The client id the token endpoint expects (default `reauth-test`).
    pub client_id: String,
    /// The client secret the token endpoint expects (default `s3cret`). `None` makes the
    /// client public: no secret is needed, and a client id, if sent, must match.
    pub client_secret: Option<String>,
    /// Space-separated scope granted to new token families (default `read write`). The
    /// `/api/scoped` route needs `admin`.
    pub scope: String,
    /// HTTP/2 streams one connection may have open at once (default 20,000), so that a
    /// single h2c connection can carry thousands of truly concurrent requests.
    pub http2_max_concurrent_streams: u32,
    /// Port of the main listener on 127.0.0.1 (default 0: any free port). The leak
    /// listener always takes a free port.
    pub port: u16,
    /// Serve the HTTP control interface (`/_admin/...`, see the crate docs) on a third
    /// listener, 127.0.0.1:[`admin_port`](Self::admin_port) (default `false`: no such
    /// listener, and `/_admin/` paths on the main port are plain 404s).
    pub admin: bool,
    /// Port of the admin listener on 127.0.0.1 when [`admin`](Self::admin) is on
    /// (default 0: any free port; see [`TestServer::admin_url`](crate::TestServer::admin_url)).
    pub admin_port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            reuse_grace: Duration::ZERO,
            revoke_access_on_rotation: false,
            client_id: "reauth-test".to_owned(),
            client_secret: Some("s3cret".to_owned()),
            scope: "read write".to_owned(),
            http2_max_concurrent_streams: 20_000,
            port: 0,
            admin: false,
            admin_port: 0,
        }
    }
}

impl ServerConfig {
    /// Sets [`access_token_lifetime`](Self::access_token_lifetime).
    pub fn with_access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = lifetime;
        self
    }

    /// Sets [`revoke_access_on_rotation`](Self::revoke_access_on_rotation).
    pub fn with_access_revoked_on_rotation(mut self, revoke: bool) -> Self {
        self.revoke_access_on_rotation = revoke;
        self
    }

    /// Sets [`rotate_refresh_tokens`](Self::rotate_refresh_tokens).
    pub fn with_rotation(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }

    /// Sets [`reuse_grace`](Self::reuse_grace).
    pub fn with_reuse_grace(mut self, grace: Duration) -> Self {
        self.reuse_grace = grace;
        self
    }

    /// Sets the expected client id and secret (`None` = public client).
    pub fn with_client(mut self, id: impl Into<String>, secret: Option<&str>) -> Self {
        self.client_id = id.into();
        self.client_secret = secret.map(str::to_owned);
        self
    }

    /// Sets [`scope`](Self::scope).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Sets [`port`](Self::port).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets [`admin`](Self::admin): serve the `/_admin/` control routes.
    pub fn with_admin(mut self, admin: bool) -> Self {
        self.admin = admin;
        self
    }

    /// Sets [`admin_port`](Self::admin_port).
    pub fn with_admin_port(mut self, port: u16) -> Self {
        self.admin_port = port;
        self
    }

    /// `expires_in` as sent on the wire: whole seconds, rounded up so a sub-second
    /// lifetime is not announced as "already expired".
    pub(crate) fn expires_in(&self) -> u64 {
        let d = self.access_token_lifetime;
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }
}
