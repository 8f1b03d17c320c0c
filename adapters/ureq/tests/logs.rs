//! Captures every log event at trace level, for every target (ours, and the `log` records
//! of ureq and ureq-proto through the `tracing-log` bridge), through a storm, a rotation,
//! a fault, redirects, the middleware and a logout. Then reassembles the wire dumps
//! (ureq-proto logs every byte sent and received, 16 to a line, as hex and text) and
//! searches everything for the tokens, the refresh tokens and the client secret, whole or
//! in pieces.

mod common;

use common::*;
use reauth_testkit::{Fault, LogScan, ServerConfig};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A piece this long of a random token is the token, for anyone who reads the log.
const PIECE: usize = 12;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_token_text_in_trace_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    // `init` installs the `log` bridge too; thread ids tell the dumps of threads apart.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_thread_ids(true)
        .with_writer(move || writer.clone())
        .init();
    let secrets = bounded(move || {
        let s = setup(ServerConfig::default(), |_| {});
        let mut secrets = vec![
            s.tokens.access_token.clone(),
            s.tokens.refresh_token.clone(),
        ];
        s.server.expire_access_tokens();
        s.server.push_fault(Fault::ServerError);
        assert_eq!(
            storm(&s.agent, &s.server.api_url("items/1"), 50),
            vec![Ok(200); 50]
        );
        let rotated = stored(&s.store).expect("tokens were persisted");
        secrets.push(rotated.access_token.secret().to_owned());
        secrets.push(rotated.refresh_token.expect("rotated").secret().to_owned());
        // Redirects, through the agent and through the middleware.
        for path in ["redirect?to=/logged", "moved?to=/api/items/1"] {
            s.agent.get(s.server.api_url(path)).call().unwrap();
            let chained: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .middleware(s.agent.middleware())
                .build()
                .into();
            // The middleware lets no token follow a redirect: `moved` ends in a 401.
            let _ = chained.get(s.server.api_url(path)).call();
        }
        s.server.push_fault(Fault::InvalidGrant);
        s.server.expire_access_tokens();
        let _ = storm(&s.agent, &s.server.api_url("items/1"), 5);
        s.server.shutdown();
        secrets
    });
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("reauth token refreshed"),
        "our events were captured"
    );
    assert!(logs.contains("reauth session logged out"));
    assert!(logs.contains("reauth following a redirect"));
    assert!(
        logs.contains(" ureq::"),
        "ureq's `log` records were captured through the bridge"
    );
    let scan = LogScan::new(&logs);
    // The dump is on and captured: for the requests that carry nothing of ours (the hops
    // to the other origin).
    assert!(logs.contains(" ureq_proto::util:"));
    assert!(scan.wire_bytes() > 0, "no wire dump was captured");
    for (i, secret) in secrets.iter().enumerate() {
        assert!(
            secret.len() >= 2 * PIECE,
            "the tokens are long enough to test"
        );
        if let Some(at) = scan.find(secret, PIECE) {
            panic!(
                "a piece of token {i} is in {at} ({} wire bytes)",
                scan.wire_bytes()
            );
        }
    }
    // The client secret, and the HTTP Basic credentials of reauth-test:s3cret.
    for secret in ["s3cret", "cmVhdXRoLXRlc3Q6czNjcmV0"] {
        if let Some(at) = scan.find(secret, 0) {
            panic!("the client secret is in {at}");
        }
    }
}
