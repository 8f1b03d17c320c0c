//! What a request does next, from the session's admission or verdict: the one decision
//! every adapter's request loop turns on.

use reauth_core::{Admission, Attempt, Error, Verdict, WaiterId};
use tracing::debug;

/// What a request does next.
#[derive(Debug)]
pub enum Next {
    /// Send with this attempt's credential.
    Send(Attempt),
    /// Send without any credential (the origin is not on the allow-list).
    SendAnonymous,
    /// Park until the session resumes or fails this waiter; park it under the same lock.
    Wait(WaiterId),
    /// Hand the response just received to the caller.
    Deliver,
    /// Fail the request.
    Fail(Error),
}

impl From<Admission> for Next {
    fn from(admission: Admission) -> Self {
        match admission {
            Admission::Send(a) => Next::Send(a),
            Admission::Wait(w) => Next::Wait(w),
            Admission::Anonymous => Next::SendAnonymous,
            Admission::Reject(e) => Next::Fail(e),
            other => unknown(&other),
        }
    }
}

impl From<Verdict> for Next {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Done => Next::Deliver,
            Verdict::Replay(a) => Next::Send(a),
            Verdict::Wait(w) => Next::Wait(w),
            Verdict::Fail(e) => Next::Fail(e),
            other => unknown(&other),
        }
    }
}

/// An answer a newer core may give that this scaffold does not know: fail, never guess.
fn unknown(answer: &dyn std::fmt::Debug) -> Next {
    debug!(?answer, "reauth: an answer this adapter does not know");
    Next::Fail(Error::Unauthorized)
}
