//! The wrapper's transport: sends through the user's `ureq::Agent`, can send a request
//! again, and follows redirects itself so the credential reaches allowed origins only.

use crate::body::{RequestBody, Tweak};
use crate::error::Error;
use crate::redirect::next_hop;
use crate::shared::{Sent, Transport};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE};
use http::{HeaderValue, Uri};
use reauth_core::Origin;
use std::time::Duration;
use tracing::trace;
use ureq::http::{request, Response};
use ureq::Body;

pub(crate) struct Direct<'a, 'b> {
    pub(crate) agent: &'a ureq::Agent,
    pub(crate) allowed: &'a [Origin],
    pub(crate) parts: request::Parts,
    pub(crate) body: RequestBody<'b>,
    pub(crate) timeout: Option<Duration>,
}

impl Direct<'_, '_> {
    fn tweak(&self, by_hand: bool) -> Tweak {
        Tweak {
            by_hand,
            timeout: self.timeout,
        }
    }
}

impl Transport for Direct<'_, '_> {
    fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    fn replayable(&self) -> bool {
        self.body.is_replayable()
    }

    fn send_authorized(&mut self, credential: &HeaderValue) -> Result<Sent, Error> {
        let mut parts = self.parts.clone();
        parts.headers.insert(AUTHORIZATION, credential.clone());
        let tweak = self.tweak(true);
        let mut response = self.body.send(self.agent, parts, tweak)?;

        // Follow redirects as the agent is configured to, hop by hop.
        let config = self.agent.config();
        // As ureq: with 0 nothing is followed and the 3xx is the answer, never an error.
        let max = config.max_redirects();
        let will_error = max > 0 && config.max_redirects_will_error();
        let (mut method, mut uri) = (self.parts.method.clone(), self.parts.uri.clone());
        let mut authorized = true;
        let mut hops = 0;
        loop {
            let Some((next_method, next_uri)) =
                next_hop(&method, &uri, response.status(), response.headers())
            else {
                break;
            };
            if hops == max {
                if will_error {
                    return Err(ureq::Error::TooManyRedirects.into());
                }
                break;
            }
            hops += 1;
            drop(response);
            let mut parts = self.parts.clone();
            parts.method = next_method.clone();
            parts.uri = next_uri.clone();
            for name in [AUTHORIZATION, COOKIE, CONTENT_LENGTH] {
                parts.headers.remove(name);
            }
            authorized = self.allowed.iter().any(|o| o.matches(&next_uri));
            if authorized {
                parts.headers.insert(AUTHORIZATION, credential.clone());
            }
            trace!(hop = hops, authorized, "reauth following a redirect");
            // A followed hop never carries a body (see `next_hop`).
            response = RequestBody::empty().send(self.agent, parts, tweak)?;
            (method, uri) = (next_method, next_uri);
        }
        Ok(Sent {
            response,
            authorized,
        })
    }

    fn send_anonymous(&mut self) -> Result<Response<Body>, Error> {
        let tweak = self.tweak(false);
        self.body.send(self.agent, self.parts.clone(), tweak)
    }

    fn deliver(&mut self, response: Response<Body>) -> Result<Response<Body>, Error> {
        status_as_error(self.agent.config().http_status_as_error(), response)
    }
}

/// ureq's `http_status_as_error`, applied after the session has seen the response.
pub(crate) fn status_as_error(
    enabled: bool,
    response: Response<Body>,
) -> Result<Response<Body>, Error> {
    let status = response.status();
    if enabled && (status.is_client_error() || status.is_server_error()) {
        return Err(ureq::Error::StatusCode(status.as_u16()).into());
    }
    Ok(response)
}
