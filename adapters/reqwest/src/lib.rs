//! # reauth-reqwest
//!
//! An async adapter that keeps [`reqwest`] clients authenticated, driving the sans-IO
//! [`reauth_core`] session on tokio.
//!
//! - Any number of concurrent 401s cause exactly one refresh; the waiting requests replay
//!   with the new token.
//! - The refresh runs in a spawned task: dropping the caller that triggered it, or any
//!   waiter, never cancels it and never strands the others.
//! - The credential goes only to allowed origins; reqwest drops it on a redirect to
//!   another origin, and the token endpoint client follows no redirects at all.
//! - A refresh endpoint over plain `http://` is refused unless it is loopback or
//!   explicitly allowed.
//! - Requests with a streaming body are authorized but not replayed: on a 401 the
//!   session refreshes and the caller gets the 401.
//!
//! ```no_run
//! use reauth_core::oauth2::{ClientAuth, ClientSecret, TokenEndpoint};
//! use reauth_core::protocol::OAuth2Grant;
//! use reauth_core::{AccessToken, Config, Origin, RefreshToken, TokenSet};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = TokenEndpoint::new(
//!     "https://auth.example.com/oauth/token".parse()?,
//!     ClientAuth::secret_basic("my-app", ClientSecret::new("s3cret")),
//! )?;
//! let client = reauth_reqwest::Client::builder(
//!     reqwest::Client::new(),
//!     Config::new(Origin::parse("https://api.example.com")?),
//! )
//! .oauth2(OAuth2Grant::refresh_token(endpoint))
//! .build()?;
//!
//! client.login(
//!     TokenSet::new(AccessToken::new("access-from-login")?)
//!         .with_refresh_token(RefreshToken::new("refresh-from-login")?),
//! );
//! let items = client.get("https://api.example.com/items").send().await?;
//! println!("{}", items.status());
//!
//! // React to the session ending, e.g. show the login screen.
//! let mut events = client.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(event) = events.recv().await {
//!         if let reauth_core::Event::LoggedOut { reason } = event {
//!             eprintln!("please log in again: {reason}");
//!         }
//!     }
//! });
//! # Ok(()) }
//! ```
//!
//! TLS: this crate enables no reqwest TLS feature itself; the features of the
//! `reqwest::Client` you pass in (and of the token client) apply.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod drive;
mod error;
mod middleware;
mod source;

pub use client::{Client, ClientBuilder, RequestBuilder};
pub use error::{BuildError, Error};
pub use middleware::AuthMiddleware;
pub use source::RefreshFuture;
