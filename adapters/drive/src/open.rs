//! The store as the session's commands use it: the start-up read, and one operation.

use reauth_core::{
    Config, Session, StoreCommand, StoreError, StoreOutcome, StoreReply, TokenStore,
};
use std::time::{Instant, SystemTime};
use tracing::warn;

/// A session taken up from its store.
#[derive(Debug)]
pub struct Opened {
    /// The session: logged in from the store's tokens, logged out by its tombstone, or
    /// empty.
    pub session: Session,
    /// Why the store could not be read, if it could not: the session starts empty.
    pub load_error: Option<StoreError>,
}

/// Reads the store once and takes up what it holds (without writing it back). An
/// unreadable store is no tokens: the session starts empty and says why.
pub fn open(config: Config, store: &dyn TokenStore) -> Opened {
    let mut session = Session::new(config);
    let load_error = match store.read() {
        Ok(record) => {
            session.restore(Instant::now(), SystemTime::now(), record);
            None
        }
        Err(e) => {
            warn!(error = %e, "reauth token store unreadable: starting logged out");
            Some(e)
        }
    };
    Opened {
        session,
        load_error,
    }
}

/// Carries out one store operation the session asked for. `now` and `wall` are read
/// here, together, to turn the record's expiry into wall-clock time.
pub fn carry_out(store: &dyn TokenStore, op: &StoreCommand) -> StoreOutcome {
    match op {
        StoreCommand::Lease { lineage, ttl } => store.lease(*lineage, *ttl).map(StoreReply::Lease),
        StoreCommand::Read => store.read().map(StoreReply::Read),
        StoreCommand::Write { expect, record } => {
            let saved = (**record).clone().saved(Instant::now(), SystemTime::now());
            store
                .compare_and_swap(*expect, &saved)
                .map(StoreReply::Swap)
        }
        StoreCommand::Release { lineage, lease } => store
            .release(*lineage, *lease)
            .map(|()| StoreReply::Released),
        other => Err(StoreError::new(format!(
            "this adapter does not know the store operation {other:?}"
        ))),
    }
}
