//! # reauth-ureq
//!
//! A blocking adapter that keeps [`ureq`] 3 agents authenticated, driving the sans-IO
//! [`reauth_core`] session on plain threads: no runtime, no background thread.
//!
//! - Any number of concurrent 401s cause exactly one refresh; the waiting requests replay
//!   with the new token.
//! - The thread the session picks performs the refresh itself, then goes on with its own
//!   request; the others block (with a deadline) until it is done. If that thread panics
//!   or unwinds, a drop guard reports the refresh failed, so nobody is stranded and the
//!   next try comes after a backoff.
//! - The credential goes only to allowed origins. The agent follows redirects itself and
//!   attaches the credential to a hop only if its origin is allowed (ureq's own
//!   `RedirectAuthHeaders::SameHost` would keep it for another port of the same host). The
//!   token endpoint agent follows no redirects at all.
//! - A refresh endpoint over plain `http://` is refused unless it is loopback or
//!   explicitly allowed.
//! - Requests with a reader body are authorized but not replayed: on a 401 the session
//!   refreshes and the caller gets the 401.
//! - Logging goes through [`tracing`], never with token text. Beware of ureq's own
//!   logging: at `trace` level its `ureq_proto` target dumps every byte on the wire, 16 per
//!   line, pieces of the `Authorization` header and of token requests and responses
//!   included. Never enable `trace` for `ureq_proto` where logs are kept.
//!
//! ```no_run
//! use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
//! use reauth_core::protocol::OAuth2Grant;
//! use reauth_core::{AccessToken, Config, Event, Origin, RefreshToken, TokenSet};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = TokenEndpoint::new(
//!     "https://auth.example.com/oauth/token".parse()?,
//!     ClientAuth::secret_basic("my-app", ClientSecret::new("s3cret")),
//! )?;
//! let agent = reauth_ureq::Agent::builder(
//!     ureq::Agent::new_with_defaults(),
//!     Config::new(Origin::parse("https://api.example.com")?),
//! )
//! .oauth2(OAuth2Grant::refresh_token(endpoint))
//! // React to the session ending, e.g. show the login screen.
//! .on_event(|event| {
//!     if let Event::LoggedOut { reason } = event {
//!         eprintln!("please log in again: {reason}");
//!     }
//! })
//! .build()?;
//!
//! agent.login(
//!     TokenSet::new(AccessToken::new("access-from-login")?)
//!         .with_refresh_token(RefreshToken::new("refresh-from-login")?),
//! );
//!
//! // Share it between threads: clones share one session.
//! let workers: Vec<_> = (0..8)
//!     .map(|i| {
//!         let agent = agent.clone();
//!         std::thread::spawn(move || {
//!             agent.get(format!("https://api.example.com/items/{i}")).call()
//!         })
//!     })
//!     .collect();
//! for worker in workers {
//!     let mut response = worker.join().unwrap()?;
//!     println!("{}", response.body_mut().read_to_string()?);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Timers without a thread
//!
//! The session has deadlines (a backoff retry, a refresh timeout, the start of a token's
//! stale window, a waiting request's timeout). Nothing runs in the background to fire
//! them: every request fires what is due before it is admitted (free when nothing is),
//! and a request waiting for a refresh never sleeps past the session's next deadline.
//! Whichever waiting thread wakes first fires it; if that starts a refresh, that thread
//! performs it. So a backoff retry happens on time even when every caller is blocked, and
//! a proactive refresh happens on the first request inside the token's stale window
//! (performed by that request's thread while the others keep using the current token).
//!
//! ## The wrapper and the middleware
//!
//! [`Agent`] owns each call, so it can send a request again after a refresh. ureq's own
//! middleware cannot (its `MiddlewareNext` is consumed), so [`AuthMiddleware`] only
//! attaches the credential and reports 401s: the caller gets the 401 and the next call
//! uses the refreshed token. See [`AuthMiddleware`] for the details.
//!
//! ## Status codes
//!
//! As with ureq, a final 4xx or 5xx answer is an error
//! ([`Error::Http`]`(`[`ureq::Error::StatusCode`]`)`) if the agent's `http_status_as_error`
//! is on (ureq's default); the session sees the 401 either way.
//!
//! TLS: this crate enables no ureq feature itself; the features of the application's ureq
//! apply (also to the default token agent, which uses ureq's default settings).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod body;
mod direct;
mod drive;
mod error;
mod events;
mod middleware;
mod redirect;
mod source;
mod wait;

pub use agent::{Agent, AgentBuilder, RequestBuilder};
pub use body::RequestBody;
pub use error::{BuildError, Error};
pub use middleware::AuthMiddleware;
