//! `reauth-testkit`: a real OAuth2 token endpoint and protected API on loopback, with
//! fault injection, for testing HTTP clients that refresh tokens.
//!
//! [`TestServer::start`] binds `127.0.0.1` (never anything else) and serves, on one port,
//! HTTP/1.1 and HTTP/2 cleartext with prior knowledge (h2c):
//!
//! | route | what it does |
//! |---|---|
//! | `POST /oauth/token` | RFC 6749 token endpoint: `refresh_token` (§6) and `client_credentials` (§4.4) grants; client auth by HTTP Basic or form fields; refresh-token rotation with reuse detection (RFC 9700 §4.14.2) |
//! | `POST /auth/refresh` | custom JSON refresh: `{"refreshToken": ...}` → `{"accessToken": ..., "refreshToken": ...}`; 401 `{"error":"invalid_refresh_token"}` |
//! | `GET /api/items/{id}[?delay_ms=N]` | a JSON item; needs a valid bearer token, checked after waiting `N` ms (at most 30 s) |
//! | `POST /api/echo` | echoes the request body and content type |
//! | `GET /api/scoped` | needs scope `admin`, else 403 `insufficient_scope` |
//! | `GET /api/redirect?to=/path` | 307 to the *leak listener* (another origin) |
//! | `* /api/moved?to=/path[&status=N]` | N (301, 302, 303, 307 or 308; default 307) to `/path` on this listener, by a path-absolute `Location`; no token needed |
//! | `* /api/loop` | 302 to itself, by a relative `Location`: redirects without end |
//! | `GET /api/reject` | 401 `invalid_token` for every token, valid or not: an API that refuses fresh tokens |
//!
//! Bearer failures follow RFC 6750: no token → 401 `WWW-Authenticate: Bearer
//! realm="reauth-testkit"`; unknown, expired or revoked → 401 with
//! `error="invalid_token"`. A second listener ([`TestServer::leak_url`]) answers 200 to
//! anything (but 401 `invalid_token` at `/unauthorized`, a 307 back to the main
//! listener at `/bounce?to=/path`, and a 307 to its own `/path` at `/hop?to=/path`) and
//! records each `Authorization` header it gets, so tests can prove that a token never
//! follows a cross-origin redirect.
//!
//! Tests steer the server through the handle: [`TestServer::issue_tokens`] logs a user
//! in, [`TestServer::expire_access_tokens`] and [`TestServer::revoke_family`] kill tokens,
//! [`TestServer::push_fault`] queues [`Fault`]s for the next token-endpoint calls, and
//! [`TestServer::stats`] reports what the server saw. [`LogScan`] searches a client's
//! captured logs for the tokens and secrets it was given, wire dumps reassembled.
//!
//! Most faults replace the answer. The late-answer faults ([`Fault::RotateThenDelay`],
//! [`Fault::RotateThenDrop`], [`Fault::RotateThenHang`]) let the refresh succeed on the
//! server first, then deliver its answer late or never: the client is left holding a
//! refresh token the server has already rotated away. [`TestServer::current_refresh_token`]
//! tells a test which token the server now expects.
//!
//! # The HTTP control interface
//!
//! Clients written in any language can be tested against the binary
//! (`cargo install reauth-testkit`, then `reauth-testkit --admin`): the same controls are
//! then HTTP routes, off unless asked for ([`ServerConfig::admin`], `--admin`). They live
//! on a listener of their own, `127.0.0.1` only, at [`TestServer::admin_url`] (the
//! binary prints it, and uses `--port + 1` by default): driving the server then never
//! shows up in what it reports about the client under test, such as
//! `connections_accepted`. On the main port, `/_admin/` paths are always 404.
//!
//! | route | what it does |
//! |---|---|
//! | `POST /_admin/tokens[?scope=S]` | logs a user in: an RFC 6749 token response (`access_token`, `refresh_token`, `expires_in`, ...) plus `family` |
//! | `POST /_admin/expire` | expires every access token issued so far → `{"expired": true}` |
//! | `POST /_admin/revoke?family=family-N` or `?token=TOKEN` | revokes the family → `{"revoked": true}`, or `false` if no live family matched |
//! | `POST /_admin/faults?fault=NAME[&count=N]` | queues a fault `N` times (default 1) → `{"queued": N, "pending": P}` |
//! | `POST /_admin/faults` with a text body | queues one fault per line (blank lines and `#` comments skipped); nothing is queued if a line is bad |
//! | `GET /_admin/faults` | `{"pending": P}` |
//! | `DELETE /_admin/faults` | drops queued faults → `{"cleared": N, "pending": 0}` |
//! | `GET /_admin/stats` | every [`Stats`] counter as JSON, under its field name |
//! | `POST /_admin/reset` | zeroes the counters and drops queued faults |
//!
//! Fault names are those of [`Fault::parse`] ([`FAULT_NAMES`]). Bad input (an unknown
//! fault, parameter or route) gets a 400, 404 or 405 with a plain-text reason.
//!
//! ```text
//! curl -s -X POST 'http://127.0.0.1:8081/_admin/faults?fault=503:2s&count=3'
//! curl -s http://127.0.0.1:8081/_admin/stats
//! ```
//!
//! # Example
//!
//! ```
//! use reauth_testkit::{Fault, ServerConfig, TestServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = TestServer::start(ServerConfig::default()).await?;
//! let login = server.issue_tokens();
//! let client = reqwest::Client::builder().no_proxy().build().unwrap();
//!
//! // The access token works...
//! let item = client
//!     .get(server.api_url("items/1"))
//!     .bearer_auth(&login.access_token)
//!     .send()
//!     .await
//!     .unwrap();
//! assert_eq!(item.status(), 200);
//!
//! // ...until the server expires it.
//! server.expire_access_tokens();
//! let denied = client
//!     .get(server.api_url("items/1"))
//!     .bearer_auth(&login.access_token)
//!     .send()
//!     .await
//!     .unwrap();
//! assert_eq!(denied.status(), 401);
//!
//! // The next refresh fails with a 503, the one after that succeeds.
//! server.push_fault(Fault::Unavailable { retry_after: None });
//! let refresh = || {
//!     client
//!         .post(server.token_url())
//!         .basic_auth("reauth-test", Some("s3cret"))
//!         .header("content-type", "application/x-www-form-urlencoded")
//!         .body(format!("grant_type=refresh_token&refresh_token={}", login.refresh_token))
//!         .send()
//! };
//! assert_eq!(refresh().await.unwrap().status(), 503);
//! assert_eq!(refresh().await.unwrap().status(), 200);
//!
//! let stats = server.stats();
//! assert_eq!((stats.token_calls, stats.token_ok, stats.faults("unavailable")), (2, 1, 1));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod api;
mod client_auth;
mod config;
mod fault;
mod inject;
mod leak;
mod logs;
mod respond;
mod serve;
mod server;
mod shutdown;
mod state;
mod stats;
mod token_endpoint;
mod tokens;

pub use config::ServerConfig;
pub use fault::{Fault, ParseFaultError, FAULT_NAMES};
pub use logs::LogScan;
pub use server::TestServer;
pub use stats::Stats;
pub use tokens::{FamilyId, FamilyRef, IssuedTokens};
