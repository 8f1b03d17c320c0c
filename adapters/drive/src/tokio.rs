//! The driver both async adapters (reqwest, tower) run on tokio: the shared state with
//! its store, refresh and timer tasks ([`Shared`]), parked requests ([`Step`],
//! [`Shared::wait`]), the refresh sources ([`Source`]) and bounded body reads. What an
//! adapter adds is I/O: its request loop, and how a refresh goes over its HTTP client
//! ([`Adapter`]).

mod body;
mod runtime;
mod shared;
mod source;

pub use body::{discard, read_limited};
pub use shared::{step, Adapter, Shared, Step, Wake};
pub use source::{RefreshFuture, Source};
