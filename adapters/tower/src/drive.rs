//! The session's shared state with this adapter's own part. The session's tasks and
//! parked requests are `reauth_drive::tokio`'s; the request loop (`request.rs`) and the
//! token call (`source.rs`) are this adapter's I/O.

use crate::source::{over_http, TokenService};
use reauth_core::{RefreshOutcome, RefreshToken};
use reauth_drive::tokio::{Adapter, Source};
use std::future::Future;

/// The session's shared state, with this adapter's own part.
pub(crate) type Shared = reauth_drive::tokio::Shared<Tower>;

/// What this adapter adds to the shared state: the refresh over its token transport, and
/// what its request loop reads.
pub(crate) struct Tower {
    pub(crate) source: Source,
    pub(crate) token_http: TokenService,
    pub(crate) allow_insecure_http: bool,
    /// Request bodies that are still streaming are recorded up to this many bytes.
    pub(crate) body_limit: usize,
    /// Watch response trailers for gRPC `UNAUTHENTICATED`.
    pub(crate) grpc: bool,
    /// Where requests without scheme and host go.
    pub(crate) default_origin: Option<reauth_core::Origin>,
}

impl Adapter for Tower {
    fn refresh(
        &self,
        refresh_token: Option<RefreshToken>,
    ) -> impl Future<Output = RefreshOutcome> + Send + '_ {
        self.source
            .refresh(refresh_token, |protocol, refresh_token| {
                over_http(
                    protocol,
                    self.token_http.clone(),
                    refresh_token,
                    self.allow_insecure_http,
                )
            })
    }
}
