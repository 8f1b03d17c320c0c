//! The shutdown signal, and an executor whose tasks obey it.

use std::future::Future;

use tokio::sync::watch;

/// Fires when the [`ShutdownTrigger`] is dropped. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ShutdownSignal(watch::Receiver<()>);

/// Owned by the server handle; dropping it shuts everything down.
pub(crate) struct ShutdownTrigger(#[allow(dead_code)] watch::Sender<()>);

pub(crate) fn channel() -> (ShutdownTrigger, ShutdownSignal) {
    let (tx, rx) = watch::channel(());
    (ShutdownTrigger(tx), ShutdownSignal(rx))
}

impl ShutdownSignal {
    /// Resolves once the trigger is gone (immediately if it already is).
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.clone();
        // No value is ever sent: `changed` only returns, with an error, once the sender
        // has been dropped.
        while rx.changed().await.is_ok() {}
    }
}

/// hyper spawns one task per HTTP/2 stream through this executor. Each task also ends
/// at shutdown, so a stuck stream can never outlive the server.
#[derive(Clone)]
pub(crate) struct ShutdownExecutor(pub(crate) ShutdownSignal);

impl<F> hyper::rt::Executor<F> for ShutdownExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let signal = self.0.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = signal.wait() => {}
            }
        });
    }
}
