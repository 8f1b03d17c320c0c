//! Following redirects by hand, so the credential goes only where the allow-list says.
//!
//! reqwest follows redirects inside the client and strips `Authorization` only on a hop
//! that changes origin from the hop before, while every hop starts again from the first
//! request's headers: A (allowed) → B (stripped) → B′ (same origin as B) hands the token
//! to B′. So the adapter's client follows no redirects, and the adapter follows each hop
//! itself, with reqwest's method rules: the credential only on hops whose origin is
//! allowed, and a response handed to the session only if its hop carried the credential.

use crate::drive::{send, Shared, Transport};
use crate::error::Error;
use crate::template::Template;
use reauth_core::Attempt;
use reauth_drive::{next_hop, Hop, Rules, UrlTarget};
use reqwest::{Response, Url};
use std::sync::Once;
use tracing::{trace, warn};

/// Follows the redirects that begin with `response`, hop by hop, up to the client's
/// limit. `attempt` is the credential of a chain that began on an allowed origin; a
/// chain that began without one stays without. Returns the last response and whether
/// its hop carried the credential (only then does its status say anything about the
/// token).
pub(crate) async fn follow(
    shared: &Shared,
    attempt: Option<&Attempt>,
    mut response: Response,
    template: &Template,
    transport: &mut impl Transport,
) -> Result<(Response, bool), Error> {
    let mut authorized = attempt.is_some();
    let mut last: Option<Hop> = None;
    let mut hops = 0;
    loop {
        let (method, url) = last
            .as_ref()
            .map_or((template.method(), template.url()), |h| (&h.method, &h.url));
        let Some(hop) = next_hop(
            Rules::Reqwest,
            method,
            url,
            response.status(),
            response.headers(),
        ) else {
            break;
        };
        let Some(request) = template.hop(&hop) else {
            trace!("reauth: a redirect that re-sends a streamed body is not followed");
            break;
        };
        // With no limit, nothing is followed and the 3xx is the answer (reqwest's
        // `Policy::none`); past a limit, an error (its `Policy::limited`).
        if hops == shared.adapter.max_redirects {
            if hops == 0 {
                break;
            }
            return Err(Error::TooManyRedirects {
                limit: shared.adapter.max_redirects,
            });
        }
        hops += 1;
        crate::drive::discard(response).await;
        authorized = attempt.is_some()
            && shared
                .adapter
                .allowed
                .iter()
                .any(|o| o.matches(&UrlTarget(&hop.url)));
        trace!(hop = hops, authorized, "reauth following a redirect");
        response = match attempt.filter(|_| authorized) {
            Some(attempt) => send(attempt, request, transport).await?,
            None => transport.send(request).await?,
        };
        came_from(&hop.url, &response)?;
        last = Some(hop);
    }
    Ok((response, authorized))
}

/// Fails unless `response` came from `sent`, the URL its request was sent to. If not, the
/// client that sent it followed a redirect itself (the inner client of a middleware chain,
/// or one swapped in through `RequestBuilder::with`): the credential may have gone where
/// the allow-list says it must not, and the status says nothing about the token, so it is
/// not counted and the caller hears of it.
pub(crate) fn came_from(sent: &Url, response: &Response) -> Result<(), Error> {
    let got = response.url();
    // Equal as text in every case but this one; the rest ignores what reqwest may drop
    // on the way (the fragment, user info).
    if got == sent
        || (got.scheme() == sent.scheme()
            && got.host() == sent.host()
            && got.port_or_known_default() == sent.port_or_known_default()
            && got.path() == sent.path()
            && got.query() == sent.query())
    {
        return Ok(());
    }
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        warn!(
            "reauth: the reqwest client under reauth followed a redirect itself, so the \
             token may have reached an origin that is not allowed; build it with \
             `redirect(reqwest::redirect::Policy::none())` (reauth's `Client::inner()` is \
             such a client) and reauth follows redirects itself"
        );
    });
    Err(Error::ClientFollowedRedirect)
}
