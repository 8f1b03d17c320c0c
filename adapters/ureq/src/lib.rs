//! # reauth-ureq
//!
//! The blocking adapter of [reauth](https://docs.rs/reauth): keeps
//! [ureq](https://docs.rs/ureq/3) 3.1 agents authenticated, driving the sans-IO
//! `reauth-core` session on plain threads (no runtime, no background thread). Built on
//! http 1.
//!
//! Use it through the facade, as `reauth::ureq`: its documentation there is the manual
//! (what the adapter guarantees, an example, timers without a thread, the wrapper and the
//! middleware, status codes, TLS, ureq's own wire logging). The facade re-exports this
//! crate's items and the `ureq` it is built on, so a project needs only `reauth`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod body;
mod direct;
mod drive;
mod error;
mod events;
mod middleware;
mod quiet;
mod source;
mod wait;

pub use agent::{Agent, AgentBuilder, RequestBuilder};
pub use body::RequestBody;
pub use error::{BuildError, Error};
pub use middleware::AuthMiddleware;
