//! Change notifications: every written record is published on the session's channel by
//! the swap script, and one thread per store listens on its own connection and tells the
//! sessions watching it. A notification only makes a session re-read sooner, so one lost
//! while the listener reconnects costs nothing but time.
//!
//! The first watch waits (up to the connect timeout) for the subscription, so a session
//! that reads its record after asking to watch misses no write. A later subscription
//! (after a reconnect, or a first one that came too late) tells the sessions once, in
//! case a write went by unheard.

use reauth_core::Changed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// How often the listener looks up from its connection to see whether the store is gone.
const LOOK_UP: Duration = Duration::from_millis(250);
/// The wait before reconnecting after the connection failed.
const RECONNECT: Duration = Duration::from_millis(500);

/// The sessions watching one store, and its listener thread.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    callbacks: Mutex<Vec<Changed>>,
    started: AtomicBool,
    /// The first subscription, as the first watch waits for it.
    first: Mutex<First>,
    subscribed: Condvar,
    /// Set when the store is dropped: the listener ends within [`LOOK_UP`].
    stop: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// Where the first subscription stands.
#[derive(Default, PartialEq)]
enum First {
    /// The first watch waits for it.
    #[default]
    Awaited,
    /// Made while the first watch waited: nothing to tell.
    Made,
    /// The first watch stopped waiting: the sessions read without it, so the
    /// subscription tells them once, as a later one would.
    GivenUp,
}

impl Shared {
    /// After each subscription: tells the sessions, unless the first watch is waiting
    /// for this one (its session reads the record afterwards).
    fn on_subscribed(&self) {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if *first == First::Awaited {
            *first = First::Made;
            self.subscribed.notify_all();
        } else {
            drop(first);
            self.tell();
        }
    }

    /// The first try failed: the first watch stops waiting.
    fn first_failed(&self) {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if *first == First::Awaited {
            *first = First::GivenUp;
            self.subscribed.notify_all();
        }
    }

    /// Waits up to `timeout` for the first subscription, or for its failure.
    fn await_first(&self, timeout: Duration) {
        let first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut first, _) = self
            .subscribed
            .wait_timeout_while(first, timeout, |f| *f == First::Awaited)
            .unwrap_or_else(PoisonError::into_inner);
        if *first == First::Awaited {
            *first = First::GivenUp;
        }
    }

    fn tell(&self) {
        let callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for changed in callbacks {
            changed();
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Watchers {
    /// Adds `changed`, and starts the listener on `channel` if it is not running, waiting
    /// up to `connect_timeout` for its subscription. False if no thread could be started
    /// (the session then polls, as without notifications).
    pub(crate) fn add(
        &self,
        changed: Changed,
        client: &redis::Client,
        channel: &str,
        connect_timeout: Duration,
    ) -> bool {
        self.shared
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(changed);
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return true;
        }
        let (shared, client, channel) = (self.shared.clone(), client.clone(), channel.to_owned());
        let spawned = thread::Builder::new()
            .name("reauth-redis-watch".into())
            .spawn(move || listen(&shared, &client, &channel, connect_timeout));
        if spawned.is_err() {
            self.shared.started.store(false, Ordering::Release);
            return false;
        }
        // Connecting, then one round trip to subscribe.
        self.shared.await_first(connect_timeout.saturating_mul(2));
        true
    }

    /// Ends the listener (when the store is dropped).
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn listen(shared: &Shared, client: &redis::Client, channel: &str, connect_timeout: Duration) {
    while !shared.stopped() {
        // Only an error ends a subscription; what it was does not matter here: the store's
        // own operations report Redis being away.
        let _ = subscribed(shared, client, channel, connect_timeout);
        shared.first_failed();
        let mut waited = Duration::ZERO;
        while waited < RECONNECT && !shared.stopped() {
            thread::sleep(LOOK_UP.min(RECONNECT - waited));
            waited += LOOK_UP;
        }
    }
}

/// Listens until the connection fails or the store is dropped.
fn subscribed(
    shared: &Shared,
    client: &redis::Client,
    channel: &str,
    connect_timeout: Duration,
) -> redis::RedisResult<()> {
    let mut connection = client.get_connection_with_timeout(connect_timeout)?;
    connection.set_write_timeout(Some(connect_timeout))?;
    let mut pubsub = connection.as_pubsub();
    pubsub.subscribe(channel)?;
    pubsub.set_read_timeout(Some(LOOK_UP))?;
    shared.on_subscribed();
    while !shared.stopped() {
        match pubsub.get_message() {
            Ok(_) => shared.tell(),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
