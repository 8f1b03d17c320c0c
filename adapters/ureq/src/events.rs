//! Session events for the application: channels and callbacks.

use reauth_core::Event;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Events a subscriber may have queued before it misses some.
pub(crate) const CHANNEL_CAPACITY: usize = 64;

pub(crate) type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Events {
    callbacks: Vec<Callback>,
    channels: Mutex<Vec<SyncSender<Event>>>,
}

impl Events {
    pub(crate) fn new(callbacks: Vec<Callback>) -> Self {
        Self {
            callbacks,
            channels: Mutex::default(),
        }
    }

    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        self.lock().push(tx);
        rx
    }

    /// Queues `event` for every subscriber without blocking: a full subscriber misses it,
    /// a dropped one is forgotten.
    pub(crate) fn send(&self, event: &Event) {
        self.lock().retain(|tx| {
            !matches!(
                tx.try_send(event.clone()),
                Err(TrySendError::Disconnected(_))
            )
        });
    }

    /// Runs the callbacks. Called with no lock held, so a callback may use the agent.
    pub(crate) fn call(&self, event: &Event) {
        for f in &self.callbacks {
            f(event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SyncSender<Event>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }
}
