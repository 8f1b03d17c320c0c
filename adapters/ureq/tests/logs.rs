//! Captures every tracing event at trace level (ours, and ureq's `log` records through the
//! `tracing-log` bridge) through a storm, a rotation, a fault and a logout, and checks that
//! no token text appears anywhere.

mod common;

use common::*;
use reauth_testkit::{Fault, ServerConfig};
use std::io::Write;
use std::sync::{Arc, Mutex};

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

/// ureq-proto's wire dump: at trace level it logs every byte sent and received, 16 per
/// line, as hex and text. It never holds a whole token on one line, but it does hold
/// pieces of the `Authorization` header and of the token request and response.
const WIRE_DUMP: &str = " ureq_proto::util:";

#[test]
fn no_token_text_in_trace_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    bounded(move || {
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
        // A redirect, through the agent and through the middleware.
        s.agent
            .get(s.server.api_url("redirect?to=/logged"))
            .call()
            .unwrap();
        let chained: ureq::Agent = ureq::Agent::config_builder()
            .middleware(s.agent.middleware())
            .build()
            .into();
        chained
            .get(s.server.api_url("redirect?to=/logged"))
            .call()
            .unwrap();
        s.server.push_fault(Fault::InvalidGrant);
        s.server.expire_access_tokens();
        let _ = storm(&s.agent, &s.server.api_url("items/1"), 5);
        s.server.shutdown();
        let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
        assert!(
            logs.contains("reauth token refreshed"),
            "our events were captured"
        );
        assert!(logs.contains("reauth session logged out"));
        assert!(logs.contains("reauth following a redirect"));
        assert!(
            logs.lines().count() > 100,
            "trace output from the whole stack was captured"
        );
        for secret in &secrets {
            assert!(secret.len() >= 24, "the tokens are long enough to test");
            assert!(
                !logs.contains(secret.as_str()),
                "a token appears in the logs"
            );
            // Outside ureq-proto's wire dump, not even a piece of one.
            for piece in secret.as_bytes().chunks(12) {
                let piece = std::str::from_utf8(piece).unwrap();
                if piece.len() < 12 {
                    continue;
                }
                let line = logs
                    .lines()
                    .find(|l| !l.contains(WIRE_DUMP) && l.contains(piece));
                assert!(line.is_none(), "a piece of a token is logged: {line:?}");
            }
        }
        assert!(
            !logs.contains("s3cret"),
            "the client secret appears in the logs"
        );
        // HTTP Basic of reauth-test:s3cret.
        assert!(
            !logs.contains("cmVhdXRoLXRlc3Q6czNjcmV0"),
            "the client credentials appear in the logs"
        );
    });
}
