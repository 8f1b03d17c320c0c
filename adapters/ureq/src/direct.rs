//! The wrapper's transport: sends through the user's `ureq::Agent`, can send a request
//! again, and follows redirects itself so the credential reaches allowed origins only.

use crate::body::{ByHand, Head, RequestBody, Tweak};
use crate::drive::{Sent, Transport};
use crate::error::Error;
use http::{HeaderValue, Method, Uri};
use reauth_core::Origin;
use reauth_drive::{is_redirect, next_hop, Rules};
use std::time::Duration;
use tracing::trace;
use ureq::http::{request, Response};
use ureq::Body;

pub(crate) struct Direct<'a, 'b> {
    pub(crate) agent: &'a ureq::Agent,
    pub(crate) allowed: &'a [Origin],
    pub(crate) by_hand: &'a ByHand,
    pub(crate) parts: &'a request::Parts,
    pub(crate) body: RequestBody<'b>,
    pub(crate) timeout: Option<Duration>,
}

impl<'a> Direct<'a, '_> {
    fn tweak(&self, by_hand: bool) -> Tweak<'a> {
        Tweak {
            by_hand: by_hand.then_some(self.by_hand),
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
        let tweak = self.tweak(true);
        let head = Head {
            parts: self.parts,
            hop: None,
            credential: Some(credential),
        };
        let response = self.body.send(self.agent, head, tweak)?;
        if !is_redirect(response.status()) {
            // Most answers: nothing to follow (`next_hop` would say so).
            return Ok(Sent {
                response,
                authorized: true,
            });
        }
        self.follow(credential, response, tweak)
    }

    fn send_anonymous(&mut self) -> Result<Response<Body>, Error> {
        let tweak = self.tweak(false);
        let head = Head {
            parts: self.parts,
            hop: None,
            credential: None,
        };
        self.body.send(self.agent, head, tweak)
    }

    fn deliver(&mut self, response: Response<Body>) -> Result<Response<Body>, Error> {
        status_as_error(self.agent.config().http_status_as_error(), response)
    }
}

impl Direct<'_, '_> {
    /// Follows the redirects that begin with `response`, as the agent is configured to,
    /// hop by hop. Why apart from `send_authorized`: it is the rare path.
    #[inline(never)]
    fn follow(
        &mut self,
        credential: &HeaderValue,
        mut response: Response<Body>,
        tweak: Tweak<'_>,
    ) -> Result<Sent, Error> {
        let config = self.agent.config();
        // As ureq: with 0 nothing is followed and the 3xx is the answer, never an error.
        let max = config.max_redirects();
        let will_error = max > 0 && config.max_redirects_will_error();
        // The hop just answered: the caller's request until the first redirect. Why not
        // clones: most responses are no redirect at all.
        let mut hop: Option<(Method, Uri)> = None;
        let mut authorized = true;
        let mut hops = 0;
        loop {
            let (method, uri) = hop
                .as_ref()
                .map_or((&self.parts.method, &self.parts.uri), |(m, u)| (m, u));
            let Some((next_method, next_uri)) = follows(method, uri, &response) else {
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
            authorized = self.allowed.iter().any(|o| o.matches(&next_uri));
            trace!(hop = hops, authorized, "reauth following a redirect");
            let head = Head {
                parts: self.parts,
                hop: Some((&next_method, &next_uri)),
                credential: authorized.then_some(credential),
            };
            // A followed hop never carries a body (ureq's rules).
            response = RequestBody::empty().send(self.agent, head, tweak)?;
            hop = Some((next_method, next_uri));
        }
        Ok(Sent {
            response,
            authorized,
        })
    }
}

/// Where the response to a `method` request for `uri` sends it next, by ureq's rules, or
/// `None` if it is not a redirect that ureq would follow (or its target is no URI).
fn follows(method: &Method, uri: &Uri, response: &Response<Body>) -> Option<(Method, Uri)> {
    if !is_redirect(response.status()) {
        return None;
    }
    let from = url::Url::parse(&uri.to_string()).ok()?;
    let hop = next_hop(
        Rules::Ureq,
        method,
        &from,
        response.status(),
        response.headers(),
    )?;
    Some((hop.method, hop.url.as_str().parse().ok()?))
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
