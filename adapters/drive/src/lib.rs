//! # reauth-drive
//!
//! Everything the reauth adapters share that is not I/O: the [`Session`] behind a short
//! lock with the notifiers of parked requests ([`Hub`]), the commands sorted into
//! [`Work`] and carried out through an adapter's [`Io`] in one order, the store
//! operations as calls on a [`TokenStore`] ([`carry_out`]), the start-up read of the
//! store ([`open`]), event logging, the jitter seed, and the rules of redirects followed
//! by hand ([`next_hop`]). An adapter adds only I/O: how a request is sent, how a parked
//! request waits and wakes, where a refresh or a store operation runs (a spawned task,
//! the calling thread).
//!
//! ```text
//!   request ──► Hub::with(|drive, now| session input) ──► Work ──► Io
//!                 (lock held: input, park, drain)            (lock released)
//!                                                             wake · publish · store · refresh
//!   store / refresh done ──► Hub::with(|drive, now| session.handle_*) ──► Work ──► …
//! ```
//!
//! Not a public interface: the adapters' own docs are the manual.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod hub;
mod next;
mod open;
mod redirect;
mod seed;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use hub::{Drive, Hub, Io, Refresh, Work};
pub use next::Next;
pub use open::{carry_out, carry_out_async, open, Changes, Opened};
pub use redirect::{is_redirect, next_hop, resolve, Hop, Rules, UrlTarget};
pub use seed::random_seed;

#[cfg(doc)]
use reauth_core::{Session, TokenStore};
