//! The store as the session's commands use it: the start-up watch and read, and one
//! operation.

use reauth_core::{
    AsyncTokenStore, Changed, Config, Record, Session, StoreCommand, StoreError, StoreOutcome,
    StoreReply, StoredTokens, TokenStore,
};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// The store's change notifications, asked for before the read.
    pub changes: Changes,
}

/// Asks the store for change notifications, then reads it once and takes up what it
/// holds (without writing it back). An unreadable store is no tokens: the session starts
/// empty and says why.
///
/// Watching first means a write by another process is either in the read or heard
/// afterwards, never lost between the two; what is heard before the adapter's state
/// exists waits in [`Changes`] until [`Changes::attach`].
pub fn open(config: Config, store: &dyn TokenStore) -> Opened {
    let changes = Changes::default();
    let early = changes.clone();
    store.watch(Arc::new(move || early.tell()));
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
        changes,
    }
}

/// A store's change notifications, heard from the start-up read on: held until the
/// adapter attaches its handler, then handed straight to it.
#[derive(Clone, Default)]
pub struct Changes {
    to: Arc<Mutex<To>>,
}

#[derive(Default)]
enum To {
    /// Nobody to tell yet, and nothing heard.
    #[default]
    Nobody,
    /// Nobody to tell yet, and something heard.
    Heard,
    Handler(Changed),
}

impl Changes {
    /// From now on, every notification calls `changed`; one heard before is handed over
    /// at once, on the caller's thread.
    pub fn attach(&self, changed: Changed) {
        let heard = {
            let mut to = self.to.lock().unwrap_or_else(PoisonError::into_inner);
            matches!(
                std::mem::replace(&mut *to, To::Handler(changed.clone())),
                To::Heard
            )
        };
        if heard {
            changed();
        }
    }

    fn tell(&self) {
        let handler = {
            let mut to = self.to.lock().unwrap_or_else(PoisonError::into_inner);
            match &*to {
                To::Handler(changed) => Some(changed.clone()),
                _ => {
                    *to = To::Heard;
                    None
                }
            }
        };
        if let Some(changed) = handler {
            changed();
        }
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

/// Carries out one store operation the session asked for. `now` and `wall` are read
/// here, together, to turn the record's expiry into wall-clock time.
pub fn carry_out(store: &dyn TokenStore, op: &StoreCommand) -> StoreOutcome {
    match op {
        StoreCommand::Lease { lineage, ttl } => store.lease(*lineage, *ttl).map(StoreReply::Lease),
        StoreCommand::Read => store.read().map(StoreReply::Read),
        StoreCommand::Write { expect, record } => store
            .compare_and_swap(*expect, &saved(record))
            .map(StoreReply::Swap),
        StoreCommand::Release { lineage, lease } => store
            .release(*lineage, *lease)
            .map(|()| StoreReply::Released),
        other => Err(unknown(other)),
    }
}

/// [`carry_out`], awaited on a store's async operations.
pub async fn carry_out_async(store: &dyn AsyncTokenStore, op: &StoreCommand) -> StoreOutcome {
    match op {
        StoreCommand::Lease { lineage, ttl } => {
            store.lease(*lineage, *ttl).await.map(StoreReply::Lease)
        }
        StoreCommand::Read => store.read().await.map(StoreReply::Read),
        StoreCommand::Write { expect, record } => store
            .compare_and_swap(*expect, &saved(record))
            .await
            .map(StoreReply::Swap),
        StoreCommand::Release { lineage, lease } => store
            .release(*lineage, *lease)
            .await
            .map(|()| StoreReply::Released),
        other => Err(unknown(other)),
    }
}

/// The record as stored: its expiry turned into wall-clock time.
fn saved(record: &Record<StoredTokens>) -> Record {
    record.clone().saved(Instant::now(), SystemTime::now())
}

fn unknown(op: &StoreCommand) -> StoreError {
    StoreError::new(format!(
        "this adapter does not know the store operation {op:?}"
    ))
}
