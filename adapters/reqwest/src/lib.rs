//! # reauth-reqwest
//!
//! The async adapter of [reauth](https://docs.rs/reauth): keeps
//! [reqwest](https://docs.rs/reqwest/0.13) 0.13 clients authenticated, driving the sans-IO
//! `reauth-core` session on tokio. Built on http 1 and reqwest-middleware 0.5.
//!
//! Use it through the facade, as `reauth::reqwest`: its documentation there is the
//! manual (what the adapter guarantees, an example, the middleware, TLS). The facade
//! re-exports this crate's items and the crates it is built on (`reqwest`,
//! `reqwest_middleware`), so a project needs only `reauth` (and tokio).
//!
//! [`ClientBuilder::build`] needs a tokio runtime: refreshes and timers run as tasks, on
//! the runtime of the request that needs them (a client may outlive the runtime it was
//! built on).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod drive;
mod error;
mod middleware;
mod redirect;
mod source;
mod template;

pub use client::{Client, ClientBuilder, RequestBuilder};
pub use error::{BuildError, Error};
pub use middleware::AuthMiddleware;
pub use reauth_drive::tokio::RefreshFuture;
