//! ureq-proto's wire dump, kept out of the logs while reauth's own secrets are on the wire.
//!
//! At trace level ureq-proto logs every byte it sends and receives (target
//! `ureq_proto::util`, through the `log` crate, 16 bytes to a line as hex and text): the
//! `Authorization` header of an authorized request, the refresh token and client secret of
//! a token request, the tokens of the answer. Neither ureq nor ureq-proto has a switch for
//! it, and a `log` record cannot be filtered per call. What can be: a record that reaches
//! `tracing` through `tracing-log`'s bridge goes to the *thread's* current dispatcher. So
//! while a call that carries a secret runs, this thread's dispatcher is one that drops
//! ureq-proto's trace records and hands everything else to the dispatcher that was current
//! before, unchanged. With a `log` backend other than `tracing` (`env_logger`, …) the dump
//! cannot be reached from here: such an application must keep `ureq_proto` below trace
//! (e.g. `RUST_LOG=trace,ureq_proto=debug`), as the adapter's docs say.
//!
//! Spans opened inside such a call (by the application's own ureq middleware, say) are not
//! recorded; events inside it are, in the span context around the call.

use std::cell::RefCell;
use std::sync::OnceLock;
use tracing::dispatcher::{self, Dispatch};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::{Interest, NoSubscriber, Subscriber};
use tracing::{Event, Level, Metadata};

thread_local! {
    /// The dispatcher that was current when this thread began a quiet call.
    static AROUND: RefCell<Option<Dispatch>> = const { RefCell::new(None) };
}

/// Runs `f`, a ureq call that carries a secret, with ureq-proto's wire dump dropped on
/// this thread. Costs nothing when no `tracing` subscriber is set.
pub(crate) fn quiet<R>(f: impl FnOnce() -> R) -> R {
    let around = dispatcher::get_default(|d| {
        (!d.is::<Quiet>() && !d.is::<NoSubscriber>()).then(|| d.clone())
    });
    let Some(around) = around else {
        // No subscriber (nothing is logged), or already inside a quiet call.
        return f();
    };
    static QUIET: OnceLock<Dispatch> = OnceLock::new();
    let quiet = QUIET.get_or_init(|| {
        Dispatch::new(Quiet {
            first: around.clone(),
        })
    });
    let previous = AROUND.with(|a| a.replace(Some(around)));
    // Restores the thread's state however `f` ends, unwinding included.
    struct Restore(Option<Dispatch>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            AROUND.with(|a| *a.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    dispatcher::with_default(quiet, f)
}

/// True for what is dropped: ureq-proto's trace records (its wire dump).
fn is_wire_dump(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    *metadata.level() == Level::TRACE
        && (target == "ureq_proto" || target.starts_with("ureq_proto::"))
}

/// The dispatcher of quiet calls. Registered once, for the whole process; it answers for
/// callsites as the first dispatcher it wrapped does, so it changes nothing outside quiet
/// calls.
struct Quiet {
    first: Dispatch,
}

impl Quiet {
    fn around<R>(&self, f: impl FnOnce(&Dispatch) -> R) -> Option<R> {
        AROUND.with(|a| a.borrow().as_ref().map(f))
    }
}

/// Spans opened inside a quiet call all get this id, and are not recorded.
const NO_SPAN: u64 = u64::MAX;

impl Subscriber for Quiet {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.first.register_callsite(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // No level of its own: what is enabled is up to the dispatchers it hands events
        // to, which are registered themselves.
        Some(LevelFilter::OFF)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !metadata.is_span()
            && !is_wire_dump(metadata)
            && self.around(|d| d.enabled(metadata)).unwrap_or(false)
    }

    fn event(&self, event: &Event<'_>) {
        if !is_wire_dump(event.metadata()) {
            self.around(|d| d.event(event));
        }
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(NO_SPAN)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::quiet;
    use std::sync::{Arc, Mutex};
    use tracing::subscriber::with_default;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let m = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", m.level(), m.target()));
        }
    }

    #[test]
    fn only_ureq_protos_trace_records_are_dropped_and_only_inside() {
        use tracing_subscriber::layer::SubscriberExt;
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(lines.clone());
        with_default(subscriber, || {
            let emit = || {
                tracing::trace!(target: "ureq_proto::util", "4175 7468 …");
                tracing::debug!(target: "ureq_proto::client", "Call<Prepare>");
                tracing::trace!(target: "ureq::unversioned", "Resolve");
                tracing::trace!(target: "ureq_protocol_fan", "not ureq-proto");
            };
            emit();
            let answer = quiet(|| {
                emit();
                quiet(|| tracing::info!(target: "reauth", "nested"));
                7
            });
            assert_eq!(answer, 7);
            emit();
        });
        let lines = lines.0.lock().unwrap().clone();
        let all = [
            "TRACE ureq_proto::util",
            "DEBUG ureq_proto::client",
            "TRACE ureq::unversioned",
            "TRACE ureq_protocol_fan",
        ];
        let mut expected: Vec<&str> = all.to_vec();
        expected.extend(&all[1..]);
        expected.push("INFO reauth");
        expected.extend(all);
        assert_eq!(lines, expected);
    }
}
